"""Load and validate spike-waveform datasets (one CSV per dataset).

File format
-----------
One row per spike: waveform samples (any count >= 1; the lab's files use microvolts at
32 kHz, 48 samples = 1.5 ms), one label column, and optionally metadata columns. Which
columns are samples is decided by their names (:mod:`tuning.data.columns`: ``s0..``,
``ch{c}_s{t}``, another numbered pattern, or ``--columns PATTERN``); the other columns
(``spike_time``, ``channel``, ``amplitude``, ...) are metadata and are not read. A header
with no numbered names keeps the old rule: every column but the label is a sample, in file
order. The label column is:

1. ``label_column`` (the CLI's ``--label-column``) if given: an exact name, else a
   case-insensitive match;
2. else the first column whose name, case-insensitively, is one of
   :data:`LABEL_COLUMN_NAMES` (``label``, ``track``, ``class``, ``unit``, ``y``), in any
   position;
3. else the last column.

Labels may be numbers (0-based, 1-based, sparse such as 3, 7, 12) or strings. They map to
class ids ``0..K-1`` in sorted order: numeric order when every label parses as a finite
number (``"12"`` after ``"7"``), string order otherwise. Numeric labels that denote the same
number (``"1"``, ``"1.0"``, ``"01"``) are one class, named by its canonical form (``"1"``);
:mod:`tuning.data.labels` holds the rule, which ``predict`` shares.
``Dataset.class_names[i]`` is the label of class ``i``; the mapping is written next to
the results so predictions can be read back in the lab's own labels.

Validation
----------
Files may be gzip-compressed (``NAME.csv.gz``). Well-formed files are read by pyarrow's CSV
reader (:func:`_read_fast`); any file it does not accept as it stands is read again line by
line (:func:`_read_checked`), which accepts every file the fast reader does, gives the same
arrays, and names the first problem. Everything is checked once, here, before Ray starts.
Every problem raises :class:`tuning.errors.InputError` with one line that names the file,
the line number (1-based line in the file, header = line 1) and/or the column, what is
wrong and what to do. Blank lines are skipped. Cells may carry surrounding spaces.

Multi-channel files name their waveform columns ``ch{c}_s{t}`` (:mod:`tuning.data.channels`);
their rows are stored channel-major and ``Dataset.n_channels`` says how many channels.
Numbered columns are stored in number order, whatever their order in the file.

Shapes and types of a loaded :class:`Dataset`:
``X`` float32, ``(n_rows, n_channels * n_samples)``, C-contiguous, in the file's units;
``y`` int64, ``(n_rows,)``, values ``0..K-1``.
The arrays are ordinary writeable numpy arrays; code that shares a Dataset (Ray trials)
must treat them as read-only.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuning.data.columns import ColumnLayout, waveform_columns
from tuning.data.csv_files import count_lines, existing_file, is_gzip, open_csv, show
from tuning.data.labels import LABEL_COLUMN_NAMES, is_missing, map_labels
from tuning.errors import InputError

__all__ = [
    "LABEL_COLUMN_NAMES",
    "Dataset",
    "natural_key",
    "resolve_dataset_paths",
    "load_dataset",
    "load_datasets",
]

#: File names taken as datasets: NAME.csv, or NAME.csv.gz (gzip-compressed), any case.
DATASET_SUFFIXES = (".csv", ".csv.gz")


def dataset_name(path: str | Path) -> str:
    """The dataset's name: the file name without ``.csv`` / ``.csv.gz`` (``A12.csv.gz`` -> ``A12``)."""
    name = Path(path).name
    for suffix in sorted(DATASET_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _is_dataset_file(path: Path) -> bool:
    return path.name.lower().endswith(DATASET_SUFFIXES) and dataset_name(path) != path.name


# eq=False: dataclass equality would compare numpy arrays elementwise and fail; identity
# equality (and hashing) is what callers need.
@dataclass(frozen=True, eq=False)
class Dataset:
    """One labelled waveform dataset, validated.

    Attributes:
        name: dataset name, the file name without ``.csv`` / ``.csv.gz`` (``"A12"``); used
            in result file names.
        path: resolved absolute path of the CSV.
        X: float32 array ``(n_rows, n_samples)``, C-contiguous, one waveform per row in the
            file's units (microvolts for the shipped data).
        y: int64 array ``(n_rows,)`` of class ids ``0..K-1``.
        label_column: name of the label column in the CSV header.
        class_names: ``class_names[i]`` is the original label (as a string) of class ``i``.
        n_channels: channels per waveform; a row of ``X`` is ``(n_channels, length)``
            flattened channel-major (1 for a plain single-channel file).
        columns: the ``--columns`` template the file was read with; ``None``: the rule's
            own (:mod:`tuning.data.columns`). Reloading the file needs the same.
        metadata_columns: the header's columns that are neither samples nor the label,
            skipped (``spike_time``, ...).
    """

    name: str
    path: Path
    X: np.ndarray
    y: np.ndarray
    label_column: str
    class_names: tuple[str, ...]
    n_channels: int = 1
    columns: str | None = None
    metadata_columns: tuple[str, ...] = ()

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


def natural_key(name: str) -> tuple:
    """Sort key putting A2 before A12: digit runs compare as numbers (case ignored, then the
    name itself breaks ties). Used wherever datasets are listed: folders, result tables, reports."""
    # re.split with a capture group alternates text (even positions) and digits (odd
    # positions), so the types at each position always match between two keys.
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)) + (name,)


