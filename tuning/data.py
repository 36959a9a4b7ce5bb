"""Load and validate spike-waveform datasets (one CSV per dataset).

File format
-----------
One row per spike. Every column except one is a waveform sample (any count >= 1, in
file order, the lab's files use microvolts at 32 kHz, 48 samples = 1.5 ms); the remaining
column holds the label. The label column is:

1. ``label_column`` (the CLI's ``--label-column``) if given: an exact name, else a
   case-insensitive match;
2. else the first column whose name, case-insensitively, is one of
   :data:`LABEL_COLUMN_NAMES` (``label``, ``track``, ``class``, ``unit``, ``y``), in any
   position;
3. else the last column.

Labels may be numbers (0-based, 1-based, sparse such as 3, 7, 12) or strings. They map to
class ids ``0..K-1`` in sorted order: numeric order when every label parses as a finite
number (``"12"`` after ``"7"``), string order otherwise. Numeric labels that denote the same
number (``"1"``, ``"1.0"``, ``"01"``) are one class, named by its canonical form (``"1"``).
``Dataset.class_names[i]`` is the label of class ``i``; the mapping is written next to
the results so predictions can be read back in the lab's own labels.

Validation
----------
Everything is checked once, here, before Ray starts. Every problem raises
:class:`tuning.errors.InputError` with one line that names the file, the line number
(1-based line in the file, header = line 1) and/or the column, what is wrong and what to
do. Blank lines are skipped. Cells may carry surrounding spaces.

Multi-channel files name their waveform columns ``ch{c}_s{t}`` (:mod:`tuning.channels`);
their rows are stored channel-major and ``Dataset.n_channels`` says how many channels.

Shapes and types of a loaded :class:`Dataset`:
``X`` float32, ``(n_rows, n_channels * n_samples)``, C-contiguous, in the file's units;
``y`` int64, ``(n_rows,)``, values ``0..K-1``.
The arrays are ordinary writeable numpy arrays; code that shares a Dataset (Ray trials)
must treat them as read-only.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuning.channels import channel_layout
from tuning.errors import InputError

__all__ = [
    "LABEL_COLUMN_NAMES",
    "Dataset",
    "resolve_dataset_paths",
    "load_dataset",
    "load_datasets",
]

#: Column names (compared case-insensitively) taken as the label column, first match wins.
LABEL_COLUMN_NAMES = ("label", "track", "class", "unit", "y")

# Label cells that mean "no label": pandas writes a missing value as an empty cell or "nan".
_MISSING_LABELS = {"", "nan"}


# eq=False: dataclass equality would compare numpy arrays elementwise and fail; identity
# equality (and hashing) is what callers need.
@dataclass(frozen=True, eq=False)
class Dataset:
    """One labelled waveform dataset, validated.

    Attributes:
        name: dataset name, the file stem (``"A12"``); used in result file names.
        path: resolved absolute path of the CSV.
        X: float32 array ``(n_rows, n_samples)``, C-contiguous, one waveform per row in the
            file's units (microvolts for the shipped data).
        y: int64 array ``(n_rows,)`` of class ids ``0..K-1``.
        label_column: name of the label column in the CSV header.
        class_names: ``class_names[i]`` is the original label (as a string) of class ``i``.
        n_channels: channels per waveform; a row of ``X`` is ``(n_channels, length)``
            flattened channel-major (1 for a plain single-channel file).
    """

    name: str
    path: Path
    X: np.ndarray
    y: np.ndarray
    label_column: str
    class_names: tuple[str, ...]
    n_channels: int = 1

    @property
    def n_classes(self) -> int:
        """Number of classes K."""
        return len(self.class_names)

    @property
    def length(self) -> int:
        """Waveform length in samples per channel (columns of ``X`` for one channel)."""
        return int(self.X.shape[1]) // self.n_channels

    @property
    def n_rows(self) -> int:
        """Number of spikes (rows of ``X``)."""
        return int(self.X.shape[0])

    @property
    def class_counts(self) -> np.ndarray:
        """int64 array ``(K,)``: rows per class id."""
        return np.bincount(self.y, minlength=self.n_classes).astype(np.int64)

    def label_map(self) -> dict[str, int]:
        """Original label (as a string) -> class id."""
        return {name: i for i, name in enumerate(self.class_names)}

    def __repr__(self) -> str:  # the default repr would print both arrays
        return (
            f"Dataset(name={self.name!r}, rows={self.n_rows}, length={self.length}, "
            f"{f'channels={self.n_channels}, ' if self.n_channels > 1 else ''}classes={self.n_classes}, label_column={self.label_column!r}, path='{self.path}')"
        )


# --------------------------------------------------------------------------------------
# Resolving dataset arguments
# --------------------------------------------------------------------------------------


def _natural_key(name: str) -> tuple:
    """Sort key putting A2 before A12: digit runs compare as numbers."""
    # re.split with a capture group alternates text (even positions) and digits (odd
    # positions), so the types at each position always match between two keys.
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)) + (name,)


def _available(data_dir: Path) -> list[Path]:
    if not data_dir.is_dir():
        return []
    files = [p for p in data_dir.iterdir() if p.suffix.lower() == ".csv" and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.stem))


def resolve_dataset_paths(arg: str, data_dir: str | Path = "data") -> list[Path]:
    """Turn a dataset argument into CSV paths (resolved, absolute).

    Args:
        arg: a dataset name (``"A12"`` -> ``data_dir/A12.csv``), a path to a CSV (contains
            a path separator or ends with ``.csv``), or ``"all"`` (every ``*.csv`` in
            ``data_dir``, in natural order: A2, A3, A4, A12, A21).
        data_dir: folder holding the named datasets.

    Raises:
        InputError: unknown name (the message lists the names available), a path that is
            not a file, or ``"all"`` with no CSV in ``data_dir``.
    """
    data_dir = Path(data_dir).expanduser()
    arg = str(arg).strip()
    if not arg:
        raise InputError("empty dataset argument: give a dataset name such as A12, a path to a CSV, or 'all'")

    if arg.lower() == "all":
        files = _available(data_dir)
        if not files:
            raise InputError(
                f"'all' found no *.csv files in {data_dir}: put dataset CSVs there or pass "
                "a path to a CSV"
            )
        return [p.resolve() for p in files]

    if "/" in arg or "\\" in arg or arg.lower().endswith(".csv"):
        path = Path(arg).expanduser()
        # A bare "A12.csv" that is not in the working directory may mean data_dir/A12.csv.
        if not path.exists() and path.parent == Path(".") and (data_dir / path.name).is_file():
            path = data_dir / path.name
        if not path.exists():
            raise InputError(f"{arg}: file not found; check the path (relative paths start from {Path.cwd()})")
        if not path.is_file():
            raise InputError(f"{arg}: is not a file; pass a CSV file, a dataset name or 'all'")
        return [path.resolve()]

    path = data_dir / f"{arg}.csv"
    if path.is_file():
        return [path.resolve()]
    files = _available(data_dir)
    matches = [p for p in files if p.stem.lower() == arg.lower()]
    if len(matches) == 1:  # tolerate "a12" for A12.csv
        return [matches[0].resolve()]
    names = ", ".join(p.stem for p in files) if files else "none"
    raise InputError(
        f"unknown dataset {arg!r}: there is no {path}; available in {data_dir}: {names} "
        "(or pass a path to a CSV, or 'all')"
    )


# --------------------------------------------------------------------------------------
# Loading one CSV
# --------------------------------------------------------------------------------------


def _show(value: str, limit: int = 40) -> str:
    """A cell for an error message: quoted, escaped to one line, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _col(header: list[str], j: int) -> str:
    return f"column {header[j]!r} (field {j + 1})"


