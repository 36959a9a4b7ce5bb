"""Search efficiency: the ``--searcher`` choices side by side, and TPE + ASHA before and
after the Optuna study was told which trials ASHA stopped.

Every method runs the project's own experiment (``tuning.search.driver.run_experiment``: the same
trainable, the family's space from ``search_spaces.get_space``, the same ``Tuner`` set-up,
data split and seeds); only the search algorithm and the scheduler differ:

* ``TPE + ASHA``: the project's default (``--searcher tpe``: seeded multivariate TPE told
  which trials ASHA stopped, as PRUNED; ASHA on epochs, rf 3);
* ``TPE + ASHA (Ray's OptunaSearch)``: the same TPE and ASHA through Ray's plain
  ``OptunaSearch``, which records an ASHA-stopped trial as COMPLETE with its early score
  (the project before ``tuning.search.searchers``);
* ``random + FIFO``: ``optuna.samplers.RandomSampler(seed)``, every trial runs to the end;
* ``BOHB``: ``--searcher bohb`` (TuneBOHB + HyperBandForBOHB, rf 3);
* ``TPE + FIFO`` (``--methods`` only): the TPE, every trial runs ``--max-epochs`` epochs.

Budget (``--budget``): ``epochs`` (default) gives every method the same number of trained
epochs, ``--samples`` x ``--max-epochs``: FIFO methods run ``--samples`` full trials, the
others as many trials as fit (up to 4x ``--samples``) until a Tune stopper ends the
experiment at the budget. ``trials`` gives every method ``--samples`` trials (the earlier
protocol). ``--candidate-share F`` gives the early-stopping methods F of that epoch budget
(FIFO methods keep all of it): issue 12's target, "TPE + ASHA picks configurations at least
as good as random search without early stopping, using at most a third of its epochs", is
tested with ``--candidate-share 0.333``. Same concurrency (as many trials at once as
``--num-cpus`` allows, 1 CPU each). For each dataset and seed the experiments run one after
another, their order rotated from seed to seed, so that they share the machine's conditions.

Outcome: the configuration each experiment picked (the export's best-trial rule) is rerun
over ``--folds`` x ``--repeats`` stratified folds (``tuning.export.exporter.export_experiment``), and
its full-split accuracy is the method's outcome for that dataset and seed.

Paired outcome test: per dataset and seed both methods search the same split and are scored
on the same folds, so TPE + ASHA minus random + FIFO is one paired difference per (dataset,
seed). Mean difference with its 95% Student-t interval over those pairs (it assumes the
pairs independent and their differences roughly normal; seeds redraw the split, the folds
and the search). "At least as good" is read as non-inferiority: the interval's lower end
above -``NONINFERIORITY_MARGIN`` points (one-sided 2.5%), a margin set at the noise floor
of one search (sd 0.4-1.9 points of the picked configuration, ``noise_floor.py``).

Measured per experiment, from a Tune callback in the driver that sees every epoch's result
as it arrives:

* total epochs: every trained epoch of every trial (a count, so noise cannot move it);
* target: the best validation accuracy that any of the three methods reached (at any
  epoch of any trial) on that dataset and seed, minus ``--tolerance`` points;
* epochs to target: epochs trained, over all trials, until the first result at or above
  the target arrived; wall time to target: seconds from the start of ``Tuner.fit``;
* final best: the best validation accuracy of the experiment.

A method that never reaches the target is "censored": its epochs to target are at least its
total, and ratios that use it are bounds (shown with >= or <=).

    python -m benchmarks.search_efficiency                # A4 and A12, 5 seeds
    python -m benchmarks.search_efficiency --quick --data-dir DIR --datasets T2
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


from benchmarks import common
from tuning import atomic

SECTION = "search_efficiency"
RAY_OPTUNA = "TPE + ASHA (Ray's OptunaSearch)"
METHODS = ("TPE + ASHA", RAY_OPTUNA, "random + FIFO", "BOHB")
ALL_METHODS = (*METHODS, "TPE + FIFO")
BASELINE, CANDIDATE = "random + FIFO", "TPE + ASHA"
MAX_TRIALS_FACTOR = 4  # epoch budget: early-stopping methods may start up to 4x --samples trials
TARGET_RATIO = 0.25
NONINFERIORITY_MARGIN = 1.0  # points; about one search's own noise floor (noise_floor.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="cnn", help="model family whose search space is used (default cnn)")
    p.add_argument("--datasets", default="A4,A12", help="comma list (default A4,A12)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma list of seeds (default 0,1,2,3,4)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma list from: {', '.join(ALL_METHODS)} (default: all but TPE + FIFO)")
    p.add_argument("--budget", choices=("epochs", "trials"), default="epochs",
                   help="equal trained epochs (default) or equal trials per method")
    p.add_argument("--candidate-share", type=float, default=1.0,
                   help="with --budget epochs: the early-stopping methods' share of FIFO's epoch budget "
                        "(default 1: equal; 0.333 tests issue 12's 'a third of the epochs')")
    p.add_argument("--folds", type=int, default=3, help="folds of the outcome's full-split reruns (default 3)")
    p.add_argument("--repeats", type=int, default=1, help="repeats of the outcome's reruns (default 1)")
    p.add_argument("--samples", type=int, default=16, help="trials per experiment (default 16)")
    p.add_argument("--max-epochs", type=int, default=12, help="epochs of a full trial (default 12)")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA grace period in epochs (default 1)")
    p.add_argument("--tolerance", type=float, default=0.5, help="points below the best that count as there")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray runtime (default 2)")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--storage", default=None, help="Ray storage (default: a temporary folder, removed)")
    p.add_argument("--results-md", default=None,
                   help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--raw", default=None, help="also write every epoch's arrival as JSON here")
    p.add_argument("--from-raw", default=None,
                   help="re-analyse a --raw file (no tuning); its machine, command and date are kept")
    p.add_argument("--tolerances", default="0.5,1,2",
                   help="tolerances (points) for the sensitivity table (default 0.5,1,2)")
    p.add_argument("--both-rules", action="store_true",
                   help="also rerun the trial the old best-trial rule (best single epoch) picks, on the same folds")
    p.add_argument("--quick", action="store_true",
                   help="3 trials x 2 epochs, grace 1, one seed: checks that the benchmark runs")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.max_epochs, args.grace_period = 3, 2, 1
        args.seeds = args.seeds.split(",")[0]
        args.folds, args.repeats = 2, 1
    if not 0.0 < args.candidate_share <= 1.0:
        p.error(f"--candidate-share: {args.candidate_share:g} is not in (0, 1]")
    if args.candidate_share < 1.0 and args.budget != "epochs":
        p.error("--candidate-share needs --budget epochs")
    args.method_list = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.method_list if m not in ALL_METHODS]
    if unknown or BASELINE not in args.method_list or CANDIDATE not in args.method_list:
        p.error(f"--methods: {unknown or 'must include ' + BASELINE + ' and ' + CANDIDATE}; "
                f"choose from {', '.join(ALL_METHODS)}")
    return args


def epoch_budget(budget: int):
    """An epoch budget as a ``tune.Stopper`` (defined here: Ray loads on use)."""
    from ray import tune

    class EpochBudget(tune.Stopper):
        """A Tune stopper that ends the experiment once ``budget`` epochs were trained in
        all (every result is one epoch: trials report once per epoch)."""

        def __init__(self, budget: int):
            self.budget, self.epochs = budget, 0

        def __call__(self, trial_id, result) -> bool:
            self.epochs += 1
            return False

        def stop_all(self) -> bool:
            return self.epochs >= self.budget

    return EpochBudget(budget)


def method_budget(method: str, args) -> int:
    """Epochs ``method`` may train under ``--budget epochs``: FIFO's full budget, times
    ``--candidate-share`` for the early-stopping methods."""
    full = args.samples * args.max_epochs
    return full if "FIFO" in method else max(1, round(args.candidate_share * full))


def make_method(name: str, family: str, dataset, settings) -> dict:
    """``run_experiment`` keywords for ``name`` (none: the project's default, --searcher tpe)."""
    import optuna
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    import search_spaces
    from tuning.search import searchers
    from tuning.metrics import metric_mode

    if name == "TPE + ASHA":
        return {}
    if name == RAY_OPTUNA:
        space = search_spaces.get_space(family, [dataset.name])
        sampler = searchers.optuna_sampler("tpe", settings.seed, settings.samples)
        return {"search_alg": OptunaSearch(space=space, metric=f"val_{settings.metric}",
                                           mode=metric_mode(settings.metric), sampler=sampler)}
    if name == "TPE + FIFO":
        return {"scheduler": FIFOScheduler()}
    if name == "random + FIFO":
        return {"sampler": optuna.samplers.RandomSampler(seed=settings.seed), "scheduler": FIFOScheduler()}
    if name == "BOHB":
        return {}  # settings.searcher = "bohb"
    raise ValueError(name)


def run_one(family, dataset, seed, method, args, storage) -> dict:
    from tuning.search.driver import TuneSettings, run_experiment
    from tuning.export.exporter import export_experiment

    fifo = "FIFO" in method
    by_epochs = args.budget == "epochs" and not fifo
    settings = TuneSettings(samples=args.samples * (MAX_TRIALS_FACTOR if by_epochs else 1),
                            max_epochs=args.max_epochs, grace_period=args.grace_period, seed=seed,
                            searcher="bohb" if method == "BOHB" else "tpe", data_dir=args.data_dir,
                            storage=storage, verbose=0, folds=args.folds, repeats=args.repeats)
    extra = make_method(method, family, dataset, settings)
    if by_epochs:
        extra["stop"] = epoch_budget(method_budget(method, args))
    log = common.trial_event_log()
    with common.LoadSampler(every=2.0) as load:
        started = time.monotonic()
        outcome = run_experiment(family, [dataset], settings, callbacks=[log], **extra)
        wall = time.monotonic() - started
    with tempfile.TemporaryDirectory(prefix="search_eff_results_") as results:
        summary = export_experiment(outcome.path, results, folds=args.folds, repeats=args.repeats, progress=False)
    full = summary.full_split.set_index("dataset").loc[dataset.name]
    before = rule_outcome(outcome.path, "best_epoch", summary, args) if args.both_rules else None
    # Arrival times counted from the start of Tuner.fit, as the raw file records them.
    events = [{"t": e["t"] - log.fit_start, "trial": e["trial"], "epoch": e["epoch"],
               "val_accuracy": e["val_accuracy"]} for e in log.results]
    per_trial: dict[str, int] = {}
    for e in events:
        per_trial[e["trial"]] = max(per_trial.get(e["trial"], 0), e["epoch"])
    return {"dataset": dataset.name, "seed": seed, "method": method, "wall_s": wall, "load": load.mean(),
            "n_trials": outcome.n_trials, "n_errored": outcome.n_errored,
            "total_epochs": sum(per_trial.values()), "events": events,
            "best": max((e["val_accuracy"] for e in events), default=float("nan")),
            "full_acc": float(full["accuracy_mean"]), "picked_trial": summary.best.trial_id,
            **({"rule_before": before} if before else {})}


def rule_outcome(experiment_dir, rule: str, summary, args) -> dict:
    """The trial ``rule`` picks from the same search and its full-split accuracy on the same
    folds (rerun only when it is not the default rule's pick): the noise floor before the
    best-trial rule changed (``best_epoch``) beside the one after it (``window3``)."""
    from tuning.search.run_record import read_run_record
    from tuning.export.exporter import export_experiment, find_best_trial

    record = read_run_record(str(experiment_dir))
    best = find_best_trial(str(experiment_dir), record["metric"], record["mode"], rule)
    if best.trial_id == summary.best.trial_id:
        accuracy = float(summary.full_split.set_index("dataset")["accuracy_mean"].iloc[0])
    else:
        with tempfile.TemporaryDirectory(prefix="search_eff_rule_") as results:
            other = export_experiment(experiment_dir, results, folds=args.folds, repeats=args.repeats,
                                      progress=False, best=best)
        accuracy = float(other.full_split["accuracy_mean"].iloc[0])
    return {"rule": rule, "picked_trial": best.trial_id, "full_acc": accuracy}


def analyse(runs: list[dict], tolerance: float) -> None:
    """Adds target, epochs_to, time_to and censored to every run (in place)."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["seed"]), []).append(r)
    for group in groups.values():
        target = max(r["best"] for r in group) - tolerance / 100.0
        for r in group:
            r["target"] = target
            hit = next((i for i, e in enumerate(r["events"]) if e["val_accuracy"] >= target - 1e-12), None)
            r["censored"] = hit is None
            r["epochs_to"] = r["total_epochs"] if hit is None else hit + 1
            r["time_to"] = (r["events"][-1]["t"] if r["events"] else r["wall_s"]) if hit is None \
                else r["events"][hit]["t"]


def ratio(num: list[dict], den: list[dict], key: str) -> tuple[float, str]:
    """sum(num[key]) / sum(den[key]) with the bound its censoring implies ('', '<=', '>=', '?')."""
    a, b = sum(r[key] for r in num), sum(r[key] for r in den)
    value = a / b if b else float("nan")
    if key == "total_epochs":
        return value, ""
    num_c, den_c = any(r["censored"] for r in num), any(r["censored"] for r in den)
    qualifier = "?" if num_c and den_c else ">=" if num_c else "<=" if den_c else ""
    return value, qualifier


def summarise(runs, datasets, seeds, args) -> tuple[list[list], list[list], dict]:
    pct = 100.0
    summary, ratios, headline = [], [], {}
    for name in datasets:
        for method in args.method_list:
            rs = [r for r in runs if r["dataset"] == name and r["method"] == method]
            bests = [pct * r["best"] for r in rs]
            censored = sum(r["censored"] for r in rs)
            summary.append([
                name, method, common.fmt(statistics.mean(r["total_epochs"] for r in rs), 0),
                ("≥" if censored else "") + common.fmt(statistics.mean(r["epochs_to"] for r in rs), 0),
                common.fmt(statistics.mean(r["time_to"] for r in rs), 0),
                common.fmt(statistics.mean(r["wall_s"] for r in rs), 0),
                f"{len(rs) - censored}/{len(rs)}",
                common.fmt(statistics.mean(bests), 2) + (f" ± {statistics.stdev(bests):.2f}" if len(bests) > 1 else ""),
            ])
    for scope in [*datasets, "all"]:
        sel = (lambda r: True) if scope == "all" else (lambda r, s=scope: r["dataset"] == s)
        base = [r for r in runs if sel(r) and r["method"] == BASELINE]
        for method in args.method_list:
            if method == BASELINE:
                continue
            num = [r for r in runs if sel(r) and r["method"] == method]
            e, eq = ratio(num, base, "epochs_to")
            t, tq = ratio(num, base, "time_to")
            tot, _ = ratio(num, base, "total_epochs")
            ratios.append([scope, f"{method} / {BASELINE}", f"{QUALIFIER[eq]}{e:.2f}", f"{QUALIFIER[tq]}{t:.2f}",
                           f"{tot:.2f}"])
            if method == CANDIDATE:
                headline[scope] = (e, eq)
    return summary, ratios, headline


def outcomes(runs: list[dict], datasets: list[str], methods: list[str]) -> list[list]:
    """Per dataset and method: the full-split accuracy of the configuration picked (median,
    range, mean ± sd over seeds), and the epochs until the first validation accuracy at or
    above random + FIFO's final best in the same dataset and seed (a proxy: only the picked
    configuration's full-split accuracy is measured)."""
    rows = []
    for name in datasets:
        base = {r["seed"]: r["best"] for r in runs if r["dataset"] == name and r["method"] == BASELINE}
        for method in methods:
            rs = [r for r in runs if r["dataset"] == name and r["method"] == method]
            acc = [100 * r["full_acc"] for r in rs if not math.isnan(r.get("full_acc", float("nan")))]
            reach, missed = [], 0
            for r in rs:
                hit = next((i for i, e in enumerate(r["events"]) if e["val_accuracy"] >= base.get(r["seed"], 2) - 1e-12),
                           None)
                missed += hit is None
                reach.append(r["total_epochs"] if hit is None else hit + 1)
            rows.append([
                name, method, len(acc),
                common.fmt(statistics.median(acc), 2) if acc else "n/a",
                f"{min(acc):.2f} – {max(acc):.2f}" if acc else "n/a",
                (common.fmt(statistics.mean(acc), 2) + (f" ± {statistics.stdev(acc):.2f}" if len(acc) > 1 else ""))
                if acc else "n/a",
                ("≥" if missed else "") + common.fmt(statistics.median(reach), 0) if reach else "n/a",
                f"{len(rs) - missed}/{len(rs)}",
                common.fmt(statistics.mean(r["total_epochs"] for r in rs), 0) if rs else "n/a",
            ])
    return rows


def paired_outcomes(runs: list[dict], datasets: list[str], methods: list[str]) -> tuple[list[list], dict]:
    """Each method minus random + FIFO in full-split accuracy, paired by (dataset, seed):
    mean, 95% t-interval over the pairs, two-sided p (one-sample t-test), wins / losses,
    and the non-inferiority reading (module docstring). Returns the rows and, for the
    candidate over all datasets, a dict of ``mean``, ``low``, ``high`` and ``n`` (pairs)."""
    from scipy import stats as scipy_stats

    from tuning.statistics import mean_ci

    acc = {(r["dataset"], r["seed"], r["method"]): 100 * r["full_acc"] for r in runs
           if not math.isnan(r.get("full_acc", float("nan")))}
    rows, headline = [], {}
    for scope in [*datasets, "all"]:
        for method in methods:
            if method == BASELINE:
                continue
            diffs = [acc[(d, s, method)] - acc[(d, s, BASELINE)] for (d, s, m) in acc
                     if m == method and (scope == "all" or d == scope) and (d, s, BASELINE) in acc]
            if not diffs:
                continue
            mean, low, high = mean_ci(diffs) if len(diffs) > 1 else (diffs[0], float("nan"), float("nan"))
            p = float(scipy_stats.ttest_1samp(diffs, 0.0).pvalue) if len(diffs) > 2 and len(set(diffs)) > 1 \
                else float("nan")
            verdict = ("n/a" if math.isnan(low) else
                       "at least as good" if low > -NONINFERIORITY_MARGIN else "not shown")
            rows.append([scope, f"{method} - {BASELINE}", len(diffs), f"{mean:+.2f}",
                         "n/a" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]",
                         "n/a" if math.isnan(p) else f"{p:.2g}",
                         f"{sum(d > 0 for d in diffs)} / {sum(d < 0 for d in diffs)}", verdict])
            if scope == "all" and method == CANDIDATE:
                headline = {"mean": mean, "low": low, "high": high, "n": len(diffs)}
    return rows, headline


