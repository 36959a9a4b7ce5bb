"""Between-replicate spread of each approach's pick: how much the test accuracy of what a
search picks moves from one replicate of the study to the next (issue 23, item 7).

One run is the replicated study (:func:`tuning.study.runner.run_study`, no time budget, no
export) of ``--families`` on ``--datasets``; its tables and experiments are kept under
``benchmarks/out/replicate_spread/<label>/``. The section of RESULTS.md shows, for every
run kept there (e.g. ``before`` and ``after`` a change to a search space), per dataset and
approach the mean, sd, min and max over replicates of the pick's test accuracy (the
study's own ``replicate_spread.csv``), and for every multi-task search the per-dataset
validation accuracy of its pick beside the mean it was picked by.

The same seeds (``--seed``, replicate r: ``seed + 1000 r``) give every run the same
splits, so two labels differ only by the code they ran.

    .venv/bin/python -m benchmarks.replicate_spread --label before
    .venv/bin/python -m benchmarks.replicate_spread --label after
    .venv/bin/python -m benchmarks.replicate_spread --render     # the section again, no training
    .venv/bin/python -m benchmarks.replicate_spread --quick --data-dir DIR --datasets T2,T3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

SECTION = "mtl_ffn_stability"
RUNS_DIR = common.OUT_DIR / "replicate_spread"
RUN_FILE = "run.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label", default="after", help="name of this run's folder and column (default after)")
    p.add_argument("--families", default="ffn,mtl-ffn", help="comma list (default ffn,mtl-ffn)")
    p.add_argument("--datasets", default="all", help="comma list or all (default all)")
    p.add_argument("--replicates", type=int, default=5)
    p.add_argument("--samples", type=int, default=16, help="trials per search (default 16)")
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--grace-period", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--runs-dir", default=str(RUNS_DIR), help="where each label's run is kept")
    p.add_argument("--render", action="store_true", help="write the section from the kept runs (no training)")
    p.add_argument("--results-md", default=None, help="RESULTS.md to update (default benchmarks/RESULTS.md; "
                                                      "--quick: none)")
    p.add_argument("--quick", action="store_true", help="2 replicates of 2 trials x 2 epochs: a test")
    args = p.parse_args(argv)
    if args.quick:
        args.replicates, args.samples, args.max_epochs, args.grace_period = 2, 2, 2, 1
    return args


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(common.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(common.ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_label(args, folder: Path) -> dict:
    """Run the study into ``folder`` and keep what the section needs; returns the run's record."""
    from tuning.study.runner import run_study

    started = time.time()
    with common.LoadSampler(every=15.0) as load:
        result = run_study(args.families, args.datasets, replicates=args.replicates, time_budget=None,
                           samples=args.samples, max_epochs=args.max_epochs, grace_period=args.grace_period,
                           seed=args.seed, export=False, num_cpus=args.num_cpus, data_dir=args.data_dir,
                           results_dir=folder / "results", storage=str(folder / "ray_results"))
    run = {"label": args.label, "command": common.command_line(), "commit": git_commit(),
           "date": time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started)),
           "minutes": round((time.time() - started) / 60, 1), "load": load.summary(), "load_mean": load.mean(),
           "replicates": result.replicates_done, "samples": args.samples, "max_epochs": args.max_epochs,
           "grace_period": args.grace_period, "seed": args.seed, "families": args.families,
           "spread": result.spread.to_dict("records"), "mtl_picks": mtl_picks(folder / "results")}
    common.atomic.write_text(folder / RUN_FILE, json.dumps(run, indent=2, default=float))
    return run


