"""The lab's results tree: names, columns, merging, and all-or-nothing writing.

::

    results/<Approach>/Best Performance Results/<prefix>_best_performers.csv
                                                (MTL: <prefix>_full_split_metrics_best_config.csv)
    results/<Approach>/Full Split Results/<prefix>_full_split_metrics_system.csv
                                         <prefix>_one_split_metrics_system.csv
    results/<Approach>/Individual Dataset Results/<prefix>_full_split_metrics_<DATASET>.csv
                                                 <prefix>_confusion_matrix_<DATASET>.csv / .png
    results/<Approach>/Run Config/...

An export first builds every file in memory (:func:`plan_export`); only then are the files
written, each to a temporary name and renamed into place (:func:`commit`). A failure while
planning writes nothing. Rows of datasets not in the export are kept: the system tables are
recomputed from the per-dataset files, old and new. Two exports into one tree at once (two
terminals, two cluster jobs) take turns: :func:`locked` holds a file lock over reading the
existing files, merging and writing, so neither overwrites the other's rows.
"""

from __future__ import annotations

import io
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from tuning import atomic
from tuning.data.readers import natural_key
from tuning.metrics import SCORES
from tuning.statistics import mean_ci

INDIVIDUAL = "Individual Dataset Results"
FULL = "Full Split Results"
BEST = "Best Performance Results"
RUN_CONFIG = "Run Config"
OVERALL = "overall"
LOCK_NAME = ".spikesort-tune.lock"
"""The lock file in a results folder's root (kept: removing a lock file on release races)."""
TEXT_COLUMNS = {"dataset": str, "trial_id": str, "node_id": str, "experiment": str}
"""Identifiers read back as text: a trial id such as ``00012345`` must not become a number."""

_CLASSIC = {"ffn": "FFN", "cnn": "CNN", "lstm": "LSTM", "auto": "Auto"}


ENSEMBLE_SUFFIX = " Ensemble"


def approach_names(family: str, ensemble: bool = False) -> tuple[str, str]:
    """(folder, file prefix): ``cnn`` -> Classic CNN PyTorch / Classic_CNN,
    ``mtl-ffn`` -> Feature Based MTL FFN / Feature_based_MTL (the lab's historical name),
    ``mtl-cnn`` -> Feature Based MTL CNN / Feature_based_MTL_CNN, and so on. ``ensemble``:
    the export's ensemble of that family's top configurations, e.g. Classic CNN PyTorch
    Ensemble / Classic_CNN_Ensemble. ``ft-cnn`` (multi-task, then fine-tuned per dataset) ->
    Fine-Tuned MTL CNN / Fine_Tuned_MTL_CNN, and so on."""
    if family.startswith("ft-"):
        trunk = family.removeprefix("ft-").upper()
        folder, prefix = f"Fine-Tuned MTL {trunk}", f"Fine_Tuned_MTL_{trunk}"
    elif family.startswith("mtl-"):
        trunk = family.removeprefix("mtl-").upper()
        prefix = "Feature_based_MTL" if trunk == "FFN" else f"Feature_based_MTL_{trunk}"
        folder = f"Feature Based MTL {trunk}"
    else:
        trunk = _CLASSIC.get(family, family.upper())
        folder, prefix = f"Classic {trunk} PyTorch", f"Classic_{trunk}"
    if ensemble:
        return folder + ENSEMBLE_SUFFIX, prefix + ENSEMBLE_SUFFIX.replace(" ", "_")
    return folder, prefix


def individual_columns(n_classes: int) -> list[str]:
    return (["dataset", "approach", "family", "repeat", "fold", "seed", "n_train", "n_val", "n_test",
             *SCORES, *[f"recall_class_{k}" for k in range(n_classes)],
             "epochs", "best_epoch", "train_seconds", "n_parameters", "node_id", "experiment"])


def fold_rows_frame(rows: list[dict], approach: str, family: str, experiment: str) -> pd.DataFrame:
    """Per-fold rows of one dataset, in the Individual Dataset Results columns."""
    n_classes = len(rows[0]["recall"])
    records = []
    for row in rows:
        record = {k: row[k] for k in ("dataset", "repeat", "fold", "seed", "n_train", "n_val", "n_test",
                                      *SCORES, "epochs", "best_epoch", "train_seconds", "n_parameters",
                                      "node_id")}
        record.update({f"recall_class_{k}": r for k, r in enumerate(row["recall"])})
        record.update(approach=approach, family=family, experiment=experiment)
        records.append(record)
    return pd.DataFrame(records, columns=individual_columns(n_classes))


def summary_rows(per_dataset: Mapping[str, pd.DataFrame], approach: str) -> pd.DataFrame:
    """Mean, std and 95% CI of each score per dataset, and one ``overall`` row.

    The overall row summarises, per (repeat, fold) present in every dataset, the mean
    score over datasets: the system's score on that fold.
    """
    rows = [_summary(name, frame, approach) for name, frame in per_dataset.items()]
    keyed = [frame.set_index(["repeat", "fold"])[list(SCORES)] for frame in per_dataset.values()]
    if keyed:
        common = keyed[0].index
        for frame in keyed[1:]:
            common = common.intersection(frame.index)
        if len(common):
            system = sum(frame.loc[common] for frame in keyed) / len(keyed)
            overall = system.reset_index()
            overall["epochs"] = np.nan
            overall["train_seconds"] = np.nan
            rows.append(_summary(OVERALL, overall, approach))
    return pd.DataFrame(rows)


