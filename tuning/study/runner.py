"""``python -m tuning study`` (= ``scripts/study.sh``): the whole question in one command.

1. every single-task family on every dataset, and every multi-task family on all datasets
   at once: each a search (:func:`tuning.search.driver.run_groups`) and its export
   (:func:`tuning.export.exporter.export_experiment`);
2. the comparison (:func:`tuning.study.comparison.run_comparison`);
3. the learning curves (:mod:`tuning.study.learning_curves`) of the chosen configurations;
4. ``results/report.md``: the answer first, then the tables and plots, then the method.

**Continuing.** After each export the study writes ``results/Study/<family>-<datasets>.json``
with what fixes its results: the data files' SHA-256, the search settings and the
experiment. A re-run skips every experiment whose record matches the current data and
settings and whose exported files are still there, so an interrupted study continues
where it stopped (a search cut off mid-way starts again; its partial experiment folder is
left in ``--storage``). Learning-curve rows are reused while their experiment is the
exported one.

**Time budget.** ``--time-budget H`` (hours, whole study) is shared out through Tune's own
``TuneConfig(time_budget_s=...)``. Tune times only the searches, so the study keeps the rest
in its own books (:class:`StudyClock`): :data:`CURVE_SHARE` of the budget is kept for the
learning curves, and every search still to run gets an equal share of what is left after
setting aside its export, priced at that family's mean export so far (before its first, at
:data:`EXPORT_RATIO_GUESS` times its search), at least :data:`MIN_SEARCH_S`. When the floor
is reached the study says once how late it will end. A search stopped by its budget is
exported from its best trial so far, and the report says so, with the time each phase took.

**Search repeats.** ``--search-repeats R`` (default 3, 1 with ``--smoke``) runs every search R times with seeds ``seed +
1000 r``; repeat 0 fills the main results tree, repeat r its own tree under
``results/Search Repeats/seed-<seed>/``. Each repeat is compared on its own (its own split
and folds); :func:`tuning.study.comparison.across_searches` then treats the R search-level
differences of each primary pair as independent draws, so their interval includes the
search-to-search variance, and counts in how many searches each verdict held.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import models
from tuning import atomic
from tuning.data.readers import file_sha256
from tuning.errors import InputError
from tuning.settings import COLUMNS_HELP, TuneSettings, check_ensemble, load_for_tuning

STUDY_FOLDER = "Study"
CURVE_SHARE = 0.15
# Before a family's first export: its export is priced as long as its search. On the stand-ins
# (2 CPUs, 5 x 3 folds) exports took 0.3-0.7x a 1-min search for ffn, 0.6-1.7x for cnn and lstm,
# and 4x, 9x and 46x for the multi-task nets (mtl-lstm: 30 min), so the first price is rough.
EXPORT_RATIO_GUESS = 1.0
MIN_SEARCH_S = 30.0
FINGERPRINT_SETTINGS = ("samples", "max_epochs", "grace_period", "metric", "seed", "val_fraction", "test_fraction",
                        "folds", "repeats", "label_column")
SMOKE = {"samples": 2, "max_epochs": 2, "grace_period": 1, "folds": 2, "repeats": 1}
SMOKE_ROWS_PER_CLASS = 30
SMOKE_FRACTIONS = (0.25, 1.0)
SEED_STEP = 1000
# One search's pick is a draw: the stand-in study saw MTL-FFN's full-split accuracy move by up to
# 6.5 points (sd) between searches. Three searches are the fewest that give that spread an
# interval; the smoke run only checks the plumbing.
DEFAULT_SEARCH_REPEATS = 3
SMOKE_SEARCH_REPEATS = 1
REPEATS_FOLDER = "Search Repeats"


def add_arguments(parser) -> None:
    """The study's options: which families and datasets, the search options of ``tune``,
    the time budget and the comparison's statistics."""
    defaults = TuneSettings()
    parser.add_argument("--families", default=",".join(models.FAMILIES),
                        help="comma list of model families (single-task and mtl-*)")
    parser.add_argument("--datasets", default=None,
                        help="comma list of dataset names or CSV paths, or all (default: all; with --smoke, "
                             "the first two datasets of --data-dir)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a quick end-to-end run: {SMOKE['samples']} trials x {SMOKE['max_epochs']} epochs, "
                             f"{SMOKE['folds']}x{SMOKE['repeats']} folds, {SMOKE_ROWS_PER_CLASS} rows per class")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="hours for the whole study, shared among its searches through Tune's time budget")
    parser.add_argument("--search-repeats", type=int, default=None,
                        help="run every search this many times with independent seeds (seed + "
                             f"{SEED_STEP} x r); the answer then accounts for the search-to-search spread "
                             f"(default {DEFAULT_SEARCH_REPEATS}; {SMOKE_SEARCH_REPEATS} with --smoke)")
    search = parser.add_argument_group("search (as for tune)")
    search.add_argument("--samples", type=int, default=defaults.samples, help="trials per experiment")
    search.add_argument("--max-epochs", type=int, default=defaults.max_epochs)
    search.add_argument("--grace-period", type=int, default=defaults.grace_period)
    search.add_argument("--metric", default=defaults.metric,
                        help="validation objective: accuracy, balanced_accuracy, macro_f1 or loss")
    search.add_argument("--seed", type=int, default=defaults.seed)
    search.add_argument("--data-dir", default=defaults.data_dir)
    search.add_argument("--label-column", default=None)
    search.add_argument("--columns", default=None, metavar="PATTERN", help=COLUMNS_HELP)
    search.add_argument("--folds", type=int, default=defaults.folds)
    search.add_argument("--repeats", type=int, default=defaults.repeats)
    search.add_argument("--cpus-per-trial", type=float, default=defaults.cpus_per_trial)
    search.add_argument("--gpus-per-trial", type=float, default=defaults.gpus_per_trial)
    search.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray runtime (default: all)")
    search.add_argument("--address", default=None, help="join an existing Ray cluster: HOST:PORT or auto")
    search.add_argument("--storage", default=defaults.storage)
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--ensemble", type=int, default=0, metavar="K",
                        help="each export also scores the average of its search's top K configurations as its "
                             "own approach (shown in the report, in no test); 0: none")
    stats = parser.add_argument_group("comparison")
    stats.add_argument("--alpha", type=float, default=0.05, help="significance level (Holm-adjusted p)")
    stats.add_argument("--rope", type=float, default=1.0, help="practical equivalence: +- this many accuracy points")
    stats.add_argument("--threshold", type=float, default=0.95,
                       help="posterior probability of the ROPE for 'practically equivalent'")


