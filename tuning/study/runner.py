"""``python -m tuning study`` (= ``scripts/study.sh``): the lab's question in one command,
answered from replicated pipelines.

1. **Plan** (before Ray starts): every input checked; with a time budget, the cost of each
   family measured (:func:`tuning.study.budget.calibrate`) and the number of replicates R
   and the trials per search fixed so that they fit (:func:`tuning.study.budget.plan_replicates`);
   a budget that cannot fit three replicates is refused with the budget that would.
2. **Replicates** (:mod:`tuning.study.replicates`): replicate r draws its seed and split;
   every approach searches on it with the same effort and its pick is scored on the
   replicate's test rows (and, for same-trunk pairs, on fractions of its training rows).
   A finished search is recorded; a rerun of the command skips it.
3. **The answer** (:mod:`tuning.study.across_replicates`): per dataset and primary pair,
   the paired differences over replicates, Holm, equivalence, the least detectable difference.
4. **The lab's results tree**, once per approach, from replicate 0's searches
   (:func:`tuning.export.exporter.export_experiment`: full-split reruns, bundle), and the
   fold-level comparison of those configurations (secondary: "for the configurations picked").
5. ``results/report.md``: the answer first, then the evidence (:mod:`tuning.study.replicated_report`).

From Python: ``run_study(["ffn", "mtl-ffn"], "A2,A4", replicates=3, samples=8)`` returns a
:class:`StudyResult`; it never changes its arguments.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

import models
from tuning import atomic
from tuning.errors import InputError
from tuning.settings import TuneSettings, check_ensemble, load_for_tuning
from tuning.study import across_replicates as across
from tuning.study import budget as budgets
from tuning.study import replicates as reps

STUDY_FOLDER = "Study"
# The per-search budget of the study: smaller than tune's 48 x 40 so that ten replicates of
# the default families fit three hours on two CPUs (a replicate is about a dozen searches).
STUDY_SAMPLES = 16
STUDY_MAX_EPOCHS = 20
STUDY_GRACE_PERIOD = 2
# No compute cap: the study asks which approach is more accurate, and a cap would change which
# networks compete (tune's default cap is for the bundle a lab sorts with).
STUDY_MAX_MFLOP = None
DEFAULT_REPLICATES = 10
DEFAULT_TIME_BUDGET_H = 3.0
CURVE_FRACTIONS = (0.1, 0.25, 0.5)
DEFAULT_FAMILIES = tuple(f for f in ("ffn", "cnn", "mtl-ffn", "mtl-cnn", "ft-ffn", "ft-cnn") if f in models.FAMILIES)
SMOKE = {"samples": 2, "max_epochs": 2, "grace_period": 1, "folds": 2, "repeats": 1}
SMOKE_REPLICATES = 2
SMOKE_FRACTIONS = (0.5,)
SMOKE_ROWS_PER_CLASS = 30
EXPORT_REPLICATE = 0


@dataclasses.dataclass
class StudyResult:
    report: Path | None       # None after --only-replicate (no report: the gathering run writes it)
    pairs: pd.DataFrame       # the answer: one row per dataset and primary pair
    curves: pd.DataFrame      # learning-curve pairs (exploratory)
    spread: pd.DataFrame      # each approach's test accuracy across replicates
    effort: pd.DataFrame      # what every search got
    scores: pd.DataFrame      # every pick's test scores, per replicate
    plan: budgets.Plan
    replicates_done: int


def add_arguments(parser, parents_help: bool = False) -> None:
    """The study's own options (the shared search, data, cluster and results options come
    from :mod:`tuning.cli`'s parent parsers)."""
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES),
                        help="comma list of model families; primary pairs follow from it "
                             "(mtl-X vs X; ft-X vs X and vs mtl-X)")
    parser.add_argument("--datasets", default=None,
                        help="comma list of dataset names or CSV paths, or all (default: all; with --smoke, "
                             "the first two datasets of --data-dir)")
    parser.add_argument("--replicates", type=int, default=None,
                        help=f"replicates wanted: each a whole pipeline with its own seed, split and searches "
                             f"(default {DEFAULT_REPLICATES}; {SMOKE_REPLICATES} with --smoke); the time budget "
                             "may fit fewer (at least 3) and says so")
    parser.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET_H,
                        help="hours for the whole study, fixed before any search: sets R and the trials per "
                             "search from each family's measured cost; 0: no budget")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a quick end-to-end run: {SMOKE_REPLICATES} replicates of {SMOKE['samples']} trials "
                             f"x {SMOKE['max_epochs']} epochs, {SMOKE_ROWS_PER_CLASS} rows per class")
    parser.add_argument("--only-replicate", type=int, default=None, metavar="R",
                        help="run replicate R's searches only, then stop: several drivers (one per replicate) "
                             "can share a Ray cluster (--address) side by side; the same command without it "
                             "gathers their records, runs what is missing and writes the report")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the lab's results tree (full-split reruns and bundles of replicate 0)")
    stats = parser.add_argument_group("statistics")
    stats.add_argument("--alpha", type=float, default=0.05, help="significance level (Holm-adjusted p)")
    stats.add_argument("--rope", type=float, default=1.0, help="practical equivalence: +- this many accuracy points")
    stats.add_argument("--threshold", type=float, default=0.95,
                       help="posterior probability of the ROPE for 'practically equivalent' in the fold-level "
                            "(secondary) tests")


