"""``python -m tuning export EXPERIMENT_DIR``: best configuration -> reruns -> results tree.

The experiment is read from disk (Tune's state and each trial's result log, plus our
``spikesort_run.json``), so an export works on another day and after an interrupted run.
Right after a search, ``tune`` hands over what it already holds instead: the best trial
its summary picked and the validated datasets (``best=``, ``datasets=``).
The best trial is picked by :mod:`tuning.search.best_trial` (the rule the driver and the
benchmarks use) over every trial's epochs, so trials that ASHA stopped early compete
fairly; the epoch behind the pick is recorded.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import models
import search_spaces
from tuning.bundle import model_bundle
from tuning.bundle.speed import speed_line
from tuning.export import racing, references
from tuning.search import ray_runtime, best_trial
from tuning.export import results_tree as tree
from tuning.data.readers import Dataset, load_dataset
from tuning.search.driver import ExperimentOutcome
from tuning.search.run_record import mark_exported, package_versions, read_run_record
from tuning.errors import InputError
from tuning.metrics import unit_recall_line, unit_recalls, weak_unit_lines
from tuning.export.reruns import FULL_SPLIT, ONE_SPLIT, plan_jobs, run_jobs
from tuning.settings import check_ensemble, check_output_folder, check_race
from tuning.data.splits import cv_folds, fold_assignment, min_rows_per_class

INNER_VAL_FRACTION = 0.15


@dataclass
class BestTrial:
    trial_id: str
    config: dict
    epoch: int
    value: float
    per_task: dict          # dataset -> that task's objective at the best epoch (multi-task)
    n_trials: int
    complete: bool          # every trial terminated (False after an interrupted search)


@dataclass
class ExportSummary:
    approach: str
    results_dir: Path
    best: BestTrial
    files: list[Path]
    one_split: pd.DataFrame
    full_split: pd.DataFrame
    ensemble_full_split: pd.DataFrame | None = None  # with --ensemble: its approach's summary
    units: dict = dataclasses.field(default_factory=dict)  # dataset -> metrics.unit_recalls over the full split
    metric: str = "accuracy"  # the search's objective (what a weak unit's advice depends on)
    speeds: dict = dataclasses.field(default_factory=dict)  # bundle name -> bundle.json's "speed"
    margins: dict = dataclasses.field(default_factory=dict)  # dataset -> references.margins frame
    race: dict | None = None  # with --race: :func:`race_record` of the race that picked ``best``
    family: str = ""  # the searched family (the margin's advice depends on it)


def rerun_patience(max_epochs: int) -> int:
    """Epochs without validation improvement before a rerun stops."""
    return max(5, max_epochs // 3)


def ranked_trials(experiment_dir: str, metric: str, mode: str,
                  rule: str = best_trial.DEFAULT_RULE) -> list[BestTrial]:
    """Every trial that scored, best first under ``rule`` (:mod:`tuning.search.best_trial`; the
    benchmarks also ask for the others); InputError for an empty or broken experiment folder."""
    from ray.tune import ExperimentAnalysis

    try:
        analysis = ExperimentAnalysis(str(experiment_dir), default_metric=metric, default_mode=mode)
    except Exception as error:  # Ray raises ValueError / FileNotFoundError / pickle errors
        raise InputError(f"{experiment_dir}: not a readable Tune experiment "
                         f"({type(error).__name__}: {str(error).splitlines()[0][:160]})") from None
    trials = {trial.trial_id: trial for trial in analysis.trials}
    picks = best_trial.rank_trials({t: analysis.trial_dataframes.get(t) for t in trials}, metric, mode, rule)
    if not picks:
        raise InputError(f"{experiment_dir}: no trial reported {metric!r}; nothing to export")
    complete = all(t.status in ("TERMINATED", "ERROR") for t in analysis.trials)
    # Per task, as the score (a multi-task search reports val_<metric>/<dataset>).
    return [BestTrial(pick.trial_id, dict(trials[pick.trial_id].config), pick.epoch, pick.score,
                      {key.split("/", 1)[1]: float(value) for key, value in pick.means.items()
                       if key.startswith(metric + "/")}, len(analysis.trials), complete)
            for pick in picks]


def find_best_trial(experiment_dir: str, metric: str, mode: str, rule: str = best_trial.DEFAULT_RULE) -> BestTrial:
    """Best trial under ``rule``; InputError for an empty or broken experiment folder."""
    return ranked_trials(experiment_dir, metric, mode, rule)[0]


def ensemble_members(ranked: list[BestTrial], best: BestTrial, size: int) -> list[BestTrial]:
    """The ``size - 1`` trials of ``ranked`` (:func:`ranked_trials`) next after ``best`` (the
    ensemble is ``best`` and these); fewer when the search has fewer that scored."""
    return [t for t in ranked if t.trial_id != best.trial_id][:max(0, size - 1)]


def best_trial_from_outcome(outcome: ExperimentOutcome) -> BestTrial:
    """The best trial a search that has just run picked (``driver.summarise``), as the
    export takes it: no second choice here, and nothing read back from disk."""
    if not outcome.best_config or outcome.metric not in outcome.best_metrics:
        raise InputError(f"{outcome.path}: no trial reported {outcome.metric!r}; nothing to export")
    prefix = outcome.metric + "/"
    per_task = {k[len(prefix):]: v for k, v in outcome.best_metrics.items() if k.startswith(prefix)}
    return BestTrial(outcome.best_trial_id, dict(outcome.best_config), outcome.best_epoch,
                     outcome.best_metrics[outcome.metric], per_task, outcome.n_trials, outcome.complete)


def reload_datasets(record: dict, min_rows: int) -> list[Dataset]:
    """The experiment's datasets, checked against what the search saw."""
    datasets = []
    for entry in record["datasets"]:
        dataset = load_dataset(entry["path"], entry["label_column"], min_rows, columns=entry.get("columns"))
        if len(dataset.y) != entry["rows"] or dataset.label_map() != entry["label_map"]:
            raise InputError(f"{entry['path']}: changed since the search ({entry['rows']} rows then, "
                             f"{len(dataset.y)} now, or other labels); tune again on the new data")
        datasets.append(dataset)
    return datasets