def _available(data_dir: Path) -> list[Path]:
    if not data_dir.is_dir():
        return []
    files = [p for p in data_dir.iterdir() if _is_dataset_file(p) and p.is_file()]
    return sorted(files, key=lambda p: natural_key(dataset_name(p)))


def resolve_dataset_paths(arg: str, data_dir: str | Path = "data") -> list[Path]:
    """Turn a dataset argument into CSV paths (resolved, absolute).

    Args:
        arg: a dataset name (``"A12"`` -> ``data_dir/A12.csv`` or ``data_dir/A12.csv.gz``),
            a path to a CSV (contains a path separator or ends with ``.csv`` / ``.csv.gz``),
            or ``"all"`` (every ``*.csv`` and ``*.csv.gz`` in ``data_dir``, in natural order:
            A2, A3, A4, A12, A21).
        data_dir: folder holding the named datasets.

    Raises:
        InputError: unknown name (the message lists the names available), a name with both
            a ``.csv`` and a ``.csv.gz`` file, a path that is not a file, or ``"all"`` with no
            CSV in ``data_dir``.
    """
    data_dir = Path(data_dir).expanduser()
    arg = str(arg).strip()
    if not arg:
        raise InputError("empty dataset argument: give a dataset name such as A12, a path to a CSV, or 'all'")

    if arg.lower() == "all":
        files = _available(data_dir)
        if not files:
            raise InputError(
                f"'all' found no *.csv (or *.csv.gz) files in {data_dir}: put dataset CSVs there or pass "
                "a path to a CSV"
            )
        return [p.resolve() for p in files]

    if "/" in arg or "\\" in arg or arg.lower().endswith(DATASET_SUFFIXES):
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
    exact = [p for p in (path, data_dir / f"{arg}.csv.gz") if p.is_file()]
    files = _available(data_dir)
    # tolerate "a12" for A12.csv
    matches = exact or [p for p in files if dataset_name(p).lower() == arg.lower()]
    if len(matches) == 1:
        return [matches[0].resolve()]
    if len(matches) > 1:
        raise InputError(
            f"dataset {arg!r} is ambiguous: {' and '.join(str(p) for p in matches)} both match; "
            "keep one of them (or pass a path)"
        )
    names = ", ".join(dataset_name(p) for p in files) if files else "none"
    raise InputError(
        f"unknown dataset {arg!r}: there is no {path}; available in {data_dir}: {names} "
        "(or pass a path to a CSV, or 'all')"
    )


# --------------------------------------------------------------------------------------
# Loading one CSV
# --------------------------------------------------------------------------------------


def _col(header: list[str], j: int) -> str:
    return f"column {header[j]!r} (field {j + 1})"


