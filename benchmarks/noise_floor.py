"""The noise floor of one search: how much the full-split accuracy of the configuration a
search picks moves when only the search's seed changes.

Per family and dataset, the project's default search (TPE told which trials ASHA stopped,
ASHA on epochs) runs once per seed under the equal-epoch budget of
``benchmarks/search_efficiency.py`` (its ``TPE + ASHA`` arm, :func:`search_efficiency.run_one`:
``--samples`` x ``--max-epochs`` epochs per search, as many trials as fit). The configuration
each search picks is rerun on ``--folds`` x ``--repeats`` folds. As with ``tune --seed``, the
seed also draws the tuning split and the folds, so the spread below is what a lab sees when
it reruns a search with another seed: the search's own variation plus that of re-partitioning
and retraining one configuration (not separated here).

Both best-trial rules of :mod:`tuning.search.best_trial` are scored on the same searches: *before*
(``best_epoch``, the rule until the accuracy issue) and *after* (``window3``, the default);
where both pick the same trial the rerun is shared.

The standard deviation over seeds is the smallest difference one search can claim: two
approaches each tuned by one search differ by about sqrt(2) x sd from the searches alone.

``--add-raw`` takes the ``TPE + ASHA`` experiments of a ``search_efficiency.py --both-rules``
raw file (same budget) instead of running that family again.

    python -m benchmarks.noise_floor --families cnn,lstm --add-raw benchmarks/out/search_eff.json
    python -m benchmarks.noise_floor --quick --data-dir DIR --datasets T2
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


from benchmarks import common, search_efficiency

SECTION = "noise_floor"
METHOD = search_efficiency.CANDIDATE  # the project's default search
HEADER = ["family", "dataset", "searches", "full-split acc % (mean)", "sd after (window3)", "range after",
          "sd before (best_epoch)", "range before", "same pick", "sqrt(2) x sd after", "load avg"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="ffn,cnn,lstm", help="comma list (default ffn,cnn,lstm)")
    p.add_argument("--datasets", default="A4,A12", help="comma list (default A4,A12)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma list of search seeds (default 0-4)")
    p.add_argument("--samples", type=int, default=16, help="full trials' worth of epochs per search (default 16)")
    p.add_argument("--max-epochs", type=int, default=12, help="epochs of a full trial (default 12)")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA grace period (default 1)")
    p.add_argument("--folds", type=int, default=3, help="folds of the picked configuration's reruns (default 3)")
    p.add_argument("--repeats", type=int, default=1, help="repeats of those reruns (default 1)")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--add-raw", action="append", default=[],
                   help="a search_efficiency.py --both-rules raw file whose TPE + ASHA runs count here")
    p.add_argument("--raw", default=None, help="write every search's outcome as JSON here")
    p.add_argument("--from-raw", default=None, help="analyse a saved --raw file (no training)")
    p.add_argument("--results-md", default=None, help="RESULTS.md to update (default benchmarks/RESULTS.md; "
                                                      "--quick: none)")
    p.add_argument("--quick", action="store_true", help="one family, 2 seeds, 3 trials x 2 epochs: a test")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.max_epochs, args.grace_period, args.folds, args.repeats = 3, 2, 1, 2, 1
        args.families, args.seeds = args.families.split(",")[0], "0,1"
    args.budget, args.both_rules = "epochs", True  # what search_efficiency.run_one reads
    return args


def imported_runs(path: str) -> list[dict]:
    """The TPE + ASHA experiments of a search-efficiency raw file, with their family."""
    raw = json.loads(Path(path).read_text())
    family = raw["args"]["family"]
    runs = [{**r, "family": family, "source": Path(path).name} for r in raw["runs"]
            if r["method"] == METHOD and "rule_before" in r]
    if not runs:
        raise SystemExit(f"error: {path}: no '{METHOD}' experiments with both rules (run search_efficiency.py "
                         "with --both-rules)")
    return runs


def _spread(values: list[float]) -> tuple[str, str]:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return common.fmt(sd, 2), f"{min(values):.2f} – {max(values):.2f}"


def table(runs: list[dict]) -> list[list]:
    rows = []
    keys = list(dict.fromkeys((r["family"], r["dataset"]) for r in runs))
    for family, dataset in keys:
        here = [r for r in runs if (r["family"], r["dataset"]) == (family, dataset)]
        after = [100 * r["full_acc"] for r in here]  # the raw file holds fractions
        before = [100 * r["rule_before"]["full_acc"] for r in here]
        same = sum(r["rule_before"]["picked_trial"] == r["picked_trial"] for r in here)
        sd_after, range_after = _spread(after)
        sd_before, range_before = _spread(before)
        sd = statistics.stdev(after) if len(after) > 1 else float("nan")
        rows.append([family, dataset, len(here), common.fmt(statistics.mean(after), 2), sd_after, range_after,
                     sd_before, range_before, f"{same}/{len(here)}", common.fmt(2 ** 0.5 * sd, 2),
                     common.fmt(statistics.mean(r["load"] for r in here), 1)])
    return rows


def sd_uncertainty(n: int) -> str:
    """How far the true sd may be from one estimated over ``n`` searches (normal outcomes)."""
    if n < 2:
        return ""
    from scipy.stats import chi2

    low, high = (((n - 1) / chi2.ppf(q, n - 1)) ** 0.5 for q in (0.975, 0.025))
    return (f"An sd over {n} searches is itself uncertain: assuming normally distributed outcomes, the "
            f"95% interval of the true sd is {low:.1f}-{high:.1f} x the estimate (chi-square, {n - 1} d.f.).")


def main(argv=None) -> int:
    args = parse_args(argv)
    from tuning.data.readers import load_datasets
    from tuning.data.splits import min_rows_per_class

    started = time.time()
    command = common.script_command(__file__, argv)
    if args.from_raw:
        raw = json.loads(Path(args.from_raw).read_text())
        runs, prov = raw["runs"], raw["provenance"]
        for key in ("samples", "max_epochs", "grace_period", "folds", "repeats", "num_cpus"):
            setattr(args, key, raw["args"][key])
    else:
        runs = [r for path in args.add_raw for r in imported_runs(path)]
        families = [f.strip() for f in args.families.split(",") if f.strip()]
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        names = [n.strip() for n in args.datasets.split(",") if n.strip()]
        datasets = load_datasets(names, args.data_dir, None, min_rows_per_class(args.folds))
        storage = tempfile.mkdtemp(prefix="noise_floor_")
        try:
            with common.LoadSampler() as load, common.ray_runtime(args.num_cpus):
                for family in families:
                    for dataset in datasets:
                        for seed in seeds:
                            print(f"--- {family} {dataset.name} seed {seed}", flush=True)
                            run = search_efficiency.run_one(family, dataset, seed, METHOD, args, storage)
                            run.pop("events")  # the per-epoch log is search_efficiency's business
                            runs.append({**run, "family": family, "source": "this run"})
                            if args.raw:
                                search_efficiency.write_raw(args, {"text": common.provenance(command, load, started)
                                                  + "\n- **Partial**: cut short after these searches"}, runs)
        finally:
            shutil.rmtree(storage, ignore_errors=True)
        prov = {"text": common.provenance(command, load, started)}
        if args.raw:
            search_efficiency.write_raw(args, prov, runs)
    rows = table(runs)
    imported = sorted({r["source"] for r in runs if r["source"] != "this run"})
    body = "\n".join([
        "## Noise floor of one search (`benchmarks/noise_floor.py`)", "",
        prov["text"],
        *([f"- Re-analysed {time.strftime('%Y-%m-%d %H:%M %Z')} with `{command}`"] if args.from_raw else []),
        *([f"- Also counted: the TPE + ASHA experiments of {', '.join(imported)} (same budget)"] if imported else []),
        f"- Search: TPE + ASHA (the default searcher), {args.samples * args.max_epochs} epochs per search "
        f"({args.samples} x {args.max_epochs}, as many trials as fit), ASHA grace {args.grace_period}, "
        f"{args.num_cpus} trials at once; outcome: full-split accuracy of the picked configuration over "
        f"{args.folds} folds x {args.repeats} repeat(s); the seed draws the search, the tuning split and the "
        "folds, as `tune --seed` does", "",
        "Full-split accuracy (%) of the configuration each search picked, over search seeds; *after* = "
        "the default best-trial rule (`window3`), *before* = the best single epoch (`best_epoch`), both "
        "applied to the same searches:", "",
        common.markdown_table(HEADER, rows), "",
        "*sd*: sample standard deviation over the seeds: what rerunning one search with another seed "
        "moves the result by (search, split and folds together); *sqrt(2) x sd*: the typical difference "
        "between two independent such runs of one approach, so the smallest difference between two approaches "
        "that one search each can claim; *same pick*: searches where both rules "
        f"picked the same trial. {sd_uncertainty(min(r[2] for r in rows))}",
    ])
    print(body)
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