def export_experiment(experiment_dir: str | Path, results_dir: str | Path = "results", *,
                      folds: int | None = None, repeats: int | None = None, address: str | None = None,
                      num_cpus: int | None = None, progress: bool = True, best: BestTrial | None = None,
                      datasets: list[Dataset] | None = None, ensemble: int = 0, race: int = 0) -> ExportSummary:
    """Rerun the best configuration and merge its results into ``results_dir``.

    ``best`` and ``datasets``: the best trial already picked and the experiment's
    datasets already validated (what ``tune`` holds after its search); without them,
    both are read from the experiment folder and the data files.
    ``ensemble``: also score the average of the top ``ensemble`` configurations' class
    probabilities (:func:`ensemble_members`), trained beside the best on the same folds and
    seeds, as its own approach (``<Approach> Ensemble``); 0 or 1: none.
    ``race``: pick among the search's top ``race`` trials by :mod:`tuning.export.racing` instead
    of taking the search's best; 0 or 1: none.
    """
    check_ensemble(ensemble)
    check_race(race)
    if "://" not in str(experiment_dir):  # Tune reads a local experiment by absolute path only
        experiment_dir = Path(experiment_dir).expanduser().resolve()
    experiment_dir = str(experiment_dir)
    check_output_folder(results_dir, "--results-dir")
    record = read_run_record(experiment_dir)
    settings = record["settings"]
    folds, repeats = folds or settings["folds"], repeats or settings["repeats"]
    family = record["family"]
    needs_ranking = best is None or ensemble > 1 or race > 1
    ranked = ranked_trials(experiment_dir, record["metric"], record["mode"]) if needs_ranking else []
    if best is None:
        best = ranked[0]
    if not best.complete:
        print(f"warning: {experiment_dir} is an interrupted search; exporting its best trial so far",
              file=sys.stderr)
    if datasets is None:
        datasets = reload_datasets(record, min_rows_per_class(folds))
    jobs = plan_jobs(datasets, seed=settings["seed"], folds=folds, repeats=repeats,
                     val_fraction=settings["val_fraction"], test_fraction=settings["test_fraction"],
                     inner_val_fraction=INNER_VAL_FRACTION)
    # Join only the cluster named now: the search's cluster may be gone by the day of a re-export.
    started = ray_runtime.connect(address, num_cpus)
    try:
        raced = None
        candidates = ranked[:race] if race > 1 else []
        if len(candidates) > 1:
            result = racing.race(
                family, [c.config for c in candidates], datasets,
                racing.race_jobs(datasets, seed=settings["seed"], folds=racing.RACE_FOLDS,
                                 val_fraction=settings["val_fraction"], test_fraction=settings["test_fraction"],
                                 inner_val_fraction=INNER_VAL_FRACTION),
                max_epochs=settings["max_epochs"], patience=rerun_patience(settings["max_epochs"]),
                metric=settings["metric"], cpus=settings["cpus_per_trial"], gpus=settings["gpus_per_trial"],
                progress=progress)
            best, raced = candidates[result.winner], race_record(candidates, result)
        members = ensemble_members(ranked, best, ensemble) if ensemble > 1 else []
        if ensemble > 1 and not members:
            print(f"warning: {experiment_dir} has no other scored trial; no ensemble", file=sys.stderr)
        final = model_bundle.start_final_training(  # the model bundle's network, beside the reruns
            family, best.config, datasets, seed=settings["seed"], max_epochs=settings["max_epochs"],
            patience=rerun_patience(settings["max_epochs"]), metric=settings["metric"],
            inner_val_fraction=INNER_VAL_FRACTION, cpus=settings["cpus_per_trial"], gpus=settings["gpus_per_trial"])
        reference_tasks = start_references(datasets, folds=folds, repeats=repeats, seed=settings["seed"])
        rows = run_jobs(family, best.config, datasets, jobs, max_epochs=settings["max_epochs"],
                        patience=rerun_patience(settings["max_epochs"]), metric=settings["metric"],
                        cpus=settings["cpus_per_trial"], gpus=settings["gpus_per_trial"], progress=progress,
                        members=[m.config for m in members])
        final = model_bundle.collect(final)
        reference_rows = collect_references(reference_tasks)
    finally:
        if started:
            import ray
            ray.shutdown()
    margin_metric = settings["metric"] if settings["metric"] in ("accuracy", "balanced_accuracy") else "accuracy"
    margins = {d.name: references.margins(_full_split_frame(rows, d.name), reference_rows[d.name], margin_metric)
               for d in datasets}
    plan, one_split, full_split, ensemble_split = write_export(
        Path(results_dir), record, experiment_dir, best, datasets, rows, folds, repeats, final, members,
        reference_rows=reference_rows, margins=margins, race=raced)
    mark_exported(experiment_dir, results_dir)  # --resume passes over it from now on
    approach, _ = tree.approach_names(family)
    units = {d.name: unit_recalls(np.sum([r["confusion_matrix"] for r in _full_split_rows(rows, d.name)], axis=0),
                                  d.class_names) for d in datasets}
    speeds = {path.parent.name: json.loads(content).get("speed") for path, content in plan.items()
              if path.name == model_bundle.METADATA_FILE}
    return ExportSummary(approach, Path(results_dir), best, list(plan), one_split, full_split, ensemble_split,
                         units, settings["metric"], speeds, margins, raced, family)


