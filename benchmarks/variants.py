"""Data the defaults were not tuned on: variants of the stand-ins, tuned with the defaults and
set against the classical peers on the same folds (issues 12 and 26).

Each variant is a CSV a lab could drop in ``data/``, written from a stand-in:

* ``r64``: waveforms resampled to 64 samples (another sampling rate / window);
* ``relabelled``: labels renamed ``unit_<letter>`` in a shuffled order, rows shuffled;
* ``label-first``: the label column first and named ``track``;
* ``fewer``: 40% of the rows, stratified (the smallest class keeps at least 15 rows);
* ``noisy``: Gaussian noise added, sd half the median per-sample sd of the waveforms;
* ``imbalanced``: a stronger imbalance: the k-th largest unit keeps ``IMBALANCE_RATIO ** k`` of
  its rows (at least 15), so on A12 the largest unit holds about two thirds of the spikes;
* ``probe2``: a second probe-like recording: resampled to 40 samples, in other units (x 0.05,
  like millivolts against tenths of a microvolt) and with a baseline offset per spike (a
  recording not high-passed), sd twice the waveforms' median per-sample sd.

Each variant gets its own data folder (datasets named ``<stand-in>-<variant>``) and, per
objective, its own results tree: ``tune FAMILY all`` runs there with the project's defaults (or
``--quick``'s small settings), once with ``--metric accuracy`` and once with ``--metric
balanced_accuracy``. The export of each already scores the classical references on its
full-split folds (LDA, PCA+SVM, tuned SVM; ``results/References/``); this script adds gradient
boosting on the same folds and sets the network against the best of the four in the run's own
objective: ``tuning.export.references.margins`` (corrected resampled t-test over the folds; the
best peer is the one with the highest mean on these folds, the comparison least favourable to
the network).

    python -m benchmarks.variants --datasets A12                     # auto, both objectives, 7 variants
    python -m benchmarks.variants --quick --data-dir tests/... --datasets T3   # a test of the script
"""

from __future__ import annotations

import argparse
import json
import string
import sys
import time
from pathlib import Path

import numpy as np


from benchmarks import common