def find_column(header: list[str], name: str) -> int | None:
    """Index of the column called ``name`` (an exact match first, then any case), or None."""
    want = name.strip()
    for j, column in enumerate(header):
        if column == want:
            return j
    for j, column in enumerate(header):
        if column.lower() == want.lower():
            return j
    return None


def _pick_label_column(path: Path, header: list[str], label_column: str | None) -> int:
    if len(header) < 2:
        raise InputError(
            f"{path}: the header has only one column ({header[0]!r}); a dataset needs waveform "
            "columns and a label column, separated by commas (convert ';' or tab-separated files)"
        )
    if label_column is not None:
        found = find_column(header, label_column)
        if found is not None:
            return found
        shown = ", ".join(header) if len(header) <= 12 else ", ".join(header[:5] + ["..."] + header[-5:])
        raise InputError(
            f"{path}: label column {label_column!r} not found; the columns are {shown}; "
            "pass one of them with --label-column"
        )
    for j, name in enumerate(header):
        if name.lower() in LABEL_COLUMN_NAMES:
            return j
    return len(header) - 1


def load_dataset(path: str | Path, label_column: str | None = None, min_rows_per_class: int = 5,
                 columns: str | None = None) -> Dataset:
    """Read and validate one dataset CSV.

    Args:
        path: the CSV (or ``.csv.gz``) file; its name without that suffix is the dataset name.
        label_column: name of the label column (exact, else case-insensitive); ``None``
            detects it (see the module docstring).
        min_rows_per_class: every class needs at least this many rows; pass
            ``tuning.data.splits.min_rows_per_class(n_folds)`` so the splits cannot fail.
        columns: the waveform columns' name template (``--columns``, e.g. ``"wave_{t}"``);
            ``None`` finds them by :mod:`tuning.data.columns`'s rule.

    Returns:
        A :class:`Dataset` with ``X`` float32 ``(n_rows, n_channels * n_samples)`` and ``y`` int64.

    Raises:
        InputError: one line naming the file and, where it applies, the line and column.
    """
    path = existing_file(path)
    parsed = _read_fast(path, label_column, columns) or _read_checked(path, label_column, columns)
    label_name, layout, X, y, class_names = parsed
    counts = np.bincount(y, minlength=len(class_names))
    if len(class_names) < 2:
        raise InputError(
            f"{path}: the label column {label_name!r} holds a single class ({class_names[0]!r}, "
            f"{len(y)} rows); a classifier needs at least two classes: check the file or "
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
        name=dataset_name(path),
        path=path,
        X=X,
        y=y,
        label_column=label_name,
        class_names=class_names,
        n_channels=layout.n_channels,
        columns=columns,
        metadata_columns=layout.metadata_names,
    )


# What both readers return: (label column name, the waveform columns' layout, X float32
# (n, channels x samples) C-contiguous in the layout's order, y int64 class ids, class names).
_Parsed = tuple[str, ColumnLayout, np.ndarray, np.ndarray, tuple[str, ...]]


def _read_checked(path: Path, label_column: str | None, columns: str | None = None) -> _Parsed:
    """Read ``path`` line by line, checking everything; the first problem raises InputError
    naming its line and column. The reference for what a dataset file may hold."""
    path, header, _, stream = open_csv(path)
    rows: list[list[str]] = []
    lines: list[int] = []  # file line number of each data row (1-based, header = line 1)
    try:
        for line, row in stream:
            rows.append(row)
            lines.append(line)
    finally:
        stream.close()
    if not rows:
        raise InputError(f"{path}: has a header but no data rows; add one row per spike")

    n_cols = len(header)
    label_j = _pick_label_column(path, header, label_column)
    label_name = header[label_j]
    layout = waveform_columns(path, header, label_j, columns)

    for row, line in zip(rows, lines):
        check_row_length(path, row, line, n_cols)

    labels = [row[label_j].strip() for row in rows]
    for lab, line in zip(labels, lines):
        if is_missing(lab):
            raise InputError(
                f"{path}: line {line}: the label column {label_name!r} is empty"
                f"{'' if not lab else f' ({lab!r})'}; give every row a label or remove the row"
            )

    X = waveform_array(path, header, rows, lines, layout.waveform)
    y, class_names = map_labels(labels)
    return label_name, layout, X, y, class_names