PAIRED_HEADER = ["datasets", "difference", "pairs (dataset, seed)", "mean, points", "95% t-interval",
                 "p (two-sided)", "better / worse", f"non-inferior (lower end > -{NONINFERIORITY_MARGIN:g} pt)"]


def paired_verdict(headline: dict, args) -> str:
    """Issue 12's target on the outcome that matters: at least as good as random + FIFO
    (non-inferiority) with at most a third of its epochs."""
    if not headline or math.isnan(headline["low"]):
        return ""
    share = args.candidate_share
    met = share <= 1 / 3 + 1e-3 and headline["low"] > -NONINFERIORITY_MARGIN
    return (f"**Outcome target {'met' if met else 'not met'}** (TPE + ASHA picks configurations at least as good "
            f"as random + FIFO with at most a third of its epochs): with {share:.3g} of random + FIFO's epochs, "
            f"TPE + ASHA minus random + FIFO = {headline['mean']:+.2f} points [{headline['low']:+.2f}, "
            f"{headline['high']:+.2f}] over {headline['n']} (dataset, seed) pairs; non-inferiority margin "
            f"{NONINFERIORITY_MARGIN:g} point.")


OUTCOME_HEADER = ["dataset", "method", "seeds", "full-split acc % (median)", "range", "mean ± sd",
                  "epochs to random + FIFO's final best val acc (median)", "reached it", "total epochs (mean)"]


