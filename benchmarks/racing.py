"""Racing the top K configurations (``tune --race K``) against the search's own pick.

Per dataset and seed, the default search of ``--family`` runs once (``tune``'s defaults unless
``--samples``/``--max-epochs`` say otherwise; the seed draws the tuning split, the search and the
folds, as ``tune --seed`` does). On that one search two rules pick a configuration:

* *search*: the project's one rule (:mod:`tuning.search.best_trial`, ``window3``);
* *race*: the search's top ``--k`` raced on ``racing.RACE_FOLDS`` extra folds of the tuning
  split's training + validation rows (:mod:`tuning.export.racing`), best mean wins.

Each pick is then scored as the export scores it: full-split reruns on ``--folds`` x
``--repeats`` folds of all rows (the same folds for both picks; one rerun where both rules pick
the same trial). The outcome is the paired difference race - search per seed; the interval over
seeds is a t interval on those differences (it assumes the seeds' differences independent and
roughly normal: each seed redraws the split, the search and the folds). The race's full-split
folds overlap the rows it raced on, as the search's do with the rows it searched on, so both
rules' full-split scores carry the same kind of optimism.

Decision rule, fixed before measuring: racing becomes ``tune``'s default only if the mean paired
gain over every dataset and seed is positive with its 95% interval above 0.

    python -m benchmarks.racing                                   # auto on A4 and A12, seeds 0-4
    python -m benchmarks.racing --quick --data-dir DIR --datasets T3  # a test of the script
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

SECTION = "racing"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="auto", help="the family searched (default auto, the README's first command)")
    p.add_argument("--datasets", default="A4,A12", help="comma list (default A4,A12)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma list of seeds (default 0-4)")
    p.add_argument("--k", type=int, default=5, help="configurations raced (default 5)")
    p.add_argument("--samples", type=int, default=None, help="trials per search (default: tune's)")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs of a full trial (default: tune's)")
    p.add_argument("--folds", type=int, default=None, help="full-split folds (default: tune's)")
    p.add_argument("--repeats", type=int, default=None, help="full-split repeats (default: tune's)")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--raw", default=None, help="write every seed's outcome as JSON here (after each seed)")
    p.add_argument("--from-raw", default=None, help="analyse a saved --raw file (no training)")
    p.add_argument("--results-md", default=None,
                   help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true", help="3 trials x 2 epochs, k 2, 2x1 folds, seeds 0,1: a test")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.max_epochs, args.k, args.folds, args.repeats, args.seeds = 3, 2, 2, 2, 1, "0,1"
    return args


def settings_for(args, seed: int, storage: str):
    from tuning.settings import TuneSettings

    defaults = TuneSettings()
    given = {k: getattr(args, k) for k in ("samples", "max_epochs", "folds", "repeats") if getattr(args, k)}
    grace = min(defaults.grace_period, given.get("max_epochs", defaults.max_epochs))
    return TuneSettings(**given, grace_period=grace, seed=seed, storage=storage, verbose=0)


def full_split_scores(family, config, dataset, settings) -> dict:
    """The export's full-split reruns of ``config``: mean accuracy and balanced accuracy (%)."""
    from tuning.export.exporter import INNER_VAL_FRACTION, rerun_patience
    from tuning.export.reruns import FULL_SPLIT, plan_jobs, run_jobs

    jobs = [j for j in plan_jobs([dataset], seed=settings.seed, folds=settings.folds, repeats=settings.repeats,
                                 val_fraction=settings.val_fraction, test_fraction=settings.test_fraction,
                                 inner_val_fraction=INNER_VAL_FRACTION) if j.kind == FULL_SPLIT]
    rows = run_jobs(family, config, [dataset], jobs, max_epochs=settings.max_epochs,
                    patience=rerun_patience(settings.max_epochs), metric=settings.metric, progress=False)
    return {"accuracy": 100 * statistics.mean(r["accuracy"] for r in rows),
            "balanced_accuracy": 100 * statistics.mean(r["balanced_accuracy"] for r in rows),
            "epochs": sum(r["epochs"] for r in rows)}