# Reading in pieces: the checked reader's own checks, which the predict command applies to
# chunks of a large file (it cannot hold every row's text at once).


def check_row_length(path: Path, row: list[str], line: int, n_cols: int) -> None:
    if len(row) != n_cols:
        raise InputError(
            f"{path}: line {line} has {len(row)} fields but the header has {n_cols}; "
            "fix or remove that line (every row needs one value per column)"
        )


def waveform_array(path: Path, header: list[str], rows: list[list[str]], lines: list[int],
                   wave_cols: Sequence[int]) -> np.ndarray:
    """The cells of columns ``wave_cols`` (header indices, in sample order) of ``rows`` as
    float32 ``(n_rows, len(wave_cols))``; InputError naming the line and column of the first
    empty, non-numeric, NaN/inf or too large cell."""
    n_cols = len(header)
    wave_cols = list(wave_cols)
    if wave_cols == list(range(n_cols)):
        cells = rows
    elif wave_cols == list(range(wave_cols[0], wave_cols[0] + len(wave_cols))):  # one block: a slice
        cells = [row[wave_cols[0]:wave_cols[0] + len(wave_cols)] for row in rows]
    else:
        cells = [[row[j] for j in wave_cols] for row in rows]
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
            f"{path}: line {lines[i]}, {_col(header, wave_cols[k])}: value {show(cells[i][k].strip())} "
            "is not a finite number; repair or remove that row (waveforms must not hold NaN or inf)"
        )
    too_big = np.abs(X64) > np.finfo(np.float32).max  # finite, but would become inf in float32
    if too_big.any():
        i, k = np.argwhere(too_big)[0]
        raise InputError(
            f"{path}: line {lines[i]}, {_col(header, wave_cols[k])}: value {show(cells[i][k].strip())} "
            "is too large for float32; rescale the waveforms"
        )
    return np.ascontiguousarray(X64, dtype=np.float32)


def _header(path: Path) -> list[str] | None:
    """The header of a file whose header is its line 1, else None (the checked reader explains)."""
    try:
        _, header, header_line, rows = open_csv(path)
    except InputError:
        return None
    rows.close()
    return header if header_line == 1 else None


#: Bytes of CSV text pyarrow parses at a time: the fast reader's memory beyond the array.
FAST_BLOCK_BYTES = 1 << 20  # measured: 4 MiB blocks cost a third more CPU