SUMMARY_HEADER = ["dataset", "method", "total epochs", "epochs to target", "s to target", "wall s",
                  "reached target", "final best val acc %"]
RATIO_HEADER = ["datasets", "ratio", "epochs to target", "wall time to target", "total epochs"]
RUN_HEADER = ["dataset", "seed", "method", "trials", "total epochs", "target %", "epochs to target",
              "s to target", "wall s", "best %", "full-split acc %", "load avg"]


def run_rows(runs):
    return [[r["dataset"], r["seed"], r["method"], r["n_trials"], r["total_epochs"], f"{100 * r['target']:.2f}",
             ("≥" if r["censored"] else "") + str(r["epochs_to"]), f"{r['time_to']:.0f}", f"{r['wall_s']:.0f}",
             f"{100 * r['best']:.2f}", f"{100 * r['full_acc']:.2f}" if "full_acc" in r else "n/a",
             f"{r['load']:.1f}"] for r in runs]


def verdict(runs: list[dict], headline: dict, tolerance: float) -> str:
    cand = [r for r in runs if r["method"] == CANDIDATE]
    base = [r for r in runs if r["method"] == BASELINE]
    missed = sum(r["censored"] for r in cand)
    e, q = headline["all"]
    if not missed and q in ("", "<=") and e <= TARGET_RATIO:
        return (f"**Target met**: TPE + ASHA reached the target (best of all methods - {tolerance:g} points) "
                f"with {q}{e:.2f} of random + FIFO's epochs (target <= {TARGET_RATIO}).")
    if missed:
        short = [100 * (r["target"] - r["best"]) for r in cand if r["censored"]]
        return (f"**Target not met**: TPE + ASHA reached the target (best of all methods - {tolerance:g} points) "
                f"in {len(cand) - missed} of {len(cand)} runs (random + FIFO: "
                f"{len(base) - sum(r['censored'] for r in base)} of {len(base)}); where it did not, its best was "
                f"{statistics.mean(short):.2f} points short of the target on average. Epochs-to-target ratio "
                f"{QUALIFIER[q]}{e:.2f} (target <= {TARGET_RATIO}); total-epoch ratio "
                f"{ratio(cand, base, 'total_epochs')[0]:.2f}.")
    return (f"**Target not met**: TPE + ASHA needed {QUALIFIER[q]}{e:.2f} of random + FIFO's epochs to reach "
            f"the target (target <= {TARGET_RATIO}).")