def race_record(candidates: list[BestTrial], result: racing.RaceResult) -> dict:
    """What a race did, for ``run_<dataset>.json`` and the summary: every candidate's trial,
    its search score and its race score, the winner and the cost."""
    return {"folds": len(result.per_fold[0]), "metric": result.metric, "winner": candidates[result.winner].trial_id,
            "winner_search_rank": result.winner + 1, "epochs": result.epochs,
            "train_seconds": round(result.train_seconds, 1),
            "candidates": [{"trial_id": c.trial_id, "search_score": c.value, "race_score": score, "race_folds": folds}
                           for c, score, folds in zip(candidates, result.scores, result.per_fold)]}


def race_line(raced: dict) -> str:
    """``raced the top 5 on 3 extra folds of the training + validation rows: trial X (search rank 2), ...``"""
    won = next(c for c in raced["candidates"] if c["trial_id"] == raced["winner"])
    first = raced["candidates"][0]
    line = (f"raced the search's top {len(raced['candidates'])} on {raced['folds']} extra folds of its training + "
            f"validation rows ({raced['epochs']} epochs): picked trial {won['trial_id']} (search rank "
            f"{raced['winner_search_rank']}), race {raced['metric']} {100 * won['race_score']:.1f}%")
    if won is not first:
        line += f" vs {100 * first['race_score']:.1f}% for the search's own pick"
    return line