def _read_fast(path: Path, label_column: str | None, columns: str | None = None) -> _Parsed | None:
    """pyarrow's CSV reader, for files that need no explanation; ``None`` for any other.

    Returns exactly what :func:`_read_checked` returns for the same file, or ``None``
    whenever the file is anything but plain (a header not on line 1, a data-like first
    line, a ragged row, a quoted cell, a cell that is not a finite number, an empty label,
    bad UTF-8, ...): the line-by-line reader then reads it and explains the problem, or
    accepts what this one was too strict for (``1_000``, blank lines between rows).
    Metadata columns are not parsed at all. Waveform cells are parsed as float64 then
    rounded to float32, as the checked reader does, in blocks written straight into the
    final array (sized by counting the file's lines): peak memory is about the final array
    plus one block; for ``.csv.gz``, whose lines are not counted first, about twice the array.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:  # pragma: no cover - pyarrow comes with ray[tune]
        return None
    header = _header(path)
    if header is None or len(header) < 2:
        return None
    try:
        label_j = _pick_label_column(path, header, label_column)
        layout = waveform_columns(path, header, label_j, columns)
    except InputError:
        return None
    wave_cols = layout.waveform
    names, options = arrow_csv_options(header, wave_cols, [label_j], FAST_BLOCK_BYTES)
    gz = is_gzip(path)
    blocks: list[np.ndarray] = []
    X = None if gz else np.empty((count_lines(path), len(wave_cols)), dtype=np.float32)
    label_codes: dict[str, int] = {}
    codes: list[np.ndarray] = []
    n = 0
    try:
        source = pa.input_stream(str(path), compression="gzip" if gz else None)
        with source, pa_csv.open_csv(source, **options) as reader:
            for batch in reader:
                m = batch.num_rows
                if m == 0:
                    continue
                block = np.empty((m, len(wave_cols)), dtype=np.float32) if gz else X[n:n + m]
                if not fill_waveforms(batch, [names[j] for j in wave_cols], block):
                    return None
                if gz:
                    blocks.append(block)
                encoded = batch.column(names[label_j]).dictionary_encode()
                local = np.fromiter((label_codes.setdefault(s, len(label_codes))
                                     for s in encoded.dictionary.to_pylist()), dtype=np.int64)
                codes.append(local[encoded.indices.to_numpy()])
                n += m
    except (pa.ArrowException, OSError, ValueError, EOFError, zlib.error):
        return None
    if n == 0:
        return None
    raw_labels = list(label_codes)
    labels = [lab.strip() for lab in raw_labels]
    # A quote inside a label cell or a NUL: leave such labels to the csv module's reading.
    if any(is_missing(lab) or '"' in lab or "\0" in lab for lab in labels):
        return None
    ids, class_names = map_labels(labels)
    y = ids[np.concatenate(codes)]
    X = np.concatenate(blocks) if gz else X[:n]
    return header[label_j], layout, X, y, class_names


def arrow_csv_options(header: list[str], wave_cols: Sequence[int], text_cols: Sequence[int],
                      block_size: int) -> tuple[list[str], dict]:
    """pyarrow CSV reader options for a plain file: ``(column names, options)``.

    Columns are named ``c<j>`` (the header's own names may repeat); the header line is
    skipped; waveform columns parse as float64 and ``text_cols`` as strings; the others are
    not read. Strict on purpose: no quoting (a quoted cell fails, so quoted files get the csv
    module's rules) and no null cell (an empty or "NaN" cell must fail here and be explained by
    the line-by-line reader)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    names = [f"c{j}" for j in range(len(header))]
    types = {names[j]: pa.float64() for j in wave_cols}
    types.update({names[j]: pa.string() for j in text_cols})
    return names, dict(
        read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=block_size),
        parse_options=pa_csv.ParseOptions(quote_char=False),
        convert_options=pa_csv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                              quoted_strings_can_be_null=False,
                                              include_columns=[names[j] for j in [*wave_cols, *text_cols]]),
    )


def fill_waveforms(batch, wave_names: Sequence[str], block: np.ndarray) -> bool:
    """Copy a pyarrow batch's waveform columns into float32 ``block`` (rows, samples), rounding
    float64 to float32 as the checked reader does; False if a value is not finite there (NaN,
    inf, or beyond float32): the checked reader explains it."""
    with np.errstate(over="ignore"):  # beyond float32: inf, refused below
        for k, name in enumerate(wave_names):
            block[:, k] = batch.column(name).to_numpy()
    return bool(np.isfinite(block).all())


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
                    f"{where}: {show(cell.strip())} is not a number; waveform columns must hold "
                    "numbers (name this column with --label-column if it is the label, or the waveform "
                    "columns with --columns if it is metadata)"
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
    columns: str | None = None,
) -> list[Dataset]:
    """Resolve a dataset argument (or a list of them) and load every dataset.

    Args:
        arg: as :func:`resolve_dataset_paths` (a name, a path, or ``"all"``); a sequence
            of such arguments is also accepted and loaded in order.
        data_dir, label_column, min_rows_per_class, columns: as :func:`resolve_dataset_paths`
            and :func:`load_dataset`.

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
        key = dataset_name(p).lower()
        if key in seen:
            if seen[key] == p:
                raise InputError(f"dataset {dataset_name(p)!r} is given twice ({p}); name each dataset once")
            raise InputError(
                f"two datasets are named {dataset_name(p)!r}: {seen[key]} and {p}; dataset names (file "
                "stems) must be unique, rename one file"
            )
        seen[key] = p
    return [load_dataset(p, label_column=label_column, min_rows_per_class=min_rows_per_class, columns=columns)
            for p in paths]


def file_sha256(path: str | Path) -> str:
    """sha256 of a dataset file's bytes, read in 1 MiB blocks (datasets can be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