def _summary(name: str, frame: pd.DataFrame, approach: str) -> dict:
    row = {"dataset": name, "approach": approach, "n_runs": int(len(frame))}
    for score in SCORES:
        mean, low, high = mean_ci(frame[score].to_numpy(dtype=float))
        std = float(frame[score].std(ddof=1)) if len(frame) > 1 else 0.0
        # Scores are fractions: a t-interval over few folds can pass 1, which no score can.
        row.update({f"{score}_mean": mean, f"{score}_std": std,
                    f"{score}_ci95_low": max(low, 0.0), f"{score}_ci95_high": min(high, 1.0)})
    for extra in ("epochs", "train_seconds"):
        if extra in frame:
            row[f"{extra}_mean"] = float(frame[extra].mean()) if frame[extra].notna().any() else np.nan
    return row


def merge_by_dataset(existing: Path, new: pd.DataFrame, replaced: Iterable[str]) -> pd.DataFrame:
    """``existing`` CSV without the rows of ``replaced`` datasets (and its overall row), plus ``new``."""
    replaced = set(replaced) | {OVERALL}
    if existing.is_file():
        old = pd.read_csv(existing, dtype=TEXT_COLUMNS)
        old = old[~old["dataset"].isin(replaced)]
        new = pd.concat([old, new], ignore_index=True) if len(old) else new
    return sort_datasets(new)


def sort_datasets(frame: pd.DataFrame) -> pd.DataFrame:
    """Natural order (A2, A3, A4, A12, A21), ``overall`` last."""
    key = frame["dataset"].map(lambda name: (name == OVERALL, natural_key(str(name))))
    return frame.iloc[sorted(range(len(frame)), key=lambda i: key.iloc[i])].reset_index(drop=True)


def read_individual(folder: Path, prefix: str) -> dict[str, pd.DataFrame]:
    """Existing per-dataset fold tables of one approach, by dataset name."""
    found = {}
    pattern = f"{prefix}_full_split_metrics_"
    for path in sorted((folder / INDIVIDUAL).glob(f"{pattern}*.csv")):
        found[path.stem[len(pattern):]] = _read_fold_table(path)
    return found


def as_written(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as it reads back from its CSV (numbers at the CSV's precision).

    Summaries are computed from this, for new and old datasets alike, so a dataset's
    summary row does not change when another dataset is exported later.
    """
    return _read_fold_table(io.BytesIO(csv_bytes(frame)))


def _read_fold_table(source) -> pd.DataFrame:
    return pd.read_csv(source, dtype=TEXT_COLUMNS)


def order_columns(frame: pd.DataFrame, first: Iterable[str]) -> pd.DataFrame:
    """Columns ``first`` (those present, in that order), then the others sorted.

    Merged tables get one column order whatever order the datasets were exported in.
    """
    first = [c for c in first if c in frame.columns]
    return frame[first + sorted(c for c in frame.columns if c not in first)]


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, float_format="%.6g").encode()


def confusion_csv(matrix: np.ndarray) -> bytes:
    frame = pd.DataFrame(matrix, columns=[f"pred_{k}" for k in range(matrix.shape[1])])
    frame.insert(0, "true_class", range(matrix.shape[0]))
    return csv_bytes(frame)


def confusion_png(matrix: np.ndarray, title: str, class_names: list[str]) -> bytes:
    """Row-normalised confusion matrix (recall on the diagonal), with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = matrix.shape[0]
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * k + 2.2, 1.0 * k + 1.8))
    image = ax.imshow(fractions, vmin=0, vmax=1, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{matrix[i, j]}\n{fractions[i, j]:.0%}", ha="center", va="center",
                    fontsize=8, color="white" if fractions[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), class_names)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def commit(plan: Mapping[Path, bytes]) -> None:
    """Write every planned file: each to a temporary sibling, then renamed into place.

    All or nothing: if any write or rename fails, the files already renamed are put back
    as they were (:func:`tuning.atomic.write_all`).
    """
    atomic.write_all(plan)


@contextmanager
def locked(results_dir: str | Path) -> Iterator[None]:
    """Hold the results tree's lock: one export at a time reads, merges and writes in it.

    The lock (``flock`` on ``<results_dir>/.spikesort-tune.lock``) is released when the
    block ends or the process dies, so a killed export never leaves the tree locked.
    """
    from filelock import FileLock, Timeout

    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(results_dir / LOCK_NAME)  # no mode: created under the umask, as every file here
    try:
        lock.acquire(timeout=2)
    except Timeout:
        print(f"waiting for another export to finish writing into {results_dir} ...", file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
