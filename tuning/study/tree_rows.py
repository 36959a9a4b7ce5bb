"""Loading and pairing: every approach's per-fold rows, validation scores and one-split scores.

Reads the results tree written by the export::

    results/<Approach>/Individual Dataset Results/<prefix>_full_split_metrics_<DATASET>.csv
    results/<Approach>/Best Performance Results/<prefix>_best_performers.csv (or ..._best_config.csv)
    results/<Approach>/Full Split Results/<prefix>_one_split_metrics_system.csv

Rows with the same ``(dataset, repeat, fold)`` were scored on identical folds, so two
approaches' per-fold scores are paired (:func:`pair_rows`). Scores are fractions in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tuning.errors import InputError
from tuning.data.readers import natural_key
from tuning.export.references import REFERENCE_FAMILY, REFERENCE_FOLDER
from tuning.export.results_tree import ENSEMBLE_SUFFIX, INDIVIDUAL, SCORES

__all__ = [
    "SCORES", "KEY", "SINGLE", "MULTI", "ENSEMBLE", "REFERENCE", "KIND_ORDER", "TAIL_COLUMNS", "METRICS_MARK", "REFERENCE_FOLDER",
    "load_approaches", "read_rows", "pair_rows", "ordered_approaches", "missing_notes",
    "load_validation_scores", "load_one_split", "load_confusion", "trunk_of", "approach_name",
]

METRICS_MARK = "_full_split_metrics_"

SINGLE, MULTI, ENSEMBLE, REFERENCE = "single-task", "multi-task", "ensemble", "reference"
KIND_ORDER = {SINGLE: 0, MULTI: 1, ENSEMBLE: 2, REFERENCE: 3}
"""An ensemble (the export's ``--ensemble``) is shown beside the networks but is in no test of the
comparison: its primary pairs are fixed by family, and it has no validation score of its own."""

# Only used to name approaches that have no results yet; discovery scans the tree.
KNOWN_APPROACHES = (
    "Classic FFN PyTorch", "Classic CNN PyTorch", "Classic LSTM PyTorch",
    "Feature Based MTL FFN", "Feature Based MTL CNN", "Feature Based MTL LSTM",
    "Fine-Tuned MTL FFN", "Fine-Tuned MTL CNN", "Fine-Tuned MTL LSTM",
)

KEY = ["dataset", "repeat", "fold"]
_REQUIRED = ["dataset", "family", "repeat", "fold", "seed", "n_train", "n_val", "n_test", *SCORES]
TAIL_COLUMNS = ["epochs", "best_epoch", "train_seconds", "n_parameters", "node_id", "experiment"]
_STR_COLUMNS = {"dataset": str, "approach": str, "family": str, "node_id": str, "experiment": str}



# ----------------------------------------------------------------------------- loading
def _kind(folder: str, family: str) -> str:
    if folder == REFERENCE_FOLDER or family == REFERENCE_FAMILY:
        return REFERENCE
    if folder.endswith(ENSEMBLE_SUFFIX):
        return ENSEMBLE
    if folder.startswith(("Feature Based MTL", "Fine-Tuned MTL")) or family.startswith(("mtl-", "ft-")):
        return MULTI  # fine-tuned nets share their trunk's start with every dataset: the multi-task side
    return SINGLE


def read_rows(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=_STR_COLUMNS)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=_REQUIRED)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read as a results CSV ({str(exc).splitlines()[0]}); "
                         "re-export that approach") from None
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; it is not an Individual Dataset "
                         "Results file of this version; re-export that approach")
    return frame


def load_approaches(results_dir, include_references: bool = True) -> pd.DataFrame:
    """Every approach's per-fold rows from ``results_dir``.

    Scans ``results_dir/*/Individual Dataset Results/*_full_split_metrics_*.csv``.

    Returns:
        One DataFrame, one row per (approach, dataset, repeat, fold), with the file's
        columns (scores as fractions in [0, 1]) plus:
        ``approach`` (the folder name; for the References folder, the rows' own
        ``approach``), ``multitask`` (bool: folder starts with "Feature Based MTL" or
        family starts with "mtl-"), ``kind`` ("single-task", "multi-task", "ensemble": a folder
        ending in " Ensemble", or "reference")
        and ``source_file`` (the CSV it came from). Empty (no rows) when nothing is found.

    Raises:
        InputError: ``results_dir`` is missing, a file is unreadable or lacks columns, or
            one approach has two rows for the same fold.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise InputError(f"{root}: results folder not found; pass --results-dir, or export results first")
    frames = []
    for path in sorted(root.glob(f"*/{INDIVIDUAL}/*{METRICS_MARK}*.csv")):
        folder = path.parent.parent.name
        if folder == REFERENCE_FOLDER and not include_references:
            continue
        frame = read_rows(path)
        if frame.empty:
            continue
        frame = frame.copy()
        frame["family"] = frame["family"].fillna("").astype(str)
        if folder != REFERENCE_FOLDER or "approach" not in frame.columns:
            frame["approach"] = folder
        frame["kind"] = [_kind(folder, fam) for fam in frame["family"]]
        frame["multitask"] = frame["kind"] == MULTI
        frame["source_file"] = str(path)
        dup = frame.duplicated(["approach", *KEY])
        if dup.any():
            r = frame[dup].iloc[0]
            raise InputError(f"{path}: two rows for dataset {r['dataset']} repeat {r['repeat']} fold {r['fold']}; "
                             "re-export that approach")
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*_REQUIRED, "approach", "kind", "multitask", "source_file"])
    rows = pd.concat(frames, ignore_index=True)
    dup = rows.duplicated(["approach", *KEY])
    if dup.any():  # the same approach in two files (e.g. a renamed copy of a CSV)
        r = rows[dup].iloc[0]
        raise InputError(f"{r['approach']}: dataset {r['dataset']} repeat {r['repeat']} fold {r['fold']} "
                         f"appears in more than one file under {root}; remove the stale copy")
    for col in ("repeat", "fold", "seed", "n_train", "n_val", "n_test"):
        rows[col] = pd.to_numeric(rows[col], errors="coerce").astype("Int64")
    return rows


# ----------------------------------------------------------------------------- pairing
def _name(rows: pd.DataFrame, default: str) -> str:
    if "approach" in rows.columns and len(rows):
        return str(rows["approach"].iloc[0])
    return default


def _shape(rows: pd.DataFrame) -> tuple[int, int]:
    return int(rows["fold"].nunique()), int(rows["repeat"].nunique())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def pair_rows(a_rows: pd.DataFrame, b_rows: pd.DataFrame) -> pd.DataFrame:
    """Join two approaches' per-fold rows on ``(dataset, repeat, fold)``.

    Datasets present on one side only are left out (the caller reports them as missing).
    For each dataset on both sides the fold keys, and each key's ``seed`` and ``n_test``,
    must agree: otherwise the two were scored on different folds and a paired comparison
    would be meaningless.

    Returns:
        The joined rows, ``KEY`` columns unsuffixed and every other column suffixed
        ``_a`` / ``_b``, sorted by ``(dataset, repeat, fold)``.

    Raises:
        InputError: one line naming both approaches, the dataset and what differs.
    """
    a_name, b_name = _name(a_rows, "first approach"), _name(b_rows, "second approach")
    common = sorted(set(a_rows["dataset"]) & set(b_rows["dataset"]), key=natural_key)
    pieces = []
    for dataset in common:
        a = a_rows[a_rows["dataset"] == dataset]
        b = b_rows[b_rows["dataset"] == dataset]
        where = f"cannot pair '{a_name}' with '{b_name}' on dataset {dataset}"
        keys_a = set(zip(a["repeat"].astype(int), a["fold"].astype(int)))
        keys_b = set(zip(b["repeat"].astype(int), b["fold"].astype(int)))
        if keys_a != keys_b:
            (fa, ra), (fb, rb) = _shape(a), _shape(b)
            if (fa, ra) != (fb, rb):
                raise InputError(
                    f"{where}: they were scored on different folds ('{a_name}' has {_plural(fa, 'fold')} x "
                    f"{_plural(ra, 'repeat')}, as exported with --folds {fa} --repeats {ra}; '{b_name}' has "
                    f"{_plural(fb, 'fold')} x {_plural(rb, 'repeat')}, as with --folds {fb} --repeats {rb}); "
                    "re-export both with the same --folds, --repeats and --seed")
            only_a, only_b = sorted(keys_a - keys_b), sorted(keys_b - keys_a)
            side, lacking, (r, f) = (a_name, b_name, only_a[0]) if only_a else (b_name, a_name, only_b[0])
            raise InputError(
                f"{where}: '{side}' has repeat {r} fold {f} but '{lacking}' does not "
                f"({len(only_a) + len(only_b)} unmatched fold(s)); re-export both with the same "
                "--folds, --repeats and --seed")
        merged = a.merge(b, on=KEY, suffixes=("_a", "_b"), validate="one_to_one")
        bad = merged[merged["seed_a"] != merged["seed_b"]]
        if len(bad):
            r = bad.iloc[0]
            base_a, base_b = int(r["seed_a"]) - int(r["repeat"]), int(r["seed_b"]) - int(r["repeat"])
            raise InputError(
                f"{where}: repeat {r['repeat']} used seed {r['seed_a']} in '{a_name}' but {r['seed_b']} in "
                f"'{b_name}' (exported with --seed {base_a} vs --seed {base_b}), so the folds differ; "
                "re-export both with the same --seed")
        bad = merged[merged["n_test_a"] != merged["n_test_b"]]
        if len(bad):
            r = bad.iloc[0]
            raise InputError(
                f"{where}: repeat {r['repeat']} fold {r['fold']} scored {r['n_test_a']} rows in '{a_name}' but "
                f"{r['n_test_b']} in '{b_name}', so the folds were drawn from different data; re-export both "
                "from the same dataset CSV with the same --folds, --repeats and --seed")
        pieces.append(merged.sort_values(["repeat", "fold"]))  # datasets are already in natural order
    if not pieces:
        return a_rows.iloc[0:0].merge(b_rows.iloc[0:0], on=KEY, suffixes=("_a", "_b"))
    return pd.concat(pieces, ignore_index=True)


# ----------------------------------------------------------------------------- missing approaches
def missing_notes(rows: pd.DataFrame) -> list[str]:
    """Which approaches have no results yet: by kind, by name, and per dataset."""
    nets = rows[rows["kind"] != REFERENCE]
    notes = []
    kinds = set(nets["kind"])
    if MULTI not in kinds:
        notes.append("No multi-task results yet: there is nothing to test against the single-task "
                     "approaches; only their scores are shown.")
    if SINGLE not in kinds:
        notes.append("No single-task results yet: the multi-task approaches have nothing to be compared "
                     "with; only their scores are shown.")
    found = set(nets["approach"])
    absent = [a for a in KNOWN_APPROACHES if a not in found]
    if absent:
        notes.append("No results yet from: " + ", ".join(absent) + ".")
    for dataset in sorted(nets["dataset"].unique(), key=natural_key):
        lacking = sorted(found - set(nets[nets["dataset"] == dataset]["approach"]))
        if lacking:
            notes.append(f"{dataset}: no results yet from " + ", ".join(lacking) + ".")
    return notes




# ----------------------------------------------------------------------------- order, names
def ordered_approaches(rows: pd.DataFrame) -> list[str]:
    """Approaches of ``rows`` (a frame with ``approach`` and ``kind``): single-task, then
    multi-task, then references, each alphabetically."""
    kinds = rows.groupby("approach")["kind"].first()
    return sorted(kinds.index, key=lambda a: (KIND_ORDER[kinds[a]], a))


def approach_name(rows: pd.DataFrame, default: str = "") -> str:
    return _name(rows, default)


def trunk_of(family: str) -> str:
    """The network kind behind a family: ``mtl-cnn`` and ``ft-cnn`` -> ``cnn``, ``cnn`` -> ``cnn``."""
    from models import trunk_family

    return trunk_family(str(family))


# ----------------------------------------------------------------------------- what the search saw
def _read_optional(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, dtype={"dataset": str, "trial_id": str, "experiment": str})
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


def load_validation_scores(results_dir) -> pd.DataFrame:
    """The tuning validation score of each approach's chosen configuration, per dataset.

    Read from ``<Approach>/Best Performance Results/*.csv`` (the ``objective`` and
    ``objective_value`` the search recorded on its validation rows, which no full-split
    or one-split test row belongs to). For a multi-task approach it is that dataset's
    own head's score.

    Returns:
        Columns ``approach, dataset, objective, objective_value, higher_is_better``; empty
        when nothing is found. Unreadable files are skipped (the comparison then falls
        back as documented in :func:`tuning.study.comparison.compare`).
    """
    frames = []
    for path in sorted(Path(results_dir).glob("*/Best Performance Results/*.csv")):
        frame = _read_optional(path)
        if frame is None or not {"dataset", "objective", "objective_value"} <= set(frame.columns):
            continue
        frame = frame[["dataset", "objective", "objective_value"]].copy()
        frame["approach"] = path.parent.parent.name
        frames.append(frame)
    columns = ["approach", "dataset", "objective", "objective_value", "higher_is_better"]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    out["objective_value"] = pd.to_numeric(out["objective_value"], errors="coerce")
    out["higher_is_better"] = ~out["objective"].astype(str).str.endswith("loss")
    return out[columns].drop_duplicates(["approach", "dataset"], keep="last")


def load_one_split(results_dir) -> pd.DataFrame:
    """Each approach's one-split test scores (the tuning split's untouched test rows).

    Returns:
        Columns ``approach, dataset`` and every score (fractions); empty when none.
    """
    frames = []
    for path in sorted(Path(results_dir).glob("*/Full Split Results/*_one_split_metrics_system.csv")):
        frame = _read_optional(path)
        if frame is None or "dataset" not in frame.columns:
            continue
        keep = [s for s in SCORES if s in frame.columns]
        frame = frame[frame["dataset"] != "overall"][["dataset", *keep]].copy()
        frame["approach"] = path.parent.parent.name
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["approach", "dataset", *SCORES])
    return pd.concat(frames, ignore_index=True)


def load_confusion(rows: pd.DataFrame, approach: str, dataset: str) -> np.ndarray | None:
    """The summed confusion matrix the export wrote beside an approach's fold rows
    (``<prefix>_confusion_matrix_<DATASET>.csv``; counts, true class by row), or None."""
    part = rows[(rows["approach"] == approach) & (rows["dataset"] == dataset)]
    if part.empty or "source_file" not in part.columns:
        return None
    source = Path(part["source_file"].iloc[0])
    prefix = source.name.split(METRICS_MARK)[0]
    path = source.parent / f"{prefix}_confusion_matrix_{dataset}.csv"
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    cols = [c for c in frame.columns if str(c).startswith("pred_")]
    cols.sort(key=lambda c: int(str(c)[5:]) if str(c)[5:].isdigit() else 10**9)
    if "true_class" in frame.columns:
        frame = frame.sort_values("true_class")
    matrix = frame[cols].to_numpy(dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
        return None
    return matrix