def run_one(args, dataset, seed: int, storage: str) -> dict:
    from tuning.export import racing
    from tuning.export.exporter import INNER_VAL_FRACTION, ranked_trials, rerun_patience
    from tuning.metrics import metric_mode
    from tuning.search.driver import run_experiment

    settings = settings_for(args, seed, storage)
    events = common.trial_event_log()
    t0 = time.monotonic()
    outcome = run_experiment(args.family, [dataset], settings, callbacks=[events])
    search_s = time.monotonic() - t0
    ranked = ranked_trials(str(outcome.path), outcome.metric, metric_mode(settings.metric))
    candidates = ranked[:args.k]
    t0 = time.monotonic()
    result = racing.race(args.family, [c.config for c in candidates], [dataset],
                         racing.race_jobs([dataset], seed=seed, folds=racing.RACE_FOLDS,
                                          val_fraction=settings.val_fraction, test_fraction=settings.test_fraction,
                                          inner_val_fraction=INNER_VAL_FRACTION),
                         max_epochs=settings.max_epochs, patience=rerun_patience(settings.max_epochs),
                         metric=settings.metric, progress=False)
    race_s = time.monotonic() - t0
    own = full_split_scores(args.family, candidates[0].config, dataset, settings)
    raced = own if result.winner == 0 else full_split_scores(args.family, candidates[result.winner].config,
                                                             dataset, settings)
    family_of = [c.config.get("auto_family", args.family) for c in candidates]
    return {"dataset": dataset.name, "seed": seed, "n_trials": outcome.n_trials, "search_epochs": len(events.results),
            "search_s": search_s, "race_s": race_s, "race_epochs": result.epochs,
            "winner_rank": result.winner + 1, "candidate_families": family_of,
            "search_scores": [100 * c.value for c in candidates], "race_scores": [100 * s for s in result.scores],
            "search_pick": own, "race_pick": raced}


def summarise(runs: list[dict], datasets: list[str]) -> tuple[list[list], dict]:
    from scipy import stats

    def interval(diffs):
        if len(diffs) < 2:
            return float("nan"), float("nan")
        half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
        return statistics.mean(diffs) - half, statistics.mean(diffs) + half

    rows, overall = [], {}
    for name in [*datasets, "all"]:
        here = [r for r in runs if name in ("all", r["dataset"])]
        if not here:
            continue
        own = [r["search_pick"]["accuracy"] for r in here]
        raced = [r["race_pick"]["accuracy"] for r in here]
        diffs = [b - a for a, b in zip(own, raced)]
        bal = [r["race_pick"]["balanced_accuracy"] - r["search_pick"]["balanced_accuracy"] for r in here]
        low, high = interval(diffs)
        # Between-seed spread within one dataset; over several datasets it would measure the datasets.
        sd = (lambda v: statistics.stdev(v) if len(v) > 1 and name != "all" else float("nan"))
        rows.append([name, len(here), f"{sum(r['winner_rank'] != 1 for r in here)}/{len(here)}",
                     common.fmt(statistics.mean(own), 2), common.fmt(statistics.mean(raced), 2),
                     f"{statistics.mean(diffs):+.2f} [{low:+.2f}, {high:+.2f}]", detectable(diffs),
                     f"{statistics.mean(bal):+.2f}",
                     common.fmt(sd(own), 2), common.fmt(sd(raced), 2),
                     common.fmt(statistics.mean(r["race_s"] for r in here) / 60, 1),
                     common.fmt(statistics.mean(r["search_s"] for r in here) / 60, 1),
                     f"{statistics.mean(r['race_epochs'] / max(1, r['search_epochs']) for r in here):.2f}"])
        if name == "all":
            overall = {"mean": statistics.mean(diffs), "low": low, "high": high, "n": len(diffs)}
    return rows, overall


