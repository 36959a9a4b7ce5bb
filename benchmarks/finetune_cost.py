"""What one trial of a fine-tuned family (``ft-*``) costs beside one trial of its multi-task
twin (``mtl-*``) and one trial of the single-task family on every dataset (a single-task
search runs one experiment per dataset), same configurations, side by side.

Configurations: ``--configs`` drawn at random (seeded) from the ``ft-<trunk>`` space over
the datasets; the ``mtl-*`` and single-task trials train the same configuration (they ignore
the keys they do not use). Each variant runs as a trial does: ``tuning.training.fit`` for
``--epochs`` iterations without early stopping on the tuning split, reporting every epoch
(the ft trial's stage 2 side by side, as in a trial), one torch thread. Also timed: the ft
rerun path (stage 2 one network at a time, as the export's reruns and the bundle train it).
Seconds are wall time around each fit (set-up, training and validation passes); the
variants' order rotates from round to round so that they share the machine's conditions,
after an untimed one-epoch fit of each configuration (torch's first-use set-up for its shapes);
ratios are taken per configuration and round, then their median is reported.

    .venv/bin/python -m benchmarks.finetune_cost --trunk cnn --configs 3 --epochs 8 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchmarks import common

SECTION = "finetune_cost"
"""Each trunk writes its own section, ``finetune_cost-<trunk>``."""
VARIANTS = ("ft trial", "mtl trial", "single-task trials (one per dataset)", "ft rerun (stage 2 per dataset)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trunk", default="cnn", choices=("ffn", "cnn", "lstm"))
    p.add_argument("--datasets", default="all", help="comma list or all (default all)")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--configs", type=int, default=3, help="random configurations (default 3)")
    p.add_argument("--epochs", type=int, default=8, help="iterations per trial (default 8)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, the variants' order rotated (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-md", default=None)
    p.add_argument("--quick", action="store_true", help="ffn, 1 configuration, 2 epochs, 1 round; prints only")
    args = p.parse_args(argv)
    if args.quick:
        args.trunk, args.configs, args.epochs, args.rounds = "ffn", 1, 2, 1
    return args


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def variant_seconds(variant: str, trunk: str, config: dict, tasks, epochs: int, seed: int) -> float:
    from tuning.training import fit

    def report(*_):  # a trial reports every epoch; the checkpoint's cost is left out of all variants alike
        return None

    if variant == "ft trial":
        return timed(lambda: fit(f"ft-{trunk}", config, tasks, max_epochs=epochs, seed=seed, on_epoch=report))
    if variant == "mtl trial":
        return timed(lambda: fit(f"mtl-{trunk}", config, tasks, max_epochs=epochs, seed=seed, on_epoch=report))
    if variant.startswith("single-task"):
        return sum(timed(lambda task=task: fit(trunk, config, [task], max_epochs=epochs, seed=seed, on_epoch=report))
                   for task in tasks)
    return timed(lambda: fit(f"ft-{trunk}", config, tasks, max_epochs=epochs, seed=seed))


def main(argv=None) -> int:
    import torch

    import search_spaces
    from tuning import finetune
    from tuning.data.readers import load_datasets
    from tuning.data.splits import tuning_split
    from tuning.training import TaskData

    args = parse_args(argv)
    torch.set_num_threads(1)  # as a 1-CPU trial
    names = args.datasets if args.datasets == "all" else [n.strip() for n in args.datasets.split(",")]
    datasets = load_datasets(names, args.data_dir)
    tasks = [TaskData.from_rows(d, s.train, s.val) for d, s in ((d, tuning_split(d.y, args.seed)) for d in datasets)]
    configs = search_spaces.sample_configs(f"ft-{args.trunk}", [d.name for d in datasets], args.configs, args.seed)
    from tuning.training import fit

    started = time.time()
    seconds: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}  # variant -> ratio to the mtl trial, same config and round
    with common.LoadSampler() as load:
        for c, config in enumerate(configs):
            stages = finetune.stage_epochs(config, args.epochs)
            # Untimed: torch sets up its kernels for a network's shapes on their first use, which
            # would otherwise fall on whichever variant runs first.
            fit(f"mtl-{args.trunk}", config, tasks, max_epochs=1, seed=0)
            for r in range(args.rounds):
                k = (c + r) % len(VARIANTS)
                order = VARIANTS[k:] + VARIANTS[:k]
                got = {v: variant_seconds(v, args.trunk, config, tasks, args.epochs, r) for v in order}
                for v, s in got.items():
                    seconds.setdefault(v, []).append(s)
                    ratios.setdefault(v, []).append(s / got["mtl trial"])
                print(f"config {c} (stages {stages[0]}+{stages[1]} epochs, ft_train {config['ft_train']}) round {r}: "
                      + ", ".join(f"{v.split(' (')[0]} {s:.1f} s" for v, s in got.items()), flush=True)
    rows = [[v, common.fmt(statistics.median(seconds[v]), 2), common.fmt(statistics.median(seconds[v]) / args.epochs, 3),
             f"{statistics.median(ratios[v]):.2f}", f"{min(ratios[v]):.2f} – {max(ratios[v]):.2f}"] for v in VARIANTS]
    table = common.markdown_table(["variant", "s per trial (median)", "s per iteration", "ratio to the mtl trial (median)",
                                   "ratio range"], rows)
    train_rows = sum(len(t.y_train) for t in tasks)
    body = "\n".join([
        f"## Cost of a fine-tuned trial: ft-{args.trunk} beside mtl-{args.trunk} and {args.trunk} "
        "(`benchmarks/finetune_cost.py`)", "",
        common.provenance(common.script_command(__file__, argv), load, started), "",
        f"{args.configs} random configurations of the ft-{args.trunk} space on {', '.join(d.name for d in datasets)} "
        f"({train_rows} training rows in all), {args.epochs} iterations per trial (ft: stage 1 + stage 2, split by "
        f"each configuration's ft_epoch_share), {args.rounds} round(s), one torch thread; the same configuration in "
        "every variant; ratio per configuration and round, then the median. A single-task search pays its row once "
        "per dataset experiment (their sum is shown).", "",
        table,
    ])
    print(table)
    common.write_section(args, f"{SECTION}-{args.trunk}", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