QUALIFIER = {"": "", "<=": "≤", ">=": "≥", "?": "≈"}


def sensitivity(runs: list[dict], tolerances: list[float]) -> list[list]:
    """TPE + ASHA against random + FIFO when "there" means within each tolerance."""
    rows = []
    for tol in tolerances:
        copy = [dict(r) for r in runs]
        analyse(copy, tol)
        cand = [r for r in copy if r["method"] == CANDIDATE]
        base = [r for r in copy if r["method"] == BASELINE]
        e, q = ratio(cand, base, "epochs_to")
        t, tq = ratio(cand, base, "time_to")
        rows.append([f"{tol:g}", f"{sum(not r['censored'] for r in cand)}/{len(cand)}",
                     f"{sum(not r['censored'] for r in base)}/{len(base)}",
                     f"{QUALIFIER[q]}{e:.2f}", f"{QUALIFIER[tq]}{t:.2f}"])
    return rows


SENSITIVITY_HEADER = ["tolerance (points)", "TPE + ASHA reached", "random + FIFO reached",
                      "epochs-to-target ratio", "wall-time ratio"]


def diagnostics(runs: list[dict], datasets: list[str], args, n_val: dict) -> list[list]:
    """Why TPE + ASHA does (not) get there: how well the accuracy at the grace period ranks
    trials by their final best (from the FIFO runs, where every trial ran to the end), how many
    ASHA trials ran to the end, and the validation set's own noise."""
    rows = []
    for name in datasets:
        rhos = []
        for r in runs:
            if r["dataset"] != name or "FIFO" not in r["method"]:
                continue
            at_grace, best = {}, {}
            for e in r["events"]:
                if e["epoch"] == args.grace_period:
                    at_grace[e["trial"]] = e["val_accuracy"]
                best[e["trial"]] = max(best.get(e["trial"], 0.0), e["val_accuracy"])
            trials = sorted(at_grace)
            if len(trials) > 2:
                rhos.append(common.spearman([at_grace[t] for t in trials], [best[t] for t in trials]))
        full = []
        for r in runs:
            if r["dataset"] == name and r["method"] == CANDIDATE:
                last = {}
                for e in r["events"]:
                    last[e["trial"]] = max(last.get(e["trial"], 0), e["epoch"])
                full.append(sum(v >= args.max_epochs for v in last.values()))
        bests = [r["best"] for r in runs if r["dataset"] == name]
        p = statistics.mean(bests) if bests else float("nan")
        se = 100 * math.sqrt(p * (1 - p) / n_val[name]) if n_val.get(name) else float("nan")
        rows.append([name, f"{statistics.mean(rhos):.2f}" if rhos else "n/a",
                     f"{statistics.mean(full):.1f} of {args.samples}" if full else "n/a",
                     n_val.get(name, "n/a"), f"{se:.1f}"])
    return rows