# ----------------------------------------------------------------------------- planning
def search_repeats(args) -> int:
    """``--search-repeats``, or its default: :data:`DEFAULT_SEARCH_REPEATS` (smoke: 1)."""
    if args.search_repeats is not None:
        return args.search_repeats
    return SMOKE_SEARCH_REPEATS if args.smoke else DEFAULT_SEARCH_REPEATS


def study_settings(args) -> TuneSettings:
    settings = TuneSettings(
        samples=args.samples, max_epochs=args.max_epochs, grace_period=args.grace_period, metric=args.metric,
        seed=args.seed, data_dir=args.data_dir, label_column=args.label_column, columns=args.columns,
        folds=args.folds,
        repeats=args.repeats, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        num_cpus=args.num_cpus, address=args.address, storage=args.storage)
    if args.smoke:
        settings = dataclasses.replace(settings, **{k: min(getattr(settings, k), v) for k, v in SMOKE.items()})
    return settings


def parse_families(text: str) -> list[str]:
    families = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in families if f not in models.FAMILIES]
    if not families or unknown:
        raise InputError(f"--families {text!r}: unknown {', '.join(unknown) or 'empty list'}; "
                         f"choose from {', '.join(models.FAMILIES)}")
    return list(dict.fromkeys(families))


def smoke_data_dir(settings: TuneSettings, datasets_arg: str) -> tuple[Path, str]:
    """Small stratified copies of the datasets (``SMOKE_ROWS_PER_CLASS`` rows per class, seeded)
    under ``<storage>/study-smoke-data``, so that a smoke study runs in minutes. Returns the folder
    and the datasets' names (a dataset argument for that folder)."""
    from tuning.data.readers import load_datasets
    from tuning.data.splits import min_rows_per_class

    names = [p.strip() for p in datasets_arg.split(",")] if "," in datasets_arg else datasets_arg
    datasets = load_datasets(names, settings.data_dir, settings.label_column, min_rows_per_class(settings.folds),
                             columns=settings.columns)
    folder = Path(settings.storage).expanduser().resolve() / "study-smoke-data"
    rng = np.random.default_rng(settings.seed)
    from tuning.data.csv_files import open_text

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

    paths = resolve_dataset_paths("all", data_dir)
    return ",".join(p.stem for p in paths[:2])


