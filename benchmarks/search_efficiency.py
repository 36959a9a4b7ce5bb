"""Search efficiency: Optuna TPE + ASHA against random search + FIFO and TPE + FIFO.

Every method runs the project's own experiment (``tuning.driver.run_experiment``: the same
trainable, ``OptunaSearch`` over the family's space from ``search_spaces.get_space``, the
same ``Tuner`` set-up, data split and seeds); only the sampler and the scheduler differ:

* ``TPE + ASHA``: the project's defaults (seeded multivariate TPE, ASHA on epochs, rf 3);
* ``TPE + FIFO``: the same TPE, every trial runs ``--max-epochs`` epochs;
* ``random + FIFO``: ``optuna.samplers.RandomSampler(seed)``, every trial runs to the end.

Same trial budget (``--samples``), same ``--max-epochs``, same concurrency (as many trials at
once as ``--num-cpus`` allows, 1 CPU each). For each dataset and seed the three experiments
run one after another, their order rotated from seed to seed, so that they share the
machine's conditions.

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

    .venv/bin/python benchmarks/search_efficiency.py                # A4 and A12, 3 seeds
    .venv/bin/python benchmarks/search_efficiency.py --quick --data-dir DIR --datasets T2
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

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

SECTION = "search_efficiency"
METHODS = ("TPE + ASHA", "TPE + FIFO", "random + FIFO")
BASELINE, CANDIDATE = "random + FIFO", "TPE + ASHA"
TARGET_RATIO = 0.25


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="cnn", help="model family whose search space is used (default cnn)")
    p.add_argument("--datasets", default="A4,A12", help="comma list (default A4,A12)")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds (default 0,1,2)")
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
    p.add_argument("--quick", action="store_true",
                   help="3 trials x 2 epochs, grace 1, one seed: checks that the benchmark runs")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.max_epochs, args.grace_period = 3, 2, 1
        args.seeds = args.seeds.split(",")[0]
    return args


def make_method(name: str, seed: int, settings):
    """(sampler, scheduler) for ``run_experiment``; None means the project's default."""
    import optuna
    from ray.tune.schedulers import FIFOScheduler

    if name == "TPE + ASHA":
        return None, None
    if name == "TPE + FIFO":
        return None, FIFOScheduler()
    if name == "random + FIFO":
        return optuna.samplers.RandomSampler(seed=seed), FIFOScheduler()
    raise ValueError(name)


def run_one(family, dataset, seed, method, args, storage) -> dict:
    from tuning.driver import TuneSettings, run_experiment

    settings = TuneSettings(samples=args.samples, max_epochs=args.max_epochs, grace_period=args.grace_period,
                            seed=seed, data_dir=args.data_dir, storage=storage, verbose=0)
    sampler, scheduler = make_method(method, seed, settings)
    log = common.trial_event_log()
    with common.LoadSampler(every=2.0) as load:
        started = time.monotonic()
        outcome = run_experiment(family, [dataset], settings, sampler=sampler, scheduler=scheduler,
                                 callbacks=[log])
        wall = time.monotonic() - started
    # Arrival times counted from the start of Tuner.fit, as the raw file records them.
    events = [{"t": e["t"] - log.fit_start, "trial": e["trial"], "epoch": e["epoch"],
               "val_accuracy": e["val_accuracy"]} for e in log.results]
    per_trial: dict[str, int] = {}
    for e in events:
        per_trial[e["trial"]] = max(per_trial.get(e["trial"], 0), e["epoch"])
    return {"dataset": dataset.name, "seed": seed, "method": method, "wall_s": wall, "load": load.mean(),
            "n_trials": outcome.n_trials, "n_errored": outcome.n_errored,
            "total_epochs": sum(per_trial.values()), "events": events,
            "best": max((e["val_accuracy"] for e in events), default=float("nan"))}


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
        for method in METHODS:
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
        cand = [r for r in runs if sel(r) and r["method"] == CANDIDATE]
        for other in ("TPE + FIFO", BASELINE):
            base = [r for r in runs if sel(r) and r["method"] == other]
            e, eq = ratio(cand, base, "epochs_to")
            t, tq = ratio(cand, base, "time_to")
            tot, _ = ratio(cand, base, "total_epochs")
            ratios.append([scope, f"{CANDIDATE} / {other}", f"{QUALIFIER[eq]}{e:.2f}", f"{QUALIFIER[tq]}{t:.2f}",
                           f"{tot:.2f}"])
            if other == BASELINE:
                headline[scope] = (e, eq)
        base_tpe = [r for r in runs if sel(r) and r["method"] == "TPE + FIFO"]
        base = [r for r in runs if sel(r) and r["method"] == BASELINE]
        e, eq = ratio(base_tpe, base, "epochs_to")
        t, tq = ratio(base_tpe, base, "time_to")
        ratios.append([scope, f"TPE + FIFO / {BASELINE}", f"{QUALIFIER[eq]}{e:.2f}", f"{QUALIFIER[tq]}{t:.2f}",
                       f"{ratio(base_tpe, base, 'total_epochs')[0]:.2f}"])
    return summary, ratios, headline