def parse_families(text: str | Sequence[str]) -> list[str]:
    families = [f.strip() for f in text.split(",")] if isinstance(text, str) else [str(f).strip() for f in text]
    families = [f for f in families if f]
    unknown = [f for f in families if f not in models.FAMILIES]
    if not families or unknown:
        raise InputError(f"--families {','.join(families)!r}: unknown {', '.join(unknown) or 'empty list'}; "
                         f"choose from {', '.join(models.FAMILIES)}")
    return list(dict.fromkeys(families))


def smoke_data_dir(settings: TuneSettings, datasets_arg: str) -> tuple[Path, str]:
    """Small stratified copies of the datasets (``SMOKE_ROWS_PER_CLASS`` rows per class, seeded)
    under ``<storage>/study-smoke-data``, so that a smoke study runs in minutes. Returns the folder
    and the datasets' names (a dataset argument for that folder)."""
    from tuning.data.csv_files import open_text
    from tuning.data.readers import load_datasets
    from tuning.data.splits import min_rows_per_class

    names = [p.strip() for p in datasets_arg.split(",")] if "," in datasets_arg else datasets_arg
    datasets = load_datasets(names, settings.data_dir, settings.label_column, min_rows_per_class(settings.folds),
                             columns=settings.columns)
    folder = Path(settings.storage).expanduser().resolve() / "study-smoke-data"
    rng = np.random.default_rng(settings.seed)
    for dataset in datasets:
        keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(dataset.y == c))[:SMOKE_ROWS_PER_CLASS]
                                       for c in range(dataset.n_classes)]))
        # The file's own lines (header if any, channel layout, label column): nothing re-encoded.
        _, handle = open_text(dataset.path)
        with handle:
            lines = [line for line in handle.read().splitlines() if line.strip()]
        n_header = len(lines) - len(dataset.y)
        if n_header not in (0, 1):
            raise InputError(f"{dataset.path}: --smoke cannot copy rows of this file ({len(lines)} lines for "
                             f"{len(dataset.y)} spikes); run the study without --smoke")
        rows = lines[n_header:]
        atomic.write_text(folder / f"{dataset.name}.csv", "\n".join(lines[:n_header] + [rows[i] for i in keep]) + "\n")
    return folder, ",".join(d.name for d in datasets)


def first_two_datasets(data_dir) -> str:
    """The smoke study's default: the first two CSVs of ``data_dir`` in natural order (A2,A3 here)."""
    from tuning.data.readers import resolve_dataset_paths

    return ",".join(p.stem for p in resolve_dataset_paths("all", data_dir)[:2])


