"""What the study's smaller per-search budget costs: each approach's pick under the study's
budget against the default ``tune`` budget, on the same splits.

Per family, dataset and seed, two searches run on the same train / validation / test split
(the seed's, as in a study replicate): one with the study's per-search budget
(``tuning.study.runner.STUDY_SAMPLES`` trials x ``STUDY_MAX_EPOCHS`` epochs, grace
``STUDY_GRACE_PERIOD``) and one with tune's default (48 x 40, grace 4). Each pick is trained
once more on the training rows and scored on the test rows, exactly as the study scores a
replicate (:func:`tuning.study.replicates.run_search`). The table gives the paired
difference (study budget minus default, points) with a t-interval over the seeds, and the
minutes each budget took.

    .venv/bin/python -m benchmarks.study_budget --families ffn --datasets A4,A12 --seeds 0,1,2
    .venv/bin/python -m benchmarks.study_budget --quick --data-dir DIR --datasets T2
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common

SECTION = "study_budget"
HEADER = ["family", "dataset", "seeds", "study budget acc %", "default budget acc %", "difference, points [95% CI]",
          "study budget min/search", "default min/search"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="ffn", help="comma list (default ffn)")
    p.add_argument("--datasets", default="A4,A12", help="comma list (default A4,A12)")
    p.add_argument("--seeds", default="0,1,2", help="comma list of replicate seeds (default 0,1,2)")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny budgets on both sides: checks the plumbing only")
    p.add_argument("--results-md", default=None, help="write the section here instead of RESULTS.md")
    return p.parse_args(argv)


def budgets(quick: bool) -> dict[str, dict]:
    from tuning.settings import TuneSettings
    from tuning.study import runner

    if quick:
        return {"study": {"samples": 2, "max_epochs": 2, "grace_period": 1},
                "default": {"samples": 3, "max_epochs": 3, "grace_period": 1}}
    default = TuneSettings()
    return {"study": {"samples": runner.STUDY_SAMPLES, "max_epochs": runner.STUDY_MAX_EPOCHS,
                      "grace_period": runner.STUDY_GRACE_PERIOD},
            "default": {"samples": default.samples, "max_epochs": default.max_epochs,
                        "grace_period": default.grace_period}}


def run(args) -> list[dict]:
    from tuning.settings import TuneSettings, load_for_tuning
    from tuning.study import replicates as reps

    rows = []
    work = Path(tempfile.mkdtemp(prefix="study_budget-", dir=common.OUT_DIR if common.OUT_DIR.is_dir() else None))
    base = TuneSettings(data_dir=args.data_dir, num_cpus=args.num_cpus, storage=str(work / "ray"), verbose=0)
    for family in args.families.split(","):
        for dataset in args.datasets.split(","):
            (group,) = load_for_tuning(family, dataset, base)
            for seed in (int(s) for s in args.seeds.split(",")):
                for name, budget in budgets(args.quick).items():
                    settings = dataclasses.replace(base, seed=seed, storage=str(work / "ray" / name), **budget)
                    started = time.time()
                    record = reps.run_search(family, group, settings, (), replicate=seed, results_dir=work / name,
                                             log=print)
                    test = [s for s in record["scores"] if s["fraction"] == 1.0][0]
                    rows.append({"family": family, "dataset": dataset, "seed": seed, "budget": name,
                                 "accuracy": test["accuracy"], "minutes": (time.time() - started) / 60})
                    print(f"{family} {dataset} seed {seed} {name}: {100 * test['accuracy']:.2f}% "
                          f"({rows[-1]['minutes']:.1f} min)", flush=True)
    return rows


def table(rows: list[dict]) -> list[list]:
    from tuning import statistics as st

    out = []
    keys = list(dict.fromkeys((r["family"], r["dataset"]) for r in rows))
    for family, dataset in keys:
        here = [r for r in rows if (r["family"], r["dataset"]) == (family, dataset)]
        study = {r["seed"]: r for r in here if r["budget"] == "study"}
        default = {r["seed"]: r for r in here if r["budget"] == "default"}
        seeds = sorted(set(study) & set(default))
        diffs = [100 * (study[s]["accuracy"] - default[s]["accuracy"]) for s in seeds]
        mean, low, high = st.mean_ci(diffs)
        out.append([family, dataset, len(seeds), common.fmt(100 * np.mean([study[s]["accuracy"] for s in seeds]), 2),
                    common.fmt(100 * np.mean([default[s]["accuracy"] for s in seeds]), 2),
                    f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]",
                    common.fmt(np.mean([study[s]["minutes"] for s in seeds]), 2),
                    common.fmt(np.mean([default[s]["minutes"] for s in seeds]), 2)])
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    with common.LoadSampler() as load, common.ray_runtime(args.num_cpus):
        rows = run(args)
    body = "\n".join([
        "## What the study's per-search budget costs (study budget vs tune's default, same splits)", "",
        common.provenance(common.script_command(__file__, argv), load, started), "",
        common.markdown_table(HEADER, table(rows)), "",
        "Each pick trained once more on its split's training rows and scored on the test rows, as a study "
        "replicate scores it; the interval is a plain t-interval over seeds (the same split on both sides, "
        "so the difference is paired by seed)."])
    print(body)
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
