"""Data the defaults were not tuned on: variants of the stand-ins, tuned with the defaults and
set against the scikit-learn references on the same folds (issue 12).

Each variant is a CSV a lab could drop in ``data/``, written from a stand-in:

* ``r64``: waveforms resampled to 64 samples (another sampling rate / window);
* ``relabelled``: labels renamed ``unit_<letter>`` in a shuffled order, rows shuffled;
* ``label-first``: the label column first and named ``track``;
* ``fewer``: 40% of the rows, stratified (the smallest class keeps at least 15 rows);
* ``noisy``: Gaussian noise added, sd half the median per-sample sd of the waveforms.

Each variant gets its own data folder (datasets named ``<stand-in>-<variant>``, so no ceiling
of the stand-ins is shown for them) and its own results tree; ``benchmarks/accuracy.py --run``
tunes and exports ``--families`` there with the project's defaults (or ``--quick``'s small
settings) and computes the references and the margin of the best tuned approach over them
(corrected resampled t-test against each reference, Holm over the tuned approaches). This
script collects the margins into one section.

    python -m benchmarks.variants --datasets A12 --variants r64,noisy --families ffn,cnn
    python -m benchmarks.variants --quick --data-dir tests/... --datasets T3   # a test of the script
"""

from __future__ import annotations

import argparse
import string
import sys
import time
from pathlib import Path

import numpy as np


from benchmarks import accuracy, common

SECTION = "variants"
VARIANTS = ("r64", "relabelled", "label-first", "fewer", "noisy")
FEWER_FRACTION, FEWER_MIN_PER_CLASS = 0.4, 15
NOISE_FRACTION = 0.5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="A12", help="comma list of stand-in names in --data-dir")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--families", default="ffn,cnn,lstm", help="single-task families to tune on each variant")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--work-dir", default=str(common.ROOT / "benchmarks" / "out" / "variants"),
                   help="variant data, results trees and Ray storage go here")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="seed of the variants' randomness")
    p.add_argument("--results-md", default=None, help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true", help="accuracy.py's --quick settings: a test of the script")
    args = p.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        p.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    return args


# ----------------------------------------------------------------------------- variants
def write_variant(dataset, variant: str, folder: Path, seed: int) -> Path:
    """Write ``dataset`` (a loaded stand-in) as ``variant`` into ``folder``; returns the CSV."""
    from tuning.data.preprocess import resample_to_length

    rng = np.random.default_rng(seed)
    X, labels = dataset.X.astype(np.float64), np.asarray(dataset.class_names, dtype=object)[dataset.y]
    label_name, first = "label", False
    if variant == "r64":
        X = resample_to_length(dataset.X, 64, dataset.n_channels).astype(np.float64)
    elif variant == "relabelled":
        names = [f"unit_{string.ascii_lowercase[i]}" for i in rng.permutation(dataset.n_classes)]
        labels = np.asarray(names, dtype=object)[dataset.y]
        order = rng.permutation(len(labels))
        X, labels = X[order], labels[order]
    elif variant == "label-first":
        label_name, first = "track", True
    elif variant == "fewer":
        keep = np.concatenate([
            rng.permutation(rows)[:max(FEWER_MIN_PER_CLASS, int(round(FEWER_FRACTION * len(rows))))]
            for rows in (np.flatnonzero(dataset.y == c) for c in range(dataset.n_classes))])
        keep = np.sort(keep)
        X, labels = X[keep], labels[keep]
    elif variant == "noisy":
        X = X + rng.normal(0.0, NOISE_FRACTION * float(np.median(X.std(axis=0))), X.shape)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    samples = [f"s{i}" for i in range(X.shape[1])]
    header = [label_name, *samples] if first else [*samples, label_name]
    lines = [",".join(header)]
    for row, label in zip(X, labels):
        cells = [f"{v:.4f}" for v in row]
        lines.append(",".join([str(label), *cells] if first else [*cells, str(label)]))
    path = folder / f"{dataset.name}-{variant}.csv"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    from tuning.data.readers import load_dataset, resolve_dataset_paths

    work = Path(args.work_dir)
    datasets = [load_dataset(p) for name in args.datasets.split(",")
                for p in resolve_dataset_paths(name.strip(), args.data_dir)]
    margins = []
    with common.LoadSampler() as load:
        for variant in args.variants.split(","):
            folder = work / variant
            for dataset in datasets:
                write_variant(dataset, variant, folder / "data", args.seed)
            run = ["--run", "--data-dir", str(folder / "data"), "--families", args.families,
                   "--results-dir", str(folder / "results"), "--storage", str(folder / "ray_results"),
                   "--num-cpus", str(args.num_cpus), "--results-md", str(folder / "accuracy.md")]
            if args.quick:
                run.append("--quick")
            if accuracy.main(run) != 0:
                print(f"error: {variant}: the accuracy run failed", file=sys.stderr)
                return 1
            from tuning.study.comparison import add_references, load_approaches
            from tuning.study.tree_rows import load_validation_scores

            rows, _ = add_references(folder / "results", load_approaches(folder / "results", include_references=False),
                                     log=lambda *_: None)  # the cache accuracy.py filled
            validation = load_validation_scores(folder / "results")
            margins += [{"variant": variant, **m} for m in accuracy.reference_margins(rows, validation)]
    header, body = accuracy.margin_table(margins)
    table = common.markdown_table(["variant", *header], [[m["variant"], *row] for m, row in zip(margins, body)])
    summary = accuracy.margin_summary(margins)
    print()
    print(table)
    print(summary)
    body_md = "\n".join([
        "## Variants the defaults were not tuned on (`benchmarks/variants.py`)", "",
        common.provenance(common.script_command(__file__, argv), load, started),
        f"- Families tuned: {args.families}; variants: {args.variants} of {args.datasets} "
        "(see the script's docstring for each).", "",
        summary, "",
        table, "",
    ])
    common.write_section(args, SECTION, body_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
