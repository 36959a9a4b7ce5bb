"""The search's compute cap (``tune --max-mflop``): how FLOPs a spike turn into sorting speed
on this machine, and what the cap costs the pick in accuracy.

Two parts, one run:

* *speed*: ``--networks`` random configurations of each single-task family's space (untrained:
  speed does not depend on the weights), built for the dataset's input, timed in memory with
  torch and ONNX Runtime in ``predict``'s batches (:func:`tuning.bundle.speed.measure_speed`,
  about ``--seconds`` a backend), grouped by MFLOP a spike: per group, the slowest and median
  of each network's faster backend, and how many reach 100,000 spikes/s. This sets
  :data:`tuning.settings.DEFAULT_MAX_MFLOP`.
* *accuracy*: per dataset and seed, ``--family``'s default search twice on the same split
  (``tune --seed`` draws split, search and folds): within the default cap and without a cap.
  Each pick is scored as the export scores it (full-split reruns on the export's folds, the same
  folds for both; one rerun when both pick the same configuration); the outcome is the paired
  difference capped - uncapped per seed, with a t interval over the seeds (it assumes the
  seeds' differences independent and roughly normal) and the least difference those seeds
  detect with 80% power. Each pick's MFLOP and in-memory speed are reported beside it.

    python -m benchmarks.compute_cap                                  # cnn on A4 and A12, seeds 0,1
    python -m benchmarks.compute_cap --quick --data-dir DIR --datasets T3   # a test of the script
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common

SECTION = "compute_cap"
TARGET = 100_000  # spikes a second (issue 28)
BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 1.0, float("inf"))
SPEED_FAMILIES = ("cnn", "lstm", "ffn")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="cnn", help="family searched in the accuracy part (default cnn)")
    p.add_argument("--datasets", default="A4,A12", help="comma list (default A4,A12); the first sets the speed "
                                                       "part's input")
    p.add_argument("--seeds", default="0,1", help="comma list of seeds (default 0,1)")
    p.add_argument("--networks", type=int, default=24, help="random networks a family in the speed part (0: skip it)")
    p.add_argument("--seconds", type=float, default=1.0, help="timing per backend and network")
    p.add_argument("--samples", type=int, default=None, help="trials per search (default: tune's)")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs of a full trial (default: tune's)")
    p.add_argument("--folds", type=int, default=None, help="full-split folds (default: tune's)")
    p.add_argument("--repeats", type=int, default=None, help="full-split repeats (default: tune's)")
    p.add_argument("--skip-accuracy", action="store_true", help="the speed part only")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--raw", default=None, help="write every outcome as JSON here (after each seed)")
    p.add_argument("--from-raw", default=None, metavar="FILES",
                   help="analyse saved --raw files (comma list: the speeds of the first, the searches of all), "
                        "no training")
    p.add_argument("--results-md", default=None,
                   help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true", help="4 networks, 3 trials x 2 epochs, 2x1 folds, seed 0: a test")
    args = p.parse_args(argv)
    if args.quick:
        args.networks, args.seconds, args.samples, args.max_epochs = 4, 0.05, 3, 2
        args.folds, args.repeats, args.seeds = 2, 1, "0"
    return args


def network_speed(family: str, config: dict, dataset, seconds: float) -> dict:
    """MFLOP a spike and in-memory spikes/s (torch, onnx) of ``config``'s network on
    ``dataset``'s input, untrained, in predict's batches."""
    import models
    from tuning.bundle import speed
    from tuning.bundle.model_bundle import INFERENCE_BATCH, onnx_export, onnx_session

    network = models.build_model(family, config, dataset.length, [dataset.n_classes], dataset.n_channels).eval()
    columns = dataset.n_channels * dataset.length
    x = np.resize(np.random.default_rng(0).standard_normal((4096, columns)).astype(np.float32), (8192, columns))
    # ``seconds`` a backend: longer than an export's glance, for a steadier rate
    measured = speed.measure_speed(network, onnx_session(onnx_export(network, columns, [dataset.name])), x, 0,
                                   f"logits_{dataset.name}", INFERENCE_BATCH, seconds=seconds,
                                   max_batches=10_000)
    return {"mflop": measured["flops_per_spike"] / 1e6, **measured["spikes_per_s"]}


def speed_part(args, dataset) -> list[dict]:
    from search_spaces import sample_configs

    rows = []
    for family in SPEED_FAMILIES:
        for config in sample_configs(family, [dataset.name], args.networks, seed=1):
            rows.append({"family": family, **network_speed(family, config, dataset, args.seconds)})
    return rows


def speed_table(rows: list[dict]) -> str:
    if not rows:
        return "(no speed part in this run)"
    out = []
    for low, high in zip(BINS, BINS[1:]):
        here = [r for r in rows if low <= r["mflop"] < high]
        if not here:
            continue
        best = [max(r["torch"], r["onnx"]) for r in here]
        torch_rates = [r["torch"] for r in here]
        label = f">= {low:g}" if high == float("inf") else f"{low:g}-{high:g}"
        families = ", ".join(f"{f} {sum(r['family'] == f for r in here)}" for f in SPEED_FAMILIES
                             if any(r["family"] == f for r in here))
        out.append([label, len(here), families, f"{min(best):,.0f}", f"{statistics.median(best):,.0f}",
                    f"{min(torch_rates):,.0f}", f"{sum(b >= TARGET for b in best)}/{len(here)}"])
    return common.markdown_table(["MFLOP a spike", "networks", "families", "faster backend: slowest spikes/s",
                                  "faster backend: median", "torch: slowest", f">= {TARGET:,} spikes/s"], out)


def settings_for(args, seed: int, storage: str, max_mflop):
    """The racing benchmark's settings (tune's defaults unless the arguments say otherwise), with the cap."""
    from benchmarks import racing

    return dataclasses.replace(racing.settings_for(args, seed, storage), max_mflop=max_mflop, data_dir=args.data_dir)


def run_pair(args, dataset, seed: int, storage: str) -> dict:
    from benchmarks.racing import full_split_scores
    from tuning.settings import DEFAULT_MAX_MFLOP
    from tuning.search.driver import run_experiment

    arms = {}
    for arm, cap in (("capped", DEFAULT_MAX_MFLOP), ("uncapped", None)):
        settings = settings_for(args, seed, storage, cap)
        t0 = time.monotonic()
        outcome = run_experiment(args.family, [dataset], settings)
        minutes = (time.monotonic() - t0) / 60
        config = {k: v for k, v in outcome.best_config.items()}
        arms[arm] = {"config": config, "search_min": minutes, "redrawn": outcome.redrawn,
                     **network_speed(args.family, config, dataset, args.seconds)}
    arms["capped"]["scores"] = full_split_scores(args.family, arms["capped"]["config"], dataset, settings)
    same = arms["uncapped"]["config"] == arms["capped"]["config"]
    arms["uncapped"]["scores"] = arms["capped"]["scores"] if same else full_split_scores(
        args.family, arms["uncapped"]["config"], dataset, settings)
    return {"dataset": dataset.name, "seed": seed, **arms}


def accuracy_table(runs: list[dict], datasets: list[str]) -> str:
    from benchmarks.racing import detectable
    from scipy import stats

    rows = []
    for name in [*datasets, "all"]:
        here = [r for r in runs if name in ("all", r["dataset"])]
        if not here:
            continue
        capped = [r["capped"]["scores"]["accuracy"] for r in here]
        free = [r["uncapped"]["scores"]["accuracy"] for r in here]
        diffs = [a - b for a, b in zip(capped, free)]
        mean = statistics.mean(diffs)
        if len(diffs) > 1:
            half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
            ci = f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"
        else:
            ci = f"{mean:+.2f} (one seed)"
        bal = statistics.mean(r["capped"]["scores"]["balanced_accuracy"] - r["uncapped"]["scores"]["balanced_accuracy"]
                              for r in here)
        mflops = lambda arm: ", ".join(f"{r[arm]['mflop']:.2f}" for r in here)  # noqa: E731
        fastest = lambda arm: ", ".join(f"{max(r[arm]['torch'], r[arm]['onnx']) / 1000:.0f}k" for r in here)  # noqa: E731
        rows.append([name, len(here), common.fmt(statistics.mean(capped), 2), common.fmt(statistics.mean(free), 2), ci,
                     detectable(diffs) if len(diffs) > 1 else "", f"{bal:+.2f}", mflops("capped"), mflops("uncapped"),
                     fastest("capped"), fastest("uncapped"),
                     ", ".join(str(r["capped"]["redrawn"]) for r in here),
                     common.fmt(statistics.mean(r["capped"]["search_min"] for r in here), 1),
                     common.fmt(statistics.mean(r["uncapped"]["search_min"] for r in here), 1)])
    header = ["dataset", "seeds", "capped acc %", "uncapped acc %", "capped - uncapped, points (95% CI)",
              "detectable with 80% power", "balanced: capped - uncapped", "capped pick MFLOP", "uncapped pick MFLOP",
              "capped pick spikes/s", "uncapped pick spikes/s", "draws redrawn", "capped min/search",
              "uncapped min/search"]
    return common.markdown_table(header, rows)


def measure(args, datasets, command: str, started: float) -> tuple[list, list, str]:
    runs = []
    storage = tempfile.mkdtemp(prefix="compute_cap_")
    try:
        with common.LoadSampler() as load:
            speeds = speed_part(args, datasets[-1]) if args.networks > 0 else []
            print(speed_table(speeds), flush=True)
            if not args.skip_accuracy:
                with common.ray_runtime(args.num_cpus):
                    for dataset in datasets:
                        for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
                            runs.append(run_pair(args, dataset, seed, storage))
                            r = runs[-1]
                            print(f"{r['dataset']} seed {seed}: capped {r['capped']['scores']['accuracy']:.2f}% "
                                  f"({r['capped']['mflop']:.2f} MFLOP), uncapped "
                                  f"{r['uncapped']['scores']['accuracy']:.2f}% ({r['uncapped']['mflop']:.2f} MFLOP)",
                                  flush=True)
                            if args.raw:
                                Path(args.raw).write_text(json.dumps({"speeds": speeds, "runs": runs}, indent=1))
        prov = common.provenance(command, load, started)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    if args.raw:
        Path(args.raw).write_text(json.dumps({"speeds": speeds, "runs": runs, "provenance": prov}, indent=1))
    return speeds, runs, prov


def main(argv=None) -> int:
    args = parse_args(argv)
    from tuning.data.readers import load_datasets
    from tuning.data.splits import min_rows_per_class
    from tuning.settings import DEFAULT_MAX_MFLOP

    started = time.time()
    command = common.script_command(__file__, argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    datasets = load_datasets(names, args.data_dir, None, min_rows_per_class(args.folds or 5))
    if args.from_raw:
        saved = [json.loads(Path(f.strip()).read_text()) for f in args.from_raw.split(",") if f.strip()]
        speeds, runs = saved[0]["speeds"], [r for raw in saved for r in raw["runs"]]
        prov = "\n".join(raw["provenance"] for raw in saved)
    else:
        speeds, runs, prov = measure(args, datasets, command, started)
    dataset = datasets[-1]
    parts = ["## The search's compute cap (`benchmarks/compute_cap.py`)", "", prov,
             f"- Speed: {len(speeds) // len(SPEED_FAMILIES)} random configurations of each of {', '.join(SPEED_FAMILIES)} built for "
             f"{dataset.name}'s input ({dataset.n_channels} channel(s) x {dataset.length} samples), untrained, timed "
             f"in memory about {args.seconds:g} s a backend in predict's batches; *faster backend*: each network's "
             "better of torch and ONNX Runtime (float32; bfloat16 is kept only for a trained bundle that passes "
             "its check)", "", speed_table(speeds), ""]
    if runs:
        table = accuracy_table(runs, names)
        settings = settings_for(args, 0, "unused", None)
        parts += [f"- Accuracy: `{args.family}`'s default search ({settings.samples} trials x up to "
                  f"{settings.max_epochs} epochs) within the default cap ({DEFAULT_MAX_MFLOP:g} MFLOP a spike) and "
                  f"without one, on the same split per seed; each pick scored by the export's full-split reruns "
                  f"({settings.folds} x {settings.repeats} folds, the same for both)", "", table, "",
                  "*capped - uncapped*: mean paired difference of full-split accuracy with a t interval over the "
                  "seeds (assumes their differences independent and roughly normal); *detectable*: the least "
                  "difference a paired t-test over these seeds finds with 80% power at the observed sd; "
                  "*spikes/s*: the pick's faster backend in memory (float32, untrained weights: speed does not "
                  "depend on them), one figure per seed; *draws redrawn*: configurations over the cap, never "
                  "trained, per seed."]
    body = "\n".join(parts)
    print(body)
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