def study_settings(settings: TuneSettings | None, overrides: dict, smoke: bool) -> tuple[TuneSettings, bool]:
    """The search settings every search of the study gets, and whether ``samples`` was
    given (then no budget changes it). Study defaults replace tune's per-search budget."""
    samples_given = overrides.get("samples") is not None or settings is not None
    base = settings or TuneSettings(samples=STUDY_SAMPLES, max_epochs=STUDY_MAX_EPOCHS,
                                    grace_period=STUDY_GRACE_PERIOD, max_mflop=STUDY_MAX_MFLOP)
    settings = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    if smoke:
        settings = dataclasses.replace(settings, **{k: min(getattr(settings, k), v) for k, v in SMOKE.items()})
    return settings, samples_given


def run_study(families: str | Sequence[str] = DEFAULT_FAMILIES, datasets: str | None = None,
              settings: TuneSettings | None = None, *, replicates: int | None = None,
              time_budget: float | None = None, results_dir="results", smoke: bool = False, export: bool = True,
              ensemble: int = 0, alpha: float = 0.05, rope: float = 1.0, threshold: float = 0.95,
              only_replicate: int | None = None, command: Sequence[str] | None = None,
              log: Callable[[str], None] | None = None, **overrides) -> StudyResult:
    """The whole study; see the module docstring. ``settings`` (or ``overrides``, e.g.
    ``samples=8``) set every search; ``time_budget`` in hours (None or 0: none).
    ``only_replicate``: run that replicate's searches and return (no budget, export or
    report), for drivers that share a cluster side by side."""
    from tuning.search import ray_runtime
    from tuning.study import comparison

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    started_at = time.time()
    results_dir = Path(results_dir)
    comparison.check_options(alpha, rope, threshold)
    families = parse_families(families)
    settings, samples_given = study_settings(settings, overrides, smoke)
    check_ensemble(ensemble)
    if time_budget is not None and time_budget < 0:
        raise InputError(f"--time-budget is in hours and must be positive (0: none), got {time_budget:g}")
    budget_s = 3600.0 * time_budget if time_budget else None
    wanted = replicates if replicates is not None else (SMOKE_REPLICATES if smoke else DEFAULT_REPLICATES)
    if wanted < 1:
        raise InputError(f"--replicates must be at least 1, got {wanted}")
    if only_replicate is not None:
        if not 0 <= only_replicate < wanted:
            raise InputError(f"--only-replicate {only_replicate}: replicates are numbered 0 to {wanted - 1} "
                             f"(--replicates {wanted})")
        budget_s = None  # one replicate of a study another run plans and gathers
    datasets = datasets or (first_two_datasets(settings.data_dir) if smoke else "all")
    if smoke:
        folder, datasets = smoke_data_dir(settings, datasets)
        settings = dataclasses.replace(settings, data_dir=str(folder))
    fractions = SMOKE_FRACTIONS if smoke else CURVE_FRACTIONS
    # Every input error before anything long starts: each family's datasets loaded and checked now.
    searches = [(family, group) for family in families for group in load_for_tuning(family, datasets, settings)]
    curve_families = across.curve_families(families)
    fractions_of = {f: (fractions if f in curve_families else ()) for f in families}
    plan = make_plan(searches, settings, budget_s, wanted, samples_given, fractions_of, log)
    settings = dataclasses.replace(settings, samples=plan.samples)
    log(f"study: {len(families)} families, {plan.replicates} replicates of {len(searches)} searches each "
        f"({plan.samples} trials x up to {settings.max_epochs} epochs per search); {plan.reason}"
        + (f"; predicted {plan.total_s / 60:.0f} min" if budget_s else ""))

    connected = ray_runtime.connect(settings.address, settings.num_cpus)
    try:
        records, done = run_replicates(searches, settings, plan, fractions_of, results_dir, started_at, budget_s,
                                       log, only=only_replicate)
        if only_replicate is not None:
            log(f"study: replicate {only_replicate} recorded; run the same command without --only-replicate to "
                "gather every replicate and write the report")
            return StudyResult(None, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), reps.effort_table(records),
                               reps.scores_table(records), plan, 1)
        exported = export_picks(records, results_dir, ensemble, log) if export else []
        fold_level = None
        if exported:
            fold_level = comparison.run_comparison(results_dir, metric="accuracy", alpha=alpha, rope=rope,
                                                   threshold=threshold, quiet=True, references=True)
    finally:
        if connected:
            import ray
            ray.shutdown()
    scores, effort = reps.scores_table(records), reps.effort_table(records)
    pairs = across.compare_pairs(scores, across.primary_pairs(families), alpha=alpha, rope=rope, unequal=effort)
    curves = across.compare_curves(scores, families, alpha=alpha, rope=rope)
    spread = across.spread(scores)
    from tuning.study import replicated_report

    study_dir = results_dir / STUDY_FOLDER
    for name, frame in (("replicate_scores", scores), ("replicate_pairs", pairs), ("replicate_curves", curves),
                        ("replicate_spread", spread), ("search_effort", effort)):
        atomic.write_text(study_dir / f"{name}.csv", frame.to_csv(index=False))
    run_lines = [f"- Command: `{shlex.join(['python', '-m', 'tuning', *command])}`" if command else
                 "- Called from Python: `tuning.study.runner.run_study`",
                 f"- {plan.replicates} replicates planned, {done} run (seeds {settings.seed} + "
                 f"{reps.SEED_STEP} r); {plan.reason}.",
                 f"- Every search: {settings.samples} trials x up to {settings.max_epochs} epochs, ASHA grace "
                 f"{settings.grace_period}, searcher {settings.searcher}, objective validation {settings.metric}; "
                 f"split {100 * (1 - settings.val_fraction - settings.test_fraction):.0f}/"
                 f"{100 * settings.val_fraction:.0f}/{100 * settings.test_fraction:.0f} (train/validation/test) "
                 "per replicate" + (f"; smoke data: {SMOKE_ROWS_PER_CLASS} rows per class" if smoke else ""),
                 f"- Time budget: {f'{time_budget:g} h' if time_budget else 'none'}; this run took "
                 f"{(time.time() - started_at) / 60:.1f} min (searches reused from earlier runs are not timed "
                 "again)" + (f"; predicted {plan.total_s / 60:.0f} min" if budget_s else "") + "."]
    unit_names = {d.name: d.class_names for _, group in searches for d in group}
    markdown = replicated_report.render(pairs, curves, spread, effort, scores, plan=plan, families=families,
                                        fractions=fractions, run_lines=run_lines, alpha=alpha, rope=rope,
                                        fold_level=fold_level,
                                        units=replicated_report.unit_lines(records, unit_names, settings.metric))
    replicated_report.plot_pairs(pairs, results_dir / "replicate_differences.png")
    if len(curves):
        replicated_report.plot_curves(scores, families, results_dir / "learning_curves.png")
    report = results_dir / "report.md"
    atomic.write_text(report, markdown)
    log(f"study: wrote {report}")
    return StudyResult(report, pairs, curves, spread, effort, scores, plan, done)


