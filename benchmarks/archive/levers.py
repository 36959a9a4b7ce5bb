"""What each training lever does to a fixed configuration's full-split accuracy.

Archived, settled: RESULTS.md section ``levers-ffn-A12`` (written at commit 46c6c8f): no
lever moved the full-split accuracy by more than the folds' noise.
``git show COMMIT:benchmarks/levers.py`` is the script as it ran then; this copy still runs
(``python -m benchmarks.archive.levers``) and is tested only with ``pytest --archive``.

Takes the best ``--configs`` configurations of a ``benchmarks/archive/selection.py --raw`` file
(ranked by ``tuning.search.best_trial``'s default rule, as a search would pick them), switches the
levers of issue 12 off (no augmentation, constant learning rate, no label smoothing), then
turns each on alone and all together, and reruns every variant on the same full-split
folds (``tuning.export.reruns.run_job``, early stopping on an inner validation part, as the
export). Differences are paired by fold.

    python -m benchmarks.archive.levers --raw benchmarks/out/selection-ffn-A12.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


from benchmarks import common
from benchmarks.archive.selection import read_raw_search

SECTION = "levers"
OFF = {"augment": False, "lr_schedule": "none", "label_smoothing": 0.0}
LEVERS = {
    "off": {},
    "+ augmentation (shift 2, scale 0.1, noise 0.1)": {"augment": True, "augment_shift": 2,
                                                        "augment_scale": 0.1, "augment_noise": 0.1},
    "+ cosine schedule": {"lr_schedule": "cosine"},
    "+ label smoothing 0.1": {"label_smoothing": 0.1},
    "all three": {"augment": True, "augment_shift": 2, "augment_scale": 0.1, "augment_noise": 0.1,
                  "lr_schedule": "cosine", "label_smoothing": 0.1},
}


def with_lever(config: dict, change: dict) -> dict:
    """``config`` with the levers off (its own augmentation amounts dropped), then ``change``."""
    return {**{k: v for k, v in config.items() if not k.startswith("augment_")}, **OFF, **change}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raw", required=True, help="a benchmarks/archive/selection.py --raw file")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--configs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=None, help="default: the raw file's search epochs")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results-md", default=None)
    p.add_argument("--quick", action="store_true", help="prints only (unless --results-md)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    import torch

    from tuning.export.exporter import rerun_patience
    from tuning.export.reruns import run_job

    args = parse_args(argv)
    search = read_raw_search(args.raw, args.data_dir, folds=args.folds, repeats=args.repeats, seed=args.seed)
    raw, dataset, ranked, configs, jobs = search.raw, search.dataset, search.ranked, search.configs, search.jobs
    epochs = args.epochs or max(len(t["history"]) for t in raw["trials"])
    torch.set_num_threads(args.threads)
    started = time.time()
    scores: dict[str, dict[str, list[float]]] = {}
    with common.LoadSampler() as load_sampler:
        for pick in ranked[:args.configs]:
            for lever, change in LEVERS.items():
                config = with_lever(configs[pick.trial_id], change)
                folds = [run_job(raw["family"], config, [dataset], job, max_epochs=epochs,
                                 patience=rerun_patience(epochs), threads=args.threads)[0]["accuracy"]
                         for job in jobs]
                scores.setdefault(pick.trial_id, {})[lever] = folds
                print(f"{pick.trial_id} {lever}: {100 * np.mean(folds):.1f}", flush=True)
    rows = []
    for lever in LEVERS:
        per_config = [common.fmt(100 * float(np.mean(scores[t][lever]))) for t in scores]
        diffs = [a - b for t in scores for a, b in zip(scores[t][lever], scores[t]["off"])]
        rows.append([lever, *per_config, common.fmt(100 * float(np.mean(diffs)), 2),
                     f"{sum(d > 0 for d in diffs)} / {sum(d < 0 for d in diffs)}"])
    body = "\n\n".join([
        f"## Training levers on fixed configurations: {raw['family']} on {raw['dataset']}",
        common.provenance(common.script_command(__file__, argv), load_sampler, started),
        f"The {len(scores)} best configurations of `{Path(args.raw).name}` (default selection rule), levers off, "
        f"then each lever on; full-split accuracy (%) over the same {args.folds} folds x {args.repeats} repeats, "
        f"up to {epochs} epochs with early stopping. Paired by fold; few folds, so a difference under ~1 point "
        f"is noise.",
        common.markdown_table(["variant", *[f"config {t}" for t in scores], "mean diff vs off (pt)",
                               "folds better / worse"], rows),
    ])
    print(body)
    common.write_section(args, f"{SECTION}-{raw['family']}-{raw['dataset']}", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