def fingerprint(family: str, group, settings: TuneSettings, ensemble: int = 0) -> dict:
    """What an experiment's exported results depend on: the data's content and the settings
    (and the ensemble's size when there is one: records of studies without stay valid)."""
    out = {"family": family,
           "datasets": [{"name": d.name, "sha256": file_sha256(d.path), "rows": int(len(d.y))} for d in group],
           "settings": {k: getattr(settings, k) for k in FINGERPRINT_SETTINGS}}
    if settings.columns is not None:  # only then: records of studies without --columns stay valid
        out["settings"]["columns"] = settings.columns
    if ensemble > 1:
        out["ensemble"] = ensemble
    return out


def record_path(results_dir, family: str, group) -> Path:
    return Path(results_dir) / STUDY_FOLDER / f"{family}-{'+'.join(d.name for d in group)}.json"


def up_to_date(results_dir, family: str, group, settings: TuneSettings, ensemble: int = 0) -> dict | None:
    """The study record of this experiment if its exported results match data and settings."""
    from tuning.export.results_tree import RUN_CONFIG, approach_names

    try:
        record = json.loads(record_path(results_dir, family, group).read_text())
    except (OSError, ValueError):
        return None
    if record.get("fingerprint") != fingerprint(family, group, settings, ensemble):
        return None
    approach, _ = approach_names(family)
    for dataset in group:
        try:
            run = json.loads((Path(results_dir) / approach / RUN_CONFIG / f"run_{dataset.name}.json").read_text())
        except (OSError, ValueError):
            return None
        if Path(str(run.get("experiment"))).name != record.get("experiment"):
            return None  # exported since from another experiment
    return record


# ----------------------------------------------------------------------------- running
@dataclasses.dataclass
class StudyClock:
    """The study's time books: the deadline, and the seconds each family's exports took so
    far, from which each search still to run gets its share.

    An export's cost hardly depends on how long its search ran (it reruns one configuration
    on every fold), so each search still to run is charged its family's mean export so far;
    a family not yet exported is charged :data:`EXPORT_RATIO_GUESS` times its search."""

    deadline: float | None
    total_s: float = 0.0
    exports: dict = dataclasses.field(default_factory=dict)  # family -> export seconds so far

    @classmethod
    def for_budget(cls, started_at: float, hours: float | None) -> "StudyClock":
        if hours is None:
            return cls(None)
        return cls(started_at + 3600.0 * hours, 3600.0 * hours)

    def expected_export(self, family: str) -> float | None:
        """Mean seconds of this family's exports so far; None before its first."""
        seconds = self.exports.get(family)
        return float(np.mean(seconds)) if seconds else None

    def _split(self, todo_families: list[str]) -> tuple[float, float, float]:
        """(seconds left for searches and exports, seconds of the exports already priced,
        search shares: one per search, plus the guess for each export not yet priced)."""
        left = self.deadline - time.time() - CURVE_SHARE * self.total_s
        priced = [self.expected_export(f) for f in todo_families]
        fixed = sum(e for e in priced if e is not None)
        shares = len(todo_families) + EXPORT_RATIO_GUESS * sum(e is None for e in priced)
        return left, fixed, max(shares, 1.0)

    def search_budget(self, todo_families: list[str]) -> float | None:
        """Seconds for the next search; ``todo_families`` are the searches still to run, this
        one first, each followed by its export."""
        if self.deadline is None:
            return None
        left, fixed, shares = self._split(todo_families)
        return max(MIN_SEARCH_S, (left - fixed) / shares)

    def overrun(self, todo_families: list[str]) -> float:
        """Seconds past the deadline the study will end, as priced now, with every search
        still to run at the :data:`MIN_SEARCH_S` floor (0 when it fits)."""
        if self.deadline is None:
            return 0.0
        left, fixed, shares = self._split(todo_families)
        return max(0.0, fixed + shares * MIN_SEARCH_S - left)

    def add(self, family: str, export_seconds: float) -> None:
        self.exports.setdefault(family, []).append(export_seconds)