SUMMARY_HEADER = ["dataset", "method", "total epochs", "epochs to target", "s to target", "wall s",
                  "reached target", "final best val acc %"]
RATIO_HEADER = ["datasets", "ratio", "epochs to target", "wall time to target", "total epochs"]
RUN_HEADER = ["dataset", "seed", "method", "trials", "total epochs", "target %", "epochs to target",
              "s to target", "wall s", "best %", "load avg"]


def run_rows(runs):
    return [[r["dataset"], r["seed"], r["method"], r["n_trials"], r["total_epochs"], f"{100 * r['target']:.2f}",
             ("≥" if r["censored"] else "") + str(r["epochs_to"]), f"{r['time_to']:.0f}", f"{r['wall_s']:.0f}",
             f"{100 * r['best']:.2f}", f"{r['load']:.1f}"] for r in runs]


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


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # average ranks for ties
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = statistics.mean(ra), statistics.mean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cov / var if var else float("nan")


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
                rhos.append(spearman([at_grace[t] for t in trials], [best[t] for t in trials]))
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


def main(argv=None) -> int:
    args = parse_args(argv)
    from tuning.data import load_datasets
    from tuning.splits import min_rows_per_class, tuning_split

    started_at = time.time()
    command = common.script_command(__file__, argv)
    if args.from_raw:  # re-analysis: the run's own settings, machine, command, date and load
        raw = json.loads(Path(args.from_raw).read_text())
        for key in ("family", "datasets", "seeds", "samples", "max_epochs", "grace_period", "num_cpus",
                    "data_dir"):
            setattr(args, key, raw["args"][key])
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
                    order = METHODS[i % 3:] + METHODS[:i % 3]  # rotate: no method always goes first
                    for dataset in datasets:
                        for method in order:
                            print(f"--- {dataset.name} seed {seed}: {method}", flush=True)
                            runs.append(run_one(args.family, dataset, seed, method, args, storage))
        finally:
            if args.storage is None:
                shutil.rmtree(storage, ignore_errors=True)
        prov = {"text": common.provenance(command, load, started_at)}
        if args.raw:
            Path(args.raw).parent.mkdir(parents=True, exist_ok=True)
            Path(args.raw).write_text(json.dumps({"args": vars(args), "provenance": prov, "runs": runs}, indent=1))
    analyse(runs, args.tolerance)
    summary, ratios, headline = summarise(runs, names, seeds, args)
    tolerances = sorted({args.tolerance, *(float(t) for t in args.tolerances.split(",") if t.strip())})

    budget = (f"{args.family} space, {args.samples} trials x {args.max_epochs} max epochs per experiment, "
              f"ASHA grace {args.grace_period} and reduction factor 3, {args.num_cpus} trials at once "
              f"(1 CPU, 1 torch thread each), seeds {', '.join(map(str, seeds))}, "
              f"target = best validation accuracy of the three methods minus {args.tolerance:g} points")
    tables = (f"Per dataset, mean over seeds:\n\n{common.markdown_table(SUMMARY_HEADER, summary)}\n\n"
              f"Ratios (sum over runs of the numerator / of the denominator; ≥ / ≤: a bound, because a side "
              f"did not reach the target in some run and its total stands in; ≈: both sides did not in some runs):"
              f"\n\n{common.markdown_table(RATIO_HEADER, ratios)}\n\n"
              f"TPE + ASHA / random + FIFO if \"there\" means within other tolerances (same runs):\n\n"
              f"{common.markdown_table(SENSITIVITY_HEADER, sensitivity(runs, tolerances))}\n\n"
              f"Diagnostics:\n\n"
              f"{common.markdown_table(DIAG_HEADER, diagnostics(runs, names, args, n_val))}\n")
    text = verdict(runs, headline, args.tolerance)
    print()
    print(tables)
    print(text)
    lines = [prov["text"]]
    if args.from_raw:
        lines.append(f"- Re-analysed {time.strftime('%Y-%m-%d %H:%M %Z')} with `{command}`")
    body = "\n".join([
        "## Search efficiency (`benchmarks/search_efficiency.py`)", "",
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
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