def start_references(datasets, *, folds: int, repeats: int, seed: int) -> dict:
    """The classical references (:mod:`tuning.export.references`) of every dataset, on the
    full-split folds of the reruns, as Ray tasks of one CPU each, started beside the reruns."""
    import ray

    remote = ray.remote(num_cpus=1)(references.reference_rows)
    return {d.name: remote.remote(d.X, d.y, d.n_classes, cv_folds(d.y, folds, repeats, seed, INNER_VAL_FRACTION),
                                  d.name)
            for d in datasets}


def collect_references(tasks: dict) -> dict[str, pd.DataFrame]:
    import ray

    return {name: ray.get(ref) for name, ref in tasks.items()}


def _full_split_rows(rows: list[dict], dataset: str) -> list[dict]:
    """The best configuration's own full-split rows of ``dataset`` (not an ensemble's)."""
    return [r for r in rows if r["kind"] == FULL_SPLIT and r["dataset"] == dataset and not r.get("ensemble")]


def _full_split_frame(rows: list[dict], dataset: str) -> pd.DataFrame:
    return pd.DataFrame(_full_split_rows(rows, dataset))


def write_export(results_dir: Path, record: dict, experiment_dir: str, best: BestTrial,
                 datasets: list[Dataset], rows: list[dict], folds: int, repeats: int,
                 final: model_bundle.FinalModel | None = None, members: list[BestTrial] = (),
                 reference_rows: dict | None = None, margins: dict | None = None, race: dict | None = None):
    """Plan and commit the export under the results tree's lock, so that a concurrent export
    of another dataset cannot read the shared files before this one has written them.
    ``final``: the model bundle's network, whose files join the same all-or-nothing commit.
    ``members``: the ensemble's other trials; its rows (``ensemble`` True) become the
    ``<Approach> Ensemble`` approach, in the same commit. ``reference_rows`` and ``margins``
    (dataset -> frame): the classical references on the same folds, written to
    ``results/References/`` (where ``compare`` finds them), and the network's margins over
    them, to ``<prefix>_reference_margins.csv`` beside the full-split summary. ``race``: the race
    that picked ``best`` (:func:`race_record`), recorded in each ``run_<dataset>.json``."""
    single_rows = [r for r in rows if not r.get("ensemble")]
    ensemble_split = None
    with tree.locked(results_dir):
        plan, one_split, full_split = plan_export(results_dir, record, experiment_dir, best, datasets,
                                                  single_rows, folds, repeats, race=race)
        if members:
            ensemble_plan, _, ensemble_split = plan_export(
                results_dir, record, experiment_dir, best, datasets, [r for r in rows if r.get("ensemble")],
                folds, repeats, members=list(members))
            plan.update(ensemble_plan)
        if final is not None:
            approach, _ = tree.approach_names(record["family"])
            source = {"experiment": experiment_dir, "trial_id": best.trial_id, "objective": record["metric"],
                      "objective_value": best.value, "search_epoch": best.epoch}
            for bundle_datasets, bundle_final in model_bundle.bundles_of(final, datasets):  # ft-*: one per dataset
                plan.update(model_bundle.plan_bundle(
                    model_bundle.bundle_folder(results_dir / approach, bundle_datasets), family=record["family"],
                    approach=approach, config=best.config, datasets=bundle_datasets, final=bundle_final,
                    full_split=full_split, one_split=one_split, source=source,
                    stage1_datasets=datasets if models.is_finetuned(record["family"]) else ()))
        if reference_rows:
            plan.update(plan_references(results_dir, plan, record, datasets, reference_rows, margins or {}))
        tree.commit(plan)
    return plan, one_split, full_split, ensemble_split


def plan_references(results_dir: Path, plan: dict, record: dict, datasets, reference_rows: dict,
                    margins: dict) -> dict[Path, bytes]:
    """The references' cache files (keyed, as compare keys them, by this export's Run Config)
    and the margins file of the approach, merged by dataset with the datasets exported before."""
    approach, prefix = tree.approach_names(record["family"])
    root = results_dir / approach
    files: dict[Path, bytes] = {}
    for dataset in datasets:
        run_config = json.loads(plan[root / tree.RUN_CONFIG / f"run_{dataset.name}.json"])
        files.update(references.cache_plan(results_dir, dataset, reference_rows[dataset.name],
                                           references.fold_params(run_config)))
    frames = [m.assign(dataset=name, approach=approach) for name, m in margins.items() if not m.empty]
    if frames:
        new = pd.concat(frames, ignore_index=True)
        new = new[["dataset", "approach", *[c for c in new.columns if c not in ("dataset", "approach")]]]
        path = root / tree.FULL / f"{prefix}_reference_margins.csv"
        files[path] = tree.csv_bytes(tree.merge_by_dataset(path, new, [d.name for d in datasets]))
    return files