SECTION = "variants-auto"
VARIANTS = ("r64", "relabelled", "label-first", "fewer", "noisy", "imbalanced", "probe2")
OBJECTIVES = ("accuracy", "balanced_accuracy")
FEWER_FRACTION, FEWER_MIN_PER_CLASS = 0.4, 15
NOISE_FRACTION = 0.5
IMBALANCE_RATIO = 0.4
PROBE2_LENGTH, PROBE2_GAIN, PROBE2_OFFSET = 40, 0.05, 2.0
QUICK_TUNE = ["--samples", "2", "--max-epochs", "2", "--grace-period", "1", "--folds", "2", "--repeats", "1"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="A12", help="comma list of stand-in names in --data-dir")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--families", default="auto", help="families to tune on each variant (default auto)")
    p.add_argument("--objectives", default=",".join(OBJECTIVES), help="comma list of --metric values")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--work-dir", default=str(common.ROOT / "benchmarks" / "out" / "variants"),
                   help="variant data, results trees and Ray storage go here")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="seed of the variants' randomness")
    p.add_argument("--results-md", default=None, help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true", help="2 trials x 2 epochs, 2 folds x 1 repeat: a test of the script")
    args = p.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        p.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    unknown = sorted(set(args.objectives.split(",")) - set(OBJECTIVES))
    if unknown:
        p.error(f"--objectives: unknown {', '.join(unknown)}; choose from {', '.join(OBJECTIVES)}")
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
    elif variant == "imbalanced":
        by_size = np.argsort(-np.bincount(dataset.y, minlength=dataset.n_classes), kind="stable")
        keep = np.sort(np.concatenate([
            rng.permutation(rows)[:max(FEWER_MIN_PER_CLASS, int(round(IMBALANCE_RATIO ** rank * len(rows))))]
            for rank, rows in enumerate(np.flatnonzero(dataset.y == c) for c in by_size)]))
        X, labels = X[keep], labels[keep]
    elif variant == "probe2":
        offset = PROBE2_OFFSET * float(np.median(X.std(axis=0)))
        X = resample_to_length(dataset.X, PROBE2_LENGTH, dataset.n_channels).astype(np.float64)
        X = PROBE2_GAIN * (X + rng.normal(0.0, offset, (len(X), 1)))
    else:
        raise ValueError(f"unknown variant {variant!r}")
    samples = [f"s{i}" for i in range(X.shape[1])]
    header = [label_name, *samples] if first else [*samples, label_name]
    lines = [",".join(header)]
    for row, label in zip(X, labels):
        cells = [f"{v:.7g}" for v in row]
        lines.append(",".join([str(label), *cells] if first else [*cells, str(label)]))
    path = folder / f"{dataset.name}-{variant}.csv"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- peers
def tune_variant(args, folder: Path, family: str, objective: str) -> Path:
    """``tune FAMILY all`` on the variant's data with the defaults and ``--metric objective``;
    its results tree."""
    from tuning import cli

    results = folder / f"results-{objective}"
    argv = ["tune", family, "all", "--data-dir", str(folder / "data"), "--results-dir", str(results),
            "--storage", str(folder / "ray_results"), "--num-cpus", str(args.num_cpus), "--metric", objective,
            *(QUICK_TUNE if args.quick else [])]
    print(f"=== python -m tuning {' '.join(argv)}", flush=True)
    if cli.main(argv) != 0:
        raise SystemExit(f"error: `python -m tuning {' '.join(argv)}` failed")
    return results


def peer_margin(results: Path, dataset: str, family: str, objective: str, boosting: dict) -> dict:
    """The exported network against the best of the export's references and gradient boosting
    (``boosting``: rows already computed, by dataset and folds) on its full-split folds."""
    import pandas as pd

    from tuning.export import references
    from tuning.export import results_tree as tree

    approach, prefix = tree.approach_names(family)
    network = pd.read_csv(results / approach / tree.INDIVIDUAL / f"{prefix}_full_split_metrics_{dataset}.csv")
    run_path = results / approach / tree.RUN_CONFIG / f"run_{dataset}.json"
    config = json.loads(run_path.read_text())
    key = (dataset, json.dumps(references.fold_params(config), sort_keys=True))
    if key not in boosting:
        data, folds = references.rebuild_folds(config, run_path, dataset)
        boosting[key] = references.reference_rows(data.X, data.y, data.n_classes, folds, dataset,
                                                  approaches=(references.REFERENCE_GRADIENT_BOOSTING,))
    peers = pd.concat([pd.read_csv(references.cache_paths(results, dataset)[0]), boosting[key]], ignore_index=True)
    frame = references.margins(network, peers, objective)
    best = frame.iloc[0]
    picked = config["best_trial"]["config"]
    return {"dataset": dataset, "objective": objective, "family": family,
            "picked": picked.get("auto_family", family), "network": float(best["network_mean"]),
            "peer": str(best["reference"]).removeprefix("Reference "), "peer_score": float(best["reference_mean"]),
            "margin": float(best["margin"]), "low": float(best["low"]), "high": float(best["high"]),
            "verdict": str(best["verdict"]), "folds": int(best["folds"]),
            "boosting_seconds": float(boosting[key]["train_seconds"].sum())}


HEADER = ["variant", "dataset", "objective (scored in it)", "tuned", "picked family", "network %", "best peer",
          "peer %", "margin, points [corrected 95% CI]", "verdict", "at or above the peer"]


def table_rows(margins: list[dict]) -> list[list]:
    return [[m["variant"], m["dataset"], m["objective"].replace("_", " "), m["family"], m["picked"],
             f"{m['network']:.1f}", m["peer"], f"{m['peer_score']:.1f}",
             f"{m['margin']:+.2f} [{m['low']:+.2f}, {m['high']:+.2f}]", m["verdict"],
             "yes" if m["margin"] >= 0 else f"no, by {-m['margin']:.2f}"] for m in margins]


def summary(margins: list[dict]) -> str:
    lines = []
    for objective in dict.fromkeys(m["objective"] for m in margins):
        here = [m for m in margins if m["objective"] == objective]
        at_or_above = [m for m in here if m["margin"] >= 0]
        above = [m for m in here if m["verdict"] == "above"]
        below = [m for m in here if m["verdict"] == "below"]
        worst = min(here, key=lambda m: m["margin"])
        lines.append(f"- `--metric {objective}`, scored in {objective.replace('_', ' ')}: at or above the best peer "
                     f"(point estimate) on {len(at_or_above)} of {len(here)} variant datasets; separated above every "
                     f"peer on {len(above)}, below the best on {len(below)}; lowest margin {worst['margin']:+.2f} "
                     f"({worst['variant']}, {worst['peer']}).")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    from tuning.data.readers import load_dataset, resolve_dataset_paths

    work = Path(args.work_dir)
    datasets = [load_dataset(p) for name in args.datasets.split(",")
                for p in resolve_dataset_paths(name.strip(), args.data_dir)]
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    margins = []
    with common.LoadSampler() as load:
        for variant in args.variants.split(","):
            folder = work / variant
            names = [write_variant(dataset, variant, folder / "data", args.seed).stem for dataset in datasets]
            boosting: dict = {}  # the same folds serve both objectives
            for objective in args.objectives.split(","):
                for family in families:
                    results = tune_variant(args, folder, family, objective)
                    margins += [{"variant": variant, **peer_margin(results, name, family, objective, boosting)}
                                for name in names]
    table = common.markdown_table(HEADER, table_rows(margins))
    text = summary(margins)
    print()
    print(table)
    print(text)
    boosting_s = sum(m["boosting_seconds"] for m in margins if m["objective"] == args.objectives.split(",")[0])
    body_md = "\n".join([
        "## Variants the defaults were not tuned on, against the classical peers (`benchmarks/variants.py`)", "",
        common.provenance(common.script_command(__file__, argv), load, started),
        f"- Tuned: `tune {args.families} all` with the defaults{' (--quick)' if args.quick else ''}, once per "
        f"objective ({args.objectives}); variants: {args.variants} of {args.datasets} (see the script's docstring). "
        "Peers: LDA, PCA+SVM, tuned SVM (the export's) and gradient boosting (scikit-learn's "
        f"HistGradientBoostingClassifier, {boosting_s:.0f} s of fitting over all folds), fitted on the same "
        "full-split folds; each run is scored in its own objective.", "",
        text, "",
        table, "",
        "*margin*: network - best peer (the peer with the highest mean on these folds), corrected resampled "
        "t interval over the folds (Nadeau & Bengio; assumes roughly normal fold differences); *verdict*: "
        "above every peer (intersection-union test at 0.05), below the best peer (interval under 0) or not "
        "separated.",
    ])
    common.write_section(args, SECTION, body_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