DIAG_HEADER = ["dataset", "rank corr. (accuracy at the grace epoch vs trial's best; FIFO runs)",
               "TPE + ASHA trials run to the last epoch (mean)", "validation rows",
               "binomial s.e. of a validation accuracy (points)"]


def write_raw(args, prov: dict, runs: list[dict]) -> None:
    Path(args.raw).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(Path(args.raw), json.dumps({"args": vars(args), "provenance": prov, "runs": runs}, indent=1))


def main(argv=None) -> int:
    args = parse_args(argv)
    from tuning.data.readers import load_datasets
    from tuning.data.splits import min_rows_per_class, tuning_split

    started_at = time.time()
    command = common.script_command(__file__, argv)
    if args.from_raw:  # re-analysis: the run's own settings, machine, command, date and load
        raw = json.loads(Path(args.from_raw).read_text())
        for key in ("family", "datasets", "seeds", "samples", "max_epochs", "grace_period", "num_cpus",
                    "data_dir", "method_list", "budget", "folds", "repeats", "candidate_share"):
            if key in raw["args"]:  # files from before --methods / --budget hold the first eight
                setattr(args, key, raw["args"][key])
        if "method_list" not in raw["args"]:
            args.method_list, args.budget = ["TPE + ASHA", "TPE + FIFO", "random + FIFO"], "trials"
        runs, prov = raw["runs"], raw["provenance"]
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    datasets = load_datasets(names, args.data_dir, None, min_rows_per_class(5))
    n_val = {d.name: len(tuning_split(d.y, 0, 0.15, 0.15).val) for d in datasets}
    if not args.from_raw:
        storage = args.storage or tempfile.mkdtemp(prefix="search_eff_")
        runs = []
        try:
            with common.LoadSampler() as load, common.ray_runtime(args.num_cpus):
                for i, seed in enumerate(seeds):
                    k = i % len(args.method_list)
                    order = args.method_list[k:] + args.method_list[:k]  # rotate: no method always goes first
                    for dataset in datasets:
                        for method in order:
                            print(f"--- {dataset.name} seed {seed}: {method}", flush=True)
                            runs.append(run_one(args.family, dataset, seed, method, args, storage))
                            if args.raw:  # so far, re-analysable with --from-raw if the run is cut short
                                write_raw(args, {"text": common.provenance(command, load, started_at)
                                                 + "\n- **Partial**: the run was cut short after these"
                                                 " experiments"}, runs)
        finally:
            if args.storage is None:
                shutil.rmtree(storage, ignore_errors=True)
        prov = {"text": common.provenance(command, load, started_at)}
        if args.raw:
            write_raw(args, prov, runs)
    analyse(runs, args.tolerance)
    summary, ratios, headline = summarise(runs, names, seeds, args)
    tolerances = sorted({args.tolerance, *(float(t) for t in args.tolerances.split(",") if t.strip())})

    per_method = (f"{args.samples * args.max_epochs} epochs per experiment for FIFO ({args.samples} full trials), "
                  f"{method_budget(CANDIDATE, args)} for the others (as many trials as fit, at most "
                  f"{MAX_TRIALS_FACTOR * args.samples})"
                  if args.budget == "epochs" else f"{args.samples} trials per experiment")
    budget = (f"{args.family} space, {per_method}, {args.max_epochs} max epochs per trial, "
              f"ASHA grace {args.grace_period}, reduction factor 3 (ASHA and BOHB's HyperBand), {args.num_cpus} "
              f"trials at once (1 CPU, 1 torch thread each), seeds {', '.join(map(str, seeds))}, methods "
              f"{', '.join(args.method_list)}; outcome = full-split accuracy of the picked configuration over "
              f"{args.folds} folds x {args.repeats} repeat(s); target = best validation accuracy of all "
              f"methods minus {args.tolerance:g} points")
    outcome_rows = outcomes(runs, names, args.method_list)
    best_by_dataset = []
    for name in names:
        rows = [r for r in outcome_rows if r[0] == name and r[3] != "n/a"]
        if rows:
            top = max(rows, key=lambda r: float(r[3]))
            best_by_dataset.append(f"{name}: {top[1]} ({top[3]}%)")
    outcome_text = ("Highest median full-split accuracy of the picked configuration: "
                    + "; ".join(best_by_dataset) + ".") if best_by_dataset else ""
    paired_rows, paired_headline = paired_outcomes(runs, names, args.method_list)
    tables = (f"Outcome (full-split accuracy of the configuration each experiment picked):\n\n"
              f"{common.markdown_table(OUTCOME_HEADER, outcome_rows)}\n\n"
              f"Paired by dataset and seed (same split and folds; the test's assumptions: module docstring):\n\n"
              f"{common.markdown_table(PAIRED_HEADER, paired_rows)}\n\n"
              f"Per dataset, mean over seeds:\n\n{common.markdown_table(SUMMARY_HEADER, summary)}\n\n"
              f"Ratios (sum over runs of the numerator / of the denominator; ≥ / ≤: a bound, because a side "
              f"did not reach the target in some run and its total stands in; ≈: both sides did not in some runs):"
              f"\n\n{common.markdown_table(RATIO_HEADER, ratios)}\n\n"
              f"TPE + ASHA / random + FIFO if \"there\" means within other tolerances (same runs):\n\n"
              f"{common.markdown_table(SENSITIVITY_HEADER, sensitivity(runs, tolerances))}\n\n"
              f"Diagnostics:\n\n"
              f"{common.markdown_table(DIAG_HEADER, diagnostics(runs, names, args, n_val))}\n")
    target_text = paired_verdict(paired_headline, args)
    text = ((outcome_text + "\n\n" if outcome_text else "") + (target_text + "\n\n" if target_text else "")
            + verdict(runs, headline, args.tolerance))
    print()
    print(tables)
    print(text)
    lines = [prov["text"]]
    if args.from_raw:
        lines.append(f"- Re-analysed {time.strftime('%Y-%m-%d %H:%M %Z')} with `{command}`")
    body = "\n".join([
        "## Search efficiency (`benchmarks/search_efficiency.py`)"
        + (f", early stopping with {args.candidate_share:g} of FIFO's epochs" if args.candidate_share < 1 else ""), "",
        *lines, f"- Budget: {budget}", "",
        text, "", tables,
        "Every experiment (in the order run):", "",
        common.markdown_table(RUN_HEADER, run_rows(runs)), "",
        "Definitions: *total epochs* = epochs trained over all trials (sum of each trial's last "
        "`training_iteration`); *epochs to target* = epochs trained, counted in the order the driver "
        "received them, until the first validation accuracy >= target; *s to target* = seconds from the "
        "start of `Tuner.fit` to that result; ≥ = never reached (lower bound: the total). "
        "*load avg* = mean 1-minute load average during the experiment.",
    ])
    # A run at another budget share is another protocol: its own section, beside the equal-budget one.
    common.write_section(args, SECTION if args.candidate_share == 1 else f"{SECTION}-share-{args.candidate_share:g}",
                         body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