def plan_export(results_dir: Path, record: dict, experiment_dir: str, best: BestTrial,
                datasets: list[Dataset], rows: list[dict], folds: int, repeats: int,
                members: list[BestTrial] | None = None, race: dict | None = None):
    """Every file of the export, as bytes by path; nothing is written here. ``members``:
    the files of the ensemble approach (``best`` and these), from its rows."""
    family = record["family"]
    approach, prefix = tree.approach_names(family, ensemble=members is not None)
    root = results_dir / approach
    names = [d.name for d in datasets]
    experiment = Path(experiment_dir).name
    plan: dict[Path, bytes] = {}

    new_individual = {}
    for dataset in datasets:
        fold_rows = [r for r in rows if r["kind"] == FULL_SPLIT and r["dataset"] == dataset.name]
        frame = tree.fold_rows_frame(fold_rows, approach, family, experiment)
        new_individual[dataset.name] = tree.as_written(frame)  # summarised as later reads see it
        plan[root / tree.INDIVIDUAL / f"{prefix}_full_split_metrics_{dataset.name}.csv"] = tree.csv_bytes(frame)
        confusion = np.sum([np.array(r["confusion_matrix"]) for r in fold_rows], axis=0)
        stem = root / tree.INDIVIDUAL / f"{prefix}_confusion_matrix_{dataset.name}"
        plan[stem.with_suffix(".csv")] = tree.confusion_csv(confusion)
        plan[stem.with_suffix(".png")] = tree.confusion_png(
            confusion, f"{approach}: {dataset.name} ({repeats}x{folds}-fold, summed)", list(dataset.class_names))

    individual = {**tree.read_individual(root, prefix), **new_individual}
    full_split = tree.summary_rows(individual, approach)
    plan[root / tree.FULL / f"{prefix}_full_split_metrics_system.csv"] = tree.csv_bytes(full_split)

    one_rows = [r for r in rows if r["kind"] == ONE_SPLIT]
    one_new = tree.fold_rows_frame(one_rows, approach, family, experiment).drop(columns=["repeat", "fold"])
    one_path = root / tree.FULL / f"{prefix}_one_split_metrics_system.csv"
    one_split = tree.merge_by_dataset(one_path, one_new, names)
    n_recall = sum(c.startswith("recall_class_") for c in one_split.columns)  # the most classes
    one_split = tree.order_columns(
        one_split, [c for c in tree.individual_columns(n_recall) if c not in ("repeat", "fold")])
    one_datasets = one_split[one_split["dataset"] != tree.OVERALL]
    overall = {"dataset": tree.OVERALL, "approach": approach,
               **{s: float(one_datasets[s].mean()) for s in tree.SCORES}}
    one_split = pd.concat([one_datasets, pd.DataFrame([overall])], ignore_index=True)
    plan[one_path] = tree.csv_bytes(one_split)

    best_frame = best_rows(family, approach, record, best, datasets, experiment, full_split, members)
    best_name = (f"{prefix}_full_split_metrics_best_config.csv" if models.is_multitask(family)
                 else f"{prefix}_best_performers.csv")
    best_path = root / tree.BEST / best_name
    hyper = set(best.config) - {"family"}  # fixed columns first, then hyperparameters sorted
    plan[best_path] = tree.csv_bytes(tree.order_columns(tree.merge_by_dataset(best_path, best_frame, names),
                                                        [c for c in best_frame.columns if c not in hyper]))

    plan.update(run_config_files(root / tree.RUN_CONFIG, record, experiment_dir, best, datasets,
                                 folds, repeats, race))
    if members is not None:
        plan[root / tree.RUN_CONFIG / "ensemble_members.json"] = json.dumps(
            [dataclasses.asdict(m) for m in (best, *members)], indent=2, default=str).encode()
    return plan, one_split, full_split