def mtl_picks(results_dir: Path) -> list[dict]:
    """Every multi-task search's pick: replicate, the mean validation accuracy it was picked by,
    each dataset's validation accuracy, and each dataset's test accuracy (fractions)."""
    out = []
    for path in sorted((Path(results_dir) / "Study" / "Replicates").glob("replicate-*/*.json")):
        record = json.loads(path.read_text())
        if len(record["datasets"]) < 2:
            continue
        validation = record.get("validation", {})
        test = {s["dataset"]: s["accuracy"] for s in record.get("scores", []) if s["fraction"] == 1.0}
        out.append({"replicate": record["replicate"], "family": record["family"],
                    "objective": validation.get("val_accuracy"),
                    "val": {d: validation.get(f"val_accuracy/{d}") for d in record["datasets"]},
                    "test": test, "config": record.get("best_config", {})})
    return out


def kept_runs(runs_dir: Path) -> list[dict]:
    runs = [json.loads(p.read_text()) for p in sorted(Path(runs_dir).glob(f"*/{RUN_FILE}"))]
    return sorted(runs, key=lambda r: r["date"])


def render(runs: list[dict]) -> str:
    """The section: how each run was made, then the spread table and the multi-task picks."""
    if not runs:
        return "No run kept yet (`python -m benchmarks.replicate_spread --label before`)."
    lines = ["Between-replicate spread of each approach's pick (issue 23, item 7): per replicate the study "
             "searches, picks, trains the pick once on the replicate's training rows and scores it on its test "
             "rows; the table shows that test accuracy over the replicates (%). Every run used the same seeds, "
             "so the same splits; runs differ by the code they ran.", ""]
    for run in runs:
        lines.append(f"- **{run['label']}** (commit {run['commit']}): `{run['command']}`; {run['date']}; "
                     f"{run['replicates']} replicates of {run['families']}, {run['samples']} trials x up to "
                     f"{run['max_epochs']} epochs, grace {run['grace_period']}; took {run['minutes']} min; load "
                     f"average (1 min) {run['load']} on {common.machine_line().split(',')[0]} shared with other "
                     "engineers' work")
    lines.append("")
    header = ["dataset", "approach"] + [f"{r['label']}: mean / sd / min-max" for r in runs]
    cells: dict[tuple[str, str], list[str]] = {}
    order: list[tuple[str, str]] = []
    for i, run in enumerate(runs):
        for row in run["spread"]:
            key = (row["dataset"], row["family"])
            if key not in cells:
                cells[key] = ["n/a"] * len(runs)
                order.append(key)
            cells[key][i] = (f"{100 * row['accuracy_mean']:.1f} / **{100 * row['accuracy_sd']:.2f}** / "
                             f"{100 * row['accuracy_min']:.1f}-{100 * row['accuracy_max']:.1f}")
    lines.append(common.markdown_table(header, [[d, f, *cells[(d, f)]] for d, f in order]))
    for run in runs:
        if not run.get("mtl_picks"):
            continue
        datasets = list(run["mtl_picks"][0]["val"])
        lines += ["", f"Multi-task picks, **{run['label']}**: validation accuracy of the pick (the mean it was "
                      "picked by, then each dataset's) and its test accuracy, %", ""]
        rows = []
        for pick in run["mtl_picks"]:
            rows.append([pick["replicate"], pick["family"], common.fmt(_pct(pick["objective"])),
                         " / ".join(common.fmt(_pct(pick["val"].get(d))) for d in datasets),
                         " / ".join(common.fmt(_pct(pick["test"].get(d))) for d in datasets)])
        lines.append(common.markdown_table(
            ["replicate", "family", "val mean", f"val {' / '.join(datasets)}", f"test {' / '.join(datasets)}"], rows))
    return "\n".join(lines)


def _pct(value):
    return None if value is None else 100 * float(value)


def main(argv=None) -> int:
    args = parse_args(argv)
    runs_dir = Path(args.runs_dir)
    if args.quick and args.runs_dir == str(RUNS_DIR):
        runs_dir = Path(tempfile.mkdtemp(prefix="replicate_spread-"))
    if not args.render:
        run = run_label(args, runs_dir / args.label)
        print(f"{args.label}: {run['replicates']} replicates in {run['minutes']} min (load {run['load']})")
    body = render(kept_runs(runs_dir))
    print(body)
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