def make_plan(searches, settings: TuneSettings, budget_s: float | None, wanted: int, samples_given: bool,
              fractions_of: dict, log) -> budgets.Plan:
    """R and the trials per search, from each family's measured cost (only with a budget)."""
    effort = budgets.Effort(settings.samples, settings.max_epochs, settings.grace_period,
                            concurrency=(settings.num_cpus or _local_cpus()) / max(settings.cpus_per_trial, 1e-9))
    if budget_s is None:
        return budgets.plan_replicates({}, effort, budget_s=None, wanted=wanted, samples_fixed=True,
                                       folds=settings.folds, repeats=settings.repeats, curve_fractions=fractions_of)
    costs: dict[str, list[float]] = {}
    for family, group in searches:
        costs.setdefault(family, [])
        costs[family] += budgets.calibrate(family, [group], seed=settings.seed, val_fraction=settings.val_fraction,
                                           test_fraction=settings.test_fraction)
    log("study: measured seconds per epoch: " + ", ".join(f"{f} {sum(c):.2f}" for f, c in costs.items()))
    try:
        return budgets.plan_replicates(costs, effort, budget_s=budget_s, wanted=wanted, samples_fixed=samples_given,
                                       folds=settings.folds, repeats=settings.repeats, curve_fractions=fractions_of)
    except budgets.BudgetTooSmall as err:
        raise InputError(str(err)) from None