def best_rows(family, approach, record, best: BestTrial, datasets, experiment, full_split,
              members: list[BestTrial] | None = None) -> pd.DataFrame:
    """One row per dataset: the objective, where the best config came from, every hyperparameter.
    An ensemble's row is its best member's, with every member's trial and objective listed in
    ``ensemble_members``; its ``objective_value`` stays that member's (the ensemble itself was
    never scored on the validation rows)."""
    hyper = {k: v for k, v in sorted(best.config.items()) if k != "family"}
    summary = full_split.set_index("dataset")
    rows = []
    for dataset in datasets:
        row = {"dataset": dataset.name, "approach": approach, "family": family,
               "objective": record["metric"],
               "objective_value": best.per_task.get(dataset.name, best.value),
               "best_epoch": best.epoch, "trial_id": best.trial_id, "n_trials": best.n_trials,
               "search_complete": best.complete, "experiment": experiment}
        if models.is_multitask(family):
            row["objective_value_mean_over_tasks"] = best.value
        if members is not None:
            row["ensemble_members"] = "; ".join(f"{m.trial_id} ({m.per_task.get(dataset.name, m.value):.4g})"
                                                for m in (best, *members))
        for score in tree.SCORES:
            row[f"full_split_{score}_mean"] = float(summary.loc[dataset.name, f"{score}_mean"])
        row.update(hyper)
        rows.append(row)
    return pd.DataFrame(rows)


def run_config_files(folder: Path, record, experiment_dir, best, datasets, folds, repeats, race=None) -> dict:
    family, settings = record["family"], record["settings"]
    files = {
        folder / f"search_space_{family}.py": search_spaces.space_source(family).encode(),
        folder / "command.txt": (f"search: {record['command']}\n"
                                 f"export: {shlex.join(sys.argv)}\n").encode(),
    }
    for dataset in datasets:
        fold_list = cv_folds(dataset.y, folds, repeats, settings["seed"], INNER_VAL_FRACTION)
        files[folder / f"folds_{dataset.name}.csv"] = tree.csv_bytes(fold_assignment(fold_list, len(dataset.y)))
        run = {
            "dataset": dataset.name, "path": str(dataset.path), "label_column": dataset.label_column,
            "columns": dataset.columns,
            "label_map": dataset.label_map(), "folds": folds, "repeats": repeats, "seed": settings["seed"],
            "inner_val_fraction": INNER_VAL_FRACTION, "val_fraction": settings["val_fraction"],
            "test_fraction": settings["test_fraction"], "max_epochs": settings["max_epochs"],
            "rerun_patience": rerun_patience(settings["max_epochs"]), "family": family,
            "experiment": str(experiment_dir), "best_trial": dataclasses.asdict(best), "race": race,
            "search_settings": settings, "search_algorithm": record.get("search"),
            "reproduce": record.get("reproduce"), "versions": {"search": record.get("versions"),
                                                      "export": package_versions()},
        }
        files[folder / f"run_{dataset.name}.json"] = json.dumps(run, indent=2, default=str).encode()
    return files


def print_summary(summary: ExportSummary) -> None:
    if summary.race:
        print(race_line(summary.race))
    _print_full_split(summary.approach, summary.full_split)
    for dataset, units in summary.units.items():
        print(f"  {dataset:>8}: {unit_recall_line(units)}")
        for line in weak_unit_lines(units, summary.metric):
            print(f"  {dataset:>8}: warning: {line}")
    if summary.ensemble_full_split is not None:
        _print_full_split(summary.approach + tree.ENSEMBLE_SUFFIX, summary.ensemble_full_split)
    for dataset, margin in summary.margins.items():
        print(f"  {dataset:>8}: {references.margin_line(margin, summary.family)}")
    for name, speed in summary.speeds.items():
        print(f"  {name:>8}: sorts {speed_line(speed)} on this machine")
    print(f"Results: {summary.results_dir / summary.approach}")
    print(f"Model bundles (python -m tuning predict MODEL_DIR INPUT.csv --out predictions.csv): "
          f"{summary.results_dir / summary.approach / model_bundle.MODEL_FOLDER}")


def _print_full_split(approach: str, frame: pd.DataFrame) -> None:
    print(f"\n== {approach}: full-split accuracy (mean [95% CI], %)")
    for _, row in frame.iterrows():
        print(f"  {row['dataset']:>8}: {100 * row['accuracy_mean']:.1f} "
              f"[{100 * row['accuracy_ci95_low']:.1f}, {100 * row['accuracy_ci95_high']:.1f}]"
              f"  balanced {100 * row['balanced_accuracy_mean']:.1f}  macro-F1 {100 * row['macro_f1_mean']:.1f}")