def repeat_trees(results_dir, seed: int, repeats: int) -> list[tuple[int, Path]]:
    """(seed, results tree) of each search repeat: repeat 0 is the main tree; repeat r uses
    seed + SEED_STEP * r (its own search, split and folds) and its own tree under
    ``results/Search Repeats/seed-<seed>/`` (outside the main tree's ``*/`` approach folders)."""
    results_dir = Path(results_dir)
    out = [(seed, results_dir)]
    for r in range(1, repeats):
        s = seed + SEED_STEP * r
        out.append((s, results_dir / REPEATS_FOLDER / f"seed-{s}"))
    return out


def run_experiments(plan, clock: StudyClock, log, ensemble: int = 0) -> list[dict]:
    """Search and export every planned ``(family, group, settings, results_dir)`` that is not
    up to date; one record each. ``ensemble``: as the export's."""
    from tuning.search.driver import run_groups
    from tuning.export.exporter import export_experiment

    records = []
    # Looked up once per experiment: a record's fingerprint hashes the data files.
    existing_records = [up_to_date(p[3], p[0], p[1], p[2], ensemble) for p in plan]
    todo = [p[0] for p, existing in zip(plan, existing_records) if existing is None]  # families still to run
    warned = False
    for (family, group, settings, results_dir), existing in zip(plan, existing_records):
        names = "+".join(d.name for d in group)
        if existing is not None:
            log(f"study: {family} on {names} (seed {settings.seed}): exported results match the data and "
                "settings; skipped")
            records.append({**existing, "seed": settings.seed, "status": "reused"})
            continue
        budget = clock.search_budget(todo)
        if budget == MIN_SEARCH_S and not warned:
            warned = True  # once: the estimate is repeated in no further line
            log(f"study: warning: the time budget no longer covers the rest; searches now get the "
                f"{MIN_SEARCH_S:.0f}-s floor and the study will end about "
                f"{clock.overrun(todo) / 60:.0f} min late (the exports' reruns, "
                "which no budget cuts, take most of it; fewer --folds/--repeats or --families cut them)")
        todo.pop(0)
        run_settings = dataclasses.replace(settings, time_budget_s=budget)
        log(f"study: {family} on {names} (seed {settings.seed})"
            + (f", search budget {budget / 60:.1f} min" if budget else ""))
        started = time.time()
        outcome = run_groups(family, [group], run_settings)[0]
        if not outcome.complete and not (budget and time.time() - started >= 0.9 * budget):
            # Stopped early, yet not by its time budget: Ctrl-C. Nothing is exported or recorded,
            # so the same command later runs this search again and skips what is done.
            log(f"study: {family} on {names} was interrupted; run the same command again to continue")
            raise KeyboardInterrupt
        if not outcome.best_config:
            log(f"study: {family} on {names} (seed {settings.seed}): no trial finished; nothing exported")
            records.append({"family": family, "datasets": [d.name for d in group], "status": "no result",
                            "seed": settings.seed,
                            "experiment": Path(str(outcome.path)).name})
            continue
        searched = time.time()
        export_experiment(outcome.path, results_dir, progress=False, ensemble=ensemble)
        clock.add(family, time.time() - searched)
        record = {"family": family, "datasets": [d.name for d in group], "experiment": Path(str(outcome.path)).name,
                  "experiment_path": str(outcome.path), "n_trials": outcome.n_trials,
                  "budget_cut": not outcome.complete, "time_budget_s": budget,
                  "seconds": round(time.time() - started, 1), "search_seconds": round(searched - started, 1),
                  "fingerprint": fingerprint(family, group, settings, ensemble)}
        atomic.write_text(record_path(results_dir, family, group), json.dumps(record, indent=2))
        records.append({**record, "seed": settings.seed, "status": "ran"})
    return records