def _pick_label_column(path: Path, header: list[str], label_column: str | None) -> int:
    if len(header) < 2:
        raise InputError(
            f"{path}: the header has only one column ({header[0]!r}); a dataset needs waveform "
            "columns and a label column, separated by commas (convert ';' or tab-separated files)"
        )
    if label_column is not None:
        want = label_column.strip()
        for j, name in enumerate(header):
            if name == want:
                return j
        for j, name in enumerate(header):
            if name.lower() == want.lower():
                return j
        shown = ", ".join(header) if len(header) <= 12 else ", ".join(header[:5] + ["..."] + header[-5:])
        raise InputError(
            f"{path}: label column {label_column!r} not found; the columns are {shown}; "
            "pass one of them with --label-column"
        )
    for j, name in enumerate(header):
        if name.lower() in LABEL_COLUMN_NAMES:
            return j
    return len(header) - 1


def _looks_like_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _map_labels(labels: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels (stripped strings) -> (int64 class ids, class names)."""
    uniq = set(labels)
    numeric: dict[str, float] = {}
    for s in uniq:
        try:
            v = float(s)
        except ValueError:
            break
        if not math.isfinite(v):
            break
        numeric[s] = v
    else:
        # All labels are numbers: group equal numbers, order numerically.
        def canon(v: float) -> str:
            return str(int(v)) if v.is_integer() else repr(v)

        values = sorted(set(numeric.values()))
        class_names = tuple(canon(v) for v in values)
        ids = {v: i for i, v in enumerate(values)}
        lookup = {s: ids[v] for s, v in numeric.items()}
        return np.fromiter((lookup[s] for s in labels), dtype=np.int64, count=len(labels)), class_names
    class_names = tuple(sorted(uniq))
    lookup = {s: i for i, s in enumerate(class_names)}
    return np.fromiter((lookup[s] for s in labels), dtype=np.int64, count=len(labels)), class_names


def load_dataset(path: str | Path, label_column: str | None = None, min_rows_per_class: int = 5) -> Dataset:
    """Read and validate one dataset CSV.

    Args:
        path: the CSV file; its stem is the dataset name.
        label_column: name of the label column (exact, else case-insensitive); ``None``
            detects it (see the module docstring).
        min_rows_per_class: every class needs at least this many rows; pass
            ``tuning.splits.min_rows_per_class(n_folds)`` so the splits cannot fail.

    Returns:
        A :class:`Dataset` with ``X`` float32 ``(n_rows, n_samples)`` and ``y`` int64.

    Raises:
        InputError: one line naming the file and, where it applies, the line and column.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path or the dataset name")
    if not path.is_file():
        raise InputError(f"{path}: is not a file; pass a CSV file")
    path = path.resolve()
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet programs write.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: is not UTF-8 text (byte {exc.start}); save it as a UTF-8 CSV") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    if not text.strip():
        raise InputError(f"{path}: the file is empty; it needs a header line and one row per spike")

    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    header_line = 0
    rows: list[list[str]] = []
    lines: list[int] = []  # file line number of each data row (1-based, header = line 1)
    try:
        for row in reader:
            # Blank lines (trailing newlines, spacing) carry no data.
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = [name.strip() for name in row]
                header_line = reader.line_num
                continue
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: malformed CSV ({exc}); check the quoting on that line") from None
    assert header is not None  # the file is not blank, so it has a first row

    # A header whose cells are all numbers, one of them fractional, is a waveform: the
    # file has no header line and the first spike would silently become column names.
    if all(_looks_like_number(c) for c in header) and any("." in c or "e" in c.lower() for c in header):
        raise InputError(
            f"{path}: line {header_line} looks like data, not a header (it starts {_show(header[0])}); "
            "add a header line such as s0,...,s47,label"
        )
    if not rows:
        raise InputError(f"{path}: has a header but no data rows; add one row per spike")

    n_cols = len(header)
    label_j = _pick_label_column(path, header, label_column)
    label_name = header[label_j]

    for row, line in zip(rows, lines):
        if len(row) != n_cols:
            raise InputError(
                f"{path}: line {line} has {len(row)} fields but the header has {n_cols}; "
                "fix or remove that line (every row needs one value per column)"
            )

    labels = [row[label_j].strip() for row in rows]
    for lab, line in zip(labels, lines):
        if lab.lower() in _MISSING_LABELS:
            raise InputError(
                f"{path}: line {line}: the label column {label_name!r} is empty"
                f"{'' if not lab else f' ({lab!r})'}; give every row a label or remove the row"
            )

    wave_cols = [j for j in range(n_cols) if j != label_j]
    if label_j == n_cols - 1:
        cells = [row[:-1] for row in rows]
    elif label_j == 0:
        cells = [row[1:] for row in rows]
    else:
        cells = [row[:label_j] + row[label_j + 1 :] for row in rows]
    try:
        X64 = np.array(cells, dtype=np.float64)
    except ValueError:
        _raise_bad_cell(path, header, wave_cols, cells, lines)
        raise  # unreachable: _raise_bad_cell always raises
    X64 = X64.reshape(len(rows), len(wave_cols))

    finite = np.isfinite(X64)
    if not finite.all():
        i, k = np.argwhere(~finite)[0]
        raise InputError(
            f"{path}: line {lines[i]}, {_col(header, wave_cols[k])}: value {_show(cells[i][k].strip())} "
            "is not a finite number; repair or remove that row (waveforms must not hold NaN or inf)"
        )
    too_big = np.abs(X64) > np.finfo(np.float32).max  # finite, but would become inf in float32
    if too_big.any():
        i, k = np.argwhere(too_big)[0]
        raise InputError(
            f"{path}: line {lines[i]}, {_col(header, wave_cols[k])}: value {_show(cells[i][k].strip())} "
            "is too large for float32; rescale the waveforms"
        )
    X = np.ascontiguousarray(X64, dtype=np.float32)
    n_channels, order = channel_layout(path, [header[j] for j in wave_cols])
    if order is not None:  # ch{c}_s{t} columns in another order: store them channel-major
        X = np.ascontiguousarray(X[:, order])

    y, class_names = _map_labels(labels)
    counts = np.bincount(y, minlength=len(class_names))
    if len(class_names) < 2:
        raise InputError(
            f"{path}: the label column {label_name!r} holds a single class ({class_names[0]!r}, "
            f"{len(rows)} rows); a classifier needs at least two classes: check the file or "
            "choose another column with --label-column"
        )
    small = [(class_names[c], int(n)) for c, n in enumerate(counts) if n < min_rows_per_class]
    if small:
        listed = ", ".join(f"class {name!r} has {n} rows" for name, n in small)
        raise InputError(
            f"{path}: {listed} in label column {label_name!r}; every class needs at least "
            f"{min_rows_per_class} rows for the stratified splits: use fewer folds with --folds "
            "or add more spikes of that class"
        )

    return Dataset(
        name=path.stem,
        path=path,
        X=X,
        y=y,
        label_column=label_name,
        class_names=class_names,
        n_channels=n_channels,
    )


def _raise_bad_cell(path: Path, header: list[str], wave_cols: list[int], cells: list[list[str]], lines: list[int]):
    """Find the first waveform cell that is not a number and raise an InputError naming it."""
    for row, line in zip(cells, lines):
        for k, cell in enumerate(row):
            try:
                float(cell)
            except ValueError:
                where = f"{path}: line {line}, {_col(header, wave_cols[k])}"
                if not cell.strip():
                    raise InputError(
                        f"{where}: the cell is empty; fill in the sample or remove the row "
                        "(waveforms must not have missing values)"
                    ) from None
                raise InputError(
                    f"{where}: {_show(cell.strip())} is not a number; waveform columns must hold "
                    "numbers (or name this column with --label-column if it is the label)"
                ) from None
    # numpy refused the block but every cell parses alone: should not happen, stay specific.
    raise InputError(f"{path}: the waveform columns could not be read as numbers; check the file's format")


# --------------------------------------------------------------------------------------
# Several datasets
# --------------------------------------------------------------------------------------


def load_datasets(
    arg: str | Sequence[str],
    data_dir: str | Path = "data",
    label_column: str | None = None,
    min_rows_per_class: int = 5,
) -> list[Dataset]:
    """Resolve a dataset argument (or a list of them) and load every dataset.

    Args:
        arg: as :func:`resolve_dataset_paths` (a name, a path, or ``"all"``); a sequence
            of such arguments is also accepted and loaded in order.
        data_dir, label_column, min_rows_per_class: as :func:`resolve_dataset_paths` and
            :func:`load_dataset`.

    Raises:
        InputError: from resolving or loading, or when two files share a name (file stem,
            compared case-insensitively, since result file names are built from it).
    """
    args = [arg] if isinstance(arg, str) else list(arg)
    paths: list[Path] = []
    for a in args:
        paths.extend(resolve_dataset_paths(a, data_dir))
    seen: dict[str, Path] = {}
    for p in paths:
        key = p.stem.lower()
        if key in seen:
            if seen[key] == p:
                raise InputError(f"dataset {p.stem!r} is given twice ({p}); name each dataset once")
            raise InputError(
                f"two datasets are named {p.stem!r}: {seen[key]} and {p}; dataset names (file "
                "stems) must be unique, rename one file"
            )
        seen[key] = p
    return [load_dataset(p, label_column=label_column, min_rows_per_class=min_rows_per_class) for p in paths]
