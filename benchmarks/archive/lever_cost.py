"""What each training lever of issue 12 costs in training time: seconds per epoch of the
same configurations with the levers off, each lever on alone, and all on, side by side.

Archived, settled: RESULTS.md section ``lever_cost`` (written at commit 8d85a75): every
lever within the 1.5x run-time budget.
``git show COMMIT:benchmarks/lever_cost.py`` is the script as it ran then; this copy still runs
(``python -m benchmarks.archive.lever_cost``) and is tested only with ``pytest --archive``.

Configurations: ``--configs`` drawn at random (seeded) from the family's search space, the
levers then set as ``benchmarks/archive/levers.py`` sets them (``levers.LEVERS``: off; augmentation
shift 2, scale 0.1, noise 0.1; cosine schedule; label smoothing 0.1; all three). Each
variant trains with ``tuning.training.fit`` (the loop of trials and reruns) for
``--epochs`` epochs without early stopping on the tuning split's training rows, one torch
thread as a trial has; seconds per epoch = ``FitResult.train_seconds / epochs_run``
(training steps and the validation pass). The variants' order rotates from round to round,
so that they share the machine's conditions; the ratio to "off" is taken per configuration
and round, then its median is reported.

The other levers cost nothing per epoch or are priced by structure: the best-trial rule
(``tuning/search/best_trial.py``) only reads the trials' histories; ``--ensemble K`` trains K
networks per rerun (about K times the export's reruns); the export's bundle trains one
network more than the reruns.

    python -m benchmarks.archive.lever_cost --families cnn,ffn,lstm --dataset A12
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


from benchmarks import common
from benchmarks.archive.levers import LEVERS, with_lever

SECTION = "lever_cost"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="cnn,ffn,lstm", help="comma list (default cnn,ffn,lstm)")
    p.add_argument("--dataset", default="A12")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--configs", type=int, default=3, help="random configurations per family (default 3)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per variant (default 4)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, the variants' order rotated (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-md", default=None)
    p.add_argument("--quick", action="store_true", help="1 configuration, 1 epoch, 1 round, ffn; prints only")
    args = p.parse_args(argv)
    if args.quick:
        args.families, args.configs, args.epochs, args.rounds = "ffn", 1, 1, 1
    return args


def seconds_per_epoch(family, config, task, epochs: int, seed: int) -> float:
    from tuning.training import fit

    result = fit(family, config, [task], max_epochs=epochs, seed=seed, patience=None)
    return result.train_seconds / result.epochs_run


def main(argv=None) -> int:
    import torch

    from benchmarks.archive.selection import sample_configs
    from tuning.data.readers import load_datasets
    from tuning.data.splits import tuning_split
    from tuning.training import TaskData

    args = parse_args(argv)
    torch.set_num_threads(1)  # as a 1-CPU trial
    (dataset,) = load_datasets([args.dataset], args.data_dir)
    split = tuning_split(dataset.y, args.seed)
    task = TaskData.from_rows(dataset, split.train, split.val)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    variants = list(LEVERS)
    started = time.time()
    per_epoch: dict[tuple, list[float]] = {}  # (family, variant) -> seconds per epoch
    ratios: dict[tuple, list[float]] = {}     # (family, variant) -> ratio to "off", same config and round
    with common.LoadSampler() as load:
        for family in families:
            for c, config in enumerate(sample_configs(family, args.configs, args.seed)):
                for r in range(args.rounds):
                    k = (c + r) % len(variants)
                    seconds = {v: seconds_per_epoch(family, with_lever(config, LEVERS[v]), task, args.epochs, r)
                               for v in variants[k:] + variants[:k]}
                    for v, s in seconds.items():
                        per_epoch.setdefault((family, v), []).append(s)
                        ratios.setdefault((family, v), []).append(s / seconds["off"])
                    print(f"{family} config {c} round {r}: "
                          + ", ".join(f"{v.split(' (')[0]} {s * 1000:.0f} ms" for v, s in seconds.items()), flush=True)
    rows = [[family, v, common.fmt(1000 * statistics.median(per_epoch[(family, v)]), 0),
             f"{statistics.median(ratios[(family, v)]):.2f}",
             f"{min(ratios[(family, v)]):.2f} – {max(ratios[(family, v)]):.2f}"]
            for family in families for v in variants]
    table = common.markdown_table(["family", "variant", "ms per epoch (median)", "ratio to off (median)",
                                   "ratio range"], rows)
    body = "\n".join([
        "## Cost of the training levers (`benchmarks/archive/lever_cost.py`)", "",
        common.provenance(common.script_command(__file__, argv), load, started), "",
        f"{args.configs} random configurations per family from its search space, on {args.dataset} "
        f"({len(split.train)} training rows), {args.epochs} epochs per variant, {args.rounds} round(s), one "
        f"torch thread; ratio per configuration and round, then the median.", "",
        table, "",
        "Not per epoch: the best-trial rule reads the histories only; `--ensemble K` trains K networks per "
        "rerun; the export's bundle trains one network beside its reruns (16 by default: 5 x 3 folds and "
        "the one-split rerun).",
    ])
    print(table)
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