def _local_cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_replicates(searches, settings: TuneSettings, plan: budgets.Plan, fractions_of: dict, results_dir: Path,
                   started_at: float, budget_s: float | None, log, only: int | None = None) -> tuple[list[dict], int]:
    """Every replicate's searches, skipping those recorded with the same data and settings;
    (records of the replicates run, replicates run). With a budget, stops between replicates
    (never below :data:`tuning.study.budget.MIN_REPLICATES`) once the next one would end past it."""
    records: list[dict] = []
    done, ran_seconds, ran_predicted = 0, 0.0, 0.0
    total = (1 if only is not None else plan.replicates) * len(searches)
    predicted = predicted_search_seconds(searches, plan)
    for r in ([only] if only is not None else range(plan.replicates)):
        replicate_started = time.time()
        run_settings = reps.replicate_settings(settings, r)
        for position, (family, group) in enumerate(searches):
            names = "+".join(d.name for d in group)
            path = reps.record_path(results_dir, r, family, group)
            existing = reps.read_record(path)
            if existing and existing.get("fingerprint") == reps.fingerprint(family, group, run_settings,
                                                                          fractions_of[family]):
                records.append(existing)
                log(f"study: [{len(records)}/{total}] replicate {r}, {family} on {names}: recorded before with the "
                    "same data and settings; reused")
                continue
            started = time.time()
            records.append(reps.run_search(family, group, run_settings, fractions_of[family], replicate=r,
                                           results_dir=results_dir, log=log))
            ran_seconds, ran_predicted = ran_seconds + time.time() - started, ran_predicted + predicted[position]
            left = budgets.seconds_left(predicted, len(records), total, ran_seconds, ran_predicted)
            log(f"study: [{len(records)}/{total}] replicate {r}, {family} on {names}: {reps.describe(records[-1])}; "
                f"about {left / 60:.0f} min of searches left")
        done = r + 1
        if budget_s is not None and done >= budgets.MIN_REPLICATES and done < plan.replicates:
            took = time.time() - replicate_started
            left = started_at + budget_s - time.time() - plan.export_s
            if took > left:
                log(f"study: stopping after {done} replicates: the next would end past the time budget "
                    f"(a replicate took {took / 60:.1f} min, {max(left, 0) / 60:.1f} min left before the export)")
                break
    return records, done


def predicted_search_seconds(searches, plan: budgets.Plan) -> list[float]:
    """Each search's predicted seconds, in the order of ``searches``; all 1.0 when the study
    has no cost model (no time budget), so the progress estimate is the mean search's."""
    if not plan.per_search_s:
        return [1.0] * len(searches)
    seen: dict[str, int] = {}
    out = []
    for family, _ in searches:
        index = seen[family] = seen.get(family, -1) + 1
        out.append(float(plan.per_search_s[family][index]))
    return out


def export_picks(records: Sequence[dict], results_dir: Path, ensemble: int, log) -> list[str]:
    """The lab's results tree from replicate :data:`EXPORT_REPLICATE`'s searches (full-split
    reruns, bundles), each skipped while the tree already holds that experiment's export."""
    from tuning.export.exporter import export_experiment
    from tuning.export.results_tree import RUN_CONFIG, approach_names

    exported = []
    for record in records:
        if record["replicate"] != EXPORT_REPLICATE or not record.get("best_config"):
            continue
        approach, _ = approach_names(record["family"])
        runs = [results_dir / approach / RUN_CONFIG / f"run_{d}.json" for d in record["datasets"]]
        if all(_exported_experiment(p) == Path(record["experiment"]).name for p in runs):
            log(f"study: results tree: {record['family']} on {'+'.join(record['datasets'])} is up to date; skipped")
        else:
            log(f"study: results tree: exporting {record['family']} on {'+'.join(record['datasets'])} "
                f"(replicate {EXPORT_REPLICATE})")
            export_experiment(record["experiment"], results_dir, progress=False, ensemble=ensemble)
        exported.append(record["experiment"])
    return exported


def _exported_experiment(run_config: Path) -> str | None:
    try:
        return Path(str(json.loads(run_config.read_text()).get("experiment"))).name
    except (OSError, ValueError):
        return None
