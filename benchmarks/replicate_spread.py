"""Between-replicate spread of each approach's pick: how much the test accuracy of what a
search picks moves from one replicate of the study to the next (issue 23, item 7).

One run is the replicated study (:func:`tuning.study.runner.run_study`, no time budget, no
export) of ``--families`` on ``--datasets``; its tables and experiments are kept under
``benchmarks/out/replicate_spread/<label>/``. The section of RESULTS.md shows, for every
run kept there (e.g. ``before`` and ``after`` a change to a search space), per dataset and
approach the mean, sd, min and max over replicates of the pick's test accuracy (the
study's own ``replicate_spread.csv``), for every multi-task search the per-dataset
validation accuracy of its pick beside the mean it was picked by, and every multi-task trial
that ran at least half the epoch limit, grouped by each training choice: how far its worst
dataset fell below that replicate's single-task pick (validation accuracy, best 3-epoch
window as the best-trial rule scores it).

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
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

SECTION = "mtl_ffn_stability"
RUNS_DIR = common.OUT_DIR / "replicate_spread"
RUN_FILE = "run.json"
CHOICES = ("batch_norm", "optimizer", "loss_weighting", "task_sampling", "normalisation", "head_hidden",
           "lr_schedule", "augment")
COLLAPSE = 0.15  # a dataset this far below its single-task level (accuracy) counts as collapsed


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
           "spread": result.spread.to_dict("records"), "mtl_picks": mtl_picks(folder / "results"),
           "mtl_trials": mtl_trials(folder / "results", args.max_epochs)}
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


def _records(results_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((Path(results_dir) / "Study" / "Replicates").glob("replicate-*/*.json"))]


def mtl_trials(results_dir: Path, max_epochs: int) -> list[dict]:
    """Every trial of the multi-task searches that ran at least half of ``max_epochs``: its
    choices (:data:`CHOICES`), its score and each dataset's validation accuracy over its best
    3-epoch window (:func:`tuning.search.best_trial.score_trial`), and ``worst_gap``: the most
    any dataset fell below the validation accuracy of that replicate's single-task pick."""
    import pandas as pd

    from tuning.search.best_trial import score_trial

    records = _records(results_dir)
    single = {(r["replicate"], r["datasets"][0]): r["validation"].get("val_accuracy")
              for r in records if len(r["datasets"]) == 1}
    out = []
    for record in (r for r in records if len(r["datasets"]) > 1):
        for trial in sorted(Path(record["experiment"]).glob("trial_*")):
            lines = (trial / "result.json").read_text().splitlines() if (trial / "result.json").is_file() else []
            history = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
            scored = score_trial(history, "val_accuracy", "max") if len(history) >= max_epochs / 2 else None
            if scored is None:
                continue
            config = json.loads((trial / "params.json").read_text())
            val = {d: scored.means.get(f"val_accuracy/{d}") for d in record["datasets"]}
            gaps = [single[(record["replicate"], d)] - v for d, v in val.items()
                    if v is not None and single.get((record["replicate"], d)) is not None]
            out.append({"replicate": record["replicate"], "trial": trial.name, "score": scored.score, "val": val,
                        "worst_gap": max(gaps) if gaps else None, **{k: config.get(k) for k in CHOICES}})
    return out


def trials_table(trials: list[dict]) -> str:
    """Multi-task trials grouped by each choice: count, mean score, mean worst gap, collapsed."""
    rows = []
    for choice in CHOICES:
        for value in sorted({str(t[choice]) for t in trials}):
            part = [t for t in trials if str(t[choice]) == value]
            gaps = [t["worst_gap"] for t in part if t["worst_gap"] is not None]
            rows.append([choice, value, len(part), common.fmt(100 * sum(t["score"] for t in part) / len(part)),
                         common.fmt(100 * sum(gaps) / len(gaps) if gaps else math.nan),
                         sum(g > COLLAPSE for g in gaps)])
    return common.markdown_table(["choice", "value", "trials", "val mean (score)", "worst dataset below single-task "
                                  "(points, mean)", f"trials with a dataset > {100 * COLLAPSE:.0f} points below"], rows)


def kept_runs(runs_dir: Path) -> list[dict]:
    """The kept runs, oldest first; a run kept before ``mtl_trials`` existed gets it from its
    experiments when they are still on disk (and keeps it)."""
    runs = []
    for path in sorted(Path(runs_dir).glob(f"*/{RUN_FILE}")):
        run = json.loads(path.read_text())
        if "mtl_trials" not in run and (path.parent / "results").is_dir():
            run["mtl_trials"] = mtl_trials(path.parent / "results", run["max_epochs"])
            common.atomic.write_text(path, json.dumps(run, indent=2, default=float))
        runs.append(run)
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
    for run in runs:
        if not run.get("mtl_trials"):
            continue
        lines += ["", f"Multi-task trials, **{run['label']}**: the {len(run['mtl_trials'])} trials of its multi-task "
                      f"searches that ran at least {run['max_epochs'] // 2} epochs, by choice; worst dataset below "
                      "single-task: the most any dataset's validation accuracy fell below that of the same "
                      "replicate's single-task pick (points; the single-task pick is the best of 16, so a few points "
                      "below is expected)", "", trials_table(run["mtl_trials"])]
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