def chosen_for_curves(summary, families: list[str]) -> dict[str, list[str]]:
    """Family -> datasets whose learning curve it supplies: per dataset, the single-task and
    the multi-task approach with the best recorded validation score."""
    from tuning.export.results_tree import approach_names

    by_approach = {approach_names(f)[0]: f for f in families}
    chosen: dict[str, list[str]] = {}
    for dataset, here in summary.groupby("dataset", sort=False):
        here = here[here["approach"].isin(list(by_approach)) & here["validation_value"].notna()]
        for kind in ("single-task", "multi-task"):
            part = here[here["kind"] == kind]
            if part.empty or here["kind"].nunique() < 2:
                continue
            lower = str(part["validation_objective"].iloc[0]).endswith("loss")
            ranked = part.sort_values(["validation_value", "approach"], ascending=[lower, True])
            chosen.setdefault(by_approach[ranked["approach"].iloc[0]], []).append(str(dataset))
    return chosen


def curve_groups(chosen: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """One (family, datasets) per curve to compute: a multi-task configuration serves every
    dataset of its experiment at once; a single-task family has one experiment (and
    configuration) per dataset, so one curve each."""
    return [(family, group) for family, datasets in chosen.items()
            for group in ([list(datasets)] if models.is_multitask(family) else [[d] for d in datasets])]


def run_curves(results_dir, chosen: dict[str, list[str]], fractions, log) -> tuple:
    from tuning.study import learning_curves as lc

    existing = lc.read_curves(results_dir)
    new = []
    for family, datasets in curve_groups(chosen):
        run = lc.exported_run(results_dir, family, datasets[0])
        experiment = Path(str(run["experiment"])).name
        if lc.has_curve(existing, family, datasets, experiment, fractions):
            log(f"study: learning curve of {family} on {', '.join(datasets)}: up to date; skipped")
            continue
        log(f"study: learning curve of {family} on {', '.join(datasets)} "
            f"({', '.join(f'{100 * f:g}%' for f in fractions)})")
        new.append(lc.compute_curve(results_dir, family, datasets, fractions))
    import pandas as pd

    new_rows = pd.concat(new, ignore_index=True) if new else existing.iloc[0:0]
    lc.write_curves(results_dir, existing, new_rows)
    curves = lc.read_curves(results_dir)
    wanted = {(f, d) for f, ds in chosen.items() for d in ds}
    keep = pd.Series([(fam, d) in wanted for fam, d in zip(curves["family"], curves["dataset"])],
                     index=curves.index, dtype=bool)
    return curves[keep & curves["fraction"].round(6).isin([round(f, 6) for f in fractions])]


def _experiment_lines(records: list[dict]) -> list[str]:
    lines = ["| family | datasets | seed | experiment | trials | search | status |", "|---|---|---|---|---|---|---|"]
    for r in records:
        search = "cut by the time budget" if r.get("budget_cut") else "complete"
        if r.get("status") == "no result":
            search = "no trial finished"
        lines.append(f"| {r['family']} | {', '.join(r['datasets'])} | {r.get('seed', '—')} | {r.get('experiment', '—')} | "
                     f"{r.get('n_trials', '—')} | {search} | {r['status']} |")
    return lines


def phase_line(records: list[dict], curve_seconds: float) -> str:
    """Where this run's time went: searches, exports (their reruns) and learning curves."""
    ran = [r for r in records if r.get("status") == "ran"]
    search = sum(r.get("search_seconds", r["seconds"]) for r in ran)
    export = sum(r["seconds"] for r in ran) - search
    return (f"- Time in this run: searches {search / 60:.1f} min, exports {export / 60:.1f} min "
            f"({len(ran)} experiments), learning curves {curve_seconds / 60:.1f} min.")


def run_study(args) -> int:
    from tuning.search import ray_runtime
    from tuning.study import comparison

    started_at = time.time()
    results_dir = Path(args.results_dir)
    comparison.check_options(args.alpha, args.rope, args.threshold)
    families = parse_families(args.families)
    settings = study_settings(args)
    if args.time_budget is not None and args.time_budget <= 0:
        raise InputError(f"--time-budget is in hours and must be positive, got {args.time_budget:g}")
    check_ensemble(args.ensemble)
    datasets_arg = args.datasets or (first_two_datasets(settings.data_dir) if args.smoke else "all")
    if args.smoke:
        folder, datasets_arg = smoke_data_dir(settings, datasets_arg)
        settings = dataclasses.replace(settings, data_dir=str(folder))
    fractions = SMOKE_FRACTIONS if args.smoke else (0.1, 0.25, 0.5, 1.0)
    # Every input error before Ray starts: each family's datasets loaded and checked now.
    plan = [(family, group) for family in families for group in load_for_tuning(family, datasets_arg, settings)]
    args.search_repeats = search_repeats(args)
    if args.search_repeats < 1:
        raise InputError(f"--search-repeats must be at least 1, got {args.search_repeats}")
    trees = repeat_trees(results_dir, settings.seed, args.search_repeats)
    plan = [(family, group, dataclasses.replace(settings, seed=seed), tree) for seed, tree in trees
            for family, group in plan]
    clock = StudyClock.for_budget(started_at, args.time_budget)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    connected = ray_runtime.connect(settings.address, settings.num_cpus)
    try:
        records = run_experiments(plan, clock, log, args.ensemble)
        runs = [comparison.run_comparison(tree, metric="accuracy", alpha=args.alpha, rope=args.rope,
                                          threshold=args.threshold, quiet=True, references=r == 0)
                for r, (_, tree) in enumerate(trees)]
        result = runs[0]
        chosen = chosen_for_curves(result["summary"], families)
        curves_started = time.time()
        curves = run_curves(results_dir, chosen, fractions, log)
        curve_seconds = time.time() - curves_started
    finally:
        if connected:
            import ray
            ray.shutdown()
    points, curve_tests = comparison.compare_curves(curves, alpha=args.alpha, rope=args.rope, threshold=args.threshold)
    curve_dir = results_dir / "Learning Curves"
    atomic.write_text(curve_dir / "learning_curve_points.csv", points.to_csv(index=False))
    atomic.write_text(curve_dir / "learning_curve_tests.csv", curve_tests.to_csv(index=False))
    if len(points):
        comparison.plot_learning_curves(points, curve_tests, results_dir / "learning_curves.png")
    elapsed = time.time() - started_at
    budget_text = f"{args.time_budget:g} h" if args.time_budget else "none"
    settings_lines = [
        f"- Command: `{shlex.join(['python', '-m', 'tuning', *args.argv])}`",
        f"- Search: {settings.samples} trials x up to {settings.max_epochs} epochs (ASHA grace {settings.grace_period}), "
        f"objective validation {settings.metric}, seed {settings.seed}; full split {settings.folds}-fold x "
        f"{settings.repeats} repeats" + (f"; smoke data: {SMOKE_ROWS_PER_CLASS} rows per class" if args.smoke else ""),
        f"- Time budget: {budget_text}; this run took {elapsed / 60:.1f} min (experiments reused from earlier runs "
        "are not timed again).",
        phase_line(records, curve_seconds),
        f"- Learning-curve fractions: {', '.join(f'{100 * f:g}%' for f in fractions)}.",
    ]
    if args.ensemble > 1:
        settings_lines.append(f"- Ensembles: each export also scored the average of its search's top {args.ensemble} "
                              "configurations (the \"... Ensemble\" approaches; in the tables, in no test).")
    across = None
    if len(runs) > 1:
        across = comparison.across_searches(runs, alpha=args.alpha, rope=args.rope)
        atomic.write_text(results_dir / REPEATS_FOLDER / "across_searches.csv", across[0].to_csv(index=False))
        atomic.write_text(results_dir / REPEATS_FOLDER / "accuracy_across_searches.csv", across[1].to_csv(index=False))
        settings_lines.append(f"- Search repeats: {len(runs)} (seeds {', '.join(str(s) for s, _ in trees)}); the "
                              "tables above the \"Across\" section and the learning curves are from the first.")
    markdown = comparison.render_study_report(result, points, curve_tests, experiments=_experiment_lines(records),
                                              settings_lines=settings_lines, alpha=args.alpha, rope=args.rope,
                                              threshold=args.threshold, notes=result["notes"], across=across)
    report = results_dir / "report.md"
    atomic.write_text(report, markdown)
    print(markdown)
    print(f"wrote {report}")
    return 0