def detectable(diffs: list[float], alpha: float = 0.05) -> str:
    """The least mean gain a two-sided paired t-test over these seeds detects with 80% power,
    at the observed sd of the differences."""
    from tuning.statistics import least_detectable_difference

    sd = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
    return common.fmt(least_detectable_difference(sd, len(diffs), 0.0, alpha), 2)


HEADER = ["dataset", "seeds", "race changed the pick", "search pick acc %", "race pick acc %",
          "race - search (95% CI)", "detectable with 80% power", "balanced: race - search", "sd between seeds (search)",
          "sd between seeds (race)", "race min", "search min", "race epochs / search epochs"]


def decision(overall: dict, k: int) -> str:
    if overall and overall["low"] > 0:
        return (f"**Decision: racing (`--race {k}`) is better on these measurements** (mean gain "
                f"{overall['mean']:+.2f} points, 95% interval above 0).")
    return (f"**Decision: racing stays an option (`tune --race {k}`), not the default**: its mean paired gain "
            f"over {overall.get('n', 0)} searches is {overall.get('mean', float('nan')):+.2f} points, 95% interval "
            f"[{overall.get('low', float('nan')):+.2f}, {overall.get('high', float('nan')):+.2f}], not above 0, "
            "for the cost above.")


def main(argv=None) -> int:
    args = parse_args(argv)
    from tuning.data.readers import load_datasets
    from tuning.data.splits import min_rows_per_class

    started = time.time()
    command = common.script_command(__file__, argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    if args.from_raw:
        raw = json.loads(Path(args.from_raw).read_text())
        runs, prov = raw["runs"], raw["provenance"]
    else:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        datasets = load_datasets(names, args.data_dir, None, min_rows_per_class(args.folds or 5))
        storage = tempfile.mkdtemp(prefix="racing_")
        runs = []
        try:
            with common.LoadSampler() as load, common.ray_runtime(args.num_cpus):
                for dataset in datasets:
                    for seed in seeds:
                        runs.append(run_one(args, dataset, seed, storage))
                        r = runs[-1]
                        print(f"{r['dataset']} seed {seed}: search pick {r['search_pick']['accuracy']:.2f}%, race "
                              f"pick (rank {r['winner_rank']}) {r['race_pick']['accuracy']:.2f}%; search "
                              f"{r['search_s']:.0f} s, race {r['race_s']:.0f} s", flush=True)
                        if args.raw:
                            Path(args.raw).write_text(json.dumps({"args": vars(args), "provenance": {
                                "text": common.provenance(command, load, started)}, "runs": runs}, indent=1))
        finally:
            shutil.rmtree(storage, ignore_errors=True)
        prov = {"text": common.provenance(command, load, started)}
        if args.raw:
            Path(args.raw).write_text(json.dumps({"args": vars(args), "provenance": prov, "runs": runs}, indent=1))
    from tuning.export import racing

    settings = settings_for(args, 0, "unused")
    rows, overall = summarise(runs, names)
    body = "\n".join([
        "## Racing the top configurations (`benchmarks/racing.py`)", "",
        prov["text"],
        f"- Search: `{args.family}`, {settings.samples} trials x up to {settings.max_epochs} epochs (TPE + ASHA, "
        f"grace {settings.grace_period}), one per dataset and seed; race: the search's top {args.k} on "
        f"{racing.RACE_FOLDS} extra folds of the tuning split's training + validation rows; outcome: full-split "
        f"accuracy over {settings.folds} x {settings.repeats} folds of all rows (the export's), the same folds "
        "for both picks", "",
        common.markdown_table(HEADER, rows), "",
        "*race - search*: mean paired difference of full-split accuracy (points) with a t interval over the "
        "seeds (assumes their differences independent and roughly normal); *detectable*: the least mean gain "
        "that a paired t-test over these seeds finds with 80% power at the observed sd of the differences; "
        "*sd between seeds*: how much one "
        "rule's pick moves when the seed changes; *race min* / *search min*: wall minutes on the "
        f"{args.num_cpus} CPUs; *race epochs / search epochs*: the race's training epochs over the search's.", "",
        decision(overall, args.k),
    ])
    print(body)
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
