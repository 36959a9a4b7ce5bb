"""``python -m tuning predict MODEL_DIR INPUT.csv --out predictions.csv``: sort new spikes.

INPUT is a waveform CSV as for training, with or without a label column. It is read in
chunks (``--chunk-rows``, 50,000 by default) with the training loader's own checks and
messages, so memory stays bounded whatever the file's size. A plain file (header on line 1,
no quoted cells, every waveform cell a finite number) is parsed by pyarrow's CSV reader one
chunk ahead of the network, in a thread, and each chunk's output rows are formatted by
pyarrow's writer in another, so reading and writing overlap the network's work; any other
file, or a plain-looking one that turns out not to be, is read (again, from the top) by the
csv module, which explains the first problem or accepts what pyarrow was too strict for. Every check that needs no
waveform (the bundle, ``--task``, ``--min-confidence``, the output path, the header and the
waveform length) runs before any prediction; a bad cell further down the file stops the
run when its chunk is read. The output is written to a temporary file and renamed onto
``--out`` only at the end, so ``--out`` is never left half-written or changed by a failed run.

Label column of INPUT: ``--label-column`` if given; else a column named like a label column
(``label``, ``track``, ``class``, ``unit``, ``y``, or the bundle's own label column name);
else the last column when the header has one column more than the waveform length; else
none. Labels are matched to the bundle's class labels by the training loader's own rule
(:func:`tuning.data.labels.canonical_label`: numeric labels by value, ``1.0`` is ``1``).
With labels, accuracy, balanced accuracy and the confusion matrix are printed; a spike
labelled ``unsorted`` (``--min-confidence``) or with a label the bundle does not know counts
as wrong; rows with an empty label are left out of the scores.

Waveform columns of INPUT: the training loader's rule (:func:`tuning.data.columns.waveform_columns`),
with ``--columns`` if given, else the template the bundle was trained with (if any). The
other columns (``spike_time``, ``channel``, ...) are metadata: copied, as text, beside each
prediction so that it can be joined back to its spike.

Output columns: ``row`` (0-based position of the spike among the input's data rows), the
input's metadata columns (a name that clashes with an output column gets ``input_`` in
front), ``label`` (the lab's own label, or ``unsorted``), ``p_<label>`` per class
(calibrated probabilities, summing to 1, rounded to 6 decimals), ``confidence`` (the largest
probability), and ``true_label`` when the input has labels.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuning.data.columns import waveform_columns
from tuning.data.csv_files import count_lines, is_gzip, open_csv
from tuning.data.labels import LABEL_COLUMN_NAMES, all_numeric, canonical_label
from tuning.data.readers import check_row_length, find_column, waveform_array
from tuning.errors import InputError

CHUNK_ROWS = 50_000
ARROW_BLOCK_BYTES = 4 << 20  # CSV text pyarrow parses at a time (about 14,000 spikes of 48 samples)
PROBABILITY_DECIMALS = 6
PROGRESS_MIN_BYTES = 16 << 20  # about 50,000 spikes of 48 samples: a progress bar from here on


@dataclass
class PredictSummary:
    model: object
    task: str
    out: Path
    rows: int = 0
    unsorted: int = 0
    label_column: str | None = None
    metadata_columns: tuple[str, ...] = ()  # copied beside each prediction
    scored: int = 0                     # rows with a label
    confusion: Counter = field(default_factory=Counter)  # (true label, predicted label) -> spikes

    def scores(self) -> dict | None:
        """Accuracy, balanced accuracy (over the true labels present) and the confusion
        matrix as a DataFrame (rows: true label, columns: predicted label), or None."""
        if not self.scored:
            return None
        import pandas as pd

        from tuning.bundle.model_bundle import UNSORTED
        from tuning.metrics import scores_from_confusion, unit_recalls

        classes = self.model.classes(self.task)
        unknown = sorted({t for t, _ in self.confusion} - set(classes))
        predicted = {p for _, p in self.confusion}
        names = [*classes, *unknown, *([UNSORTED] if UNSORTED in predicted and UNSORTED not in classes else [])]
        index = {name: i for i, name in enumerate(names)}
        matrix = np.zeros((len(names), len(names)), dtype=np.int64)
        for (true, pred), count in self.confusion.items():
            matrix[index[true], index[pred]] += count
        scores = scores_from_confusion(matrix)
        true_rows = [n for n in names if matrix[index[n]].sum() > 0 or n in classes]
        pred_cols = [n for n in names if n in classes or n == UNSORTED and UNSORTED in predicted]
        frame = pd.DataFrame(matrix, index=names, columns=names).loc[true_rows, pred_cols]
        frame.index.name, frame.columns.name = "true \\ predicted", None
        known = [index[c] for c in classes]
        units = [u for u in unit_recalls(matrix, names) if u["unit"] in classes]
        for u, k in zip(units, known):  # "never predicted" among the bundle's own units only
            u["never_predicted"] = bool(matrix[:, k].sum() == 0)
        return {"accuracy": scores["accuracy"], "balanced_accuracy": scores["balanced_accuracy"],
                "unknown_labels": unknown, "confusion": frame, "units": units}


def predict_csv(model_dir, input_csv, out, *, task: str | None = None, min_confidence: float | None = None,
                label_column: str | None = None, columns: str | None = None, backend: str = "torch",
                chunk_rows: int = CHUNK_ROWS, progress: bool = True) -> PredictSummary:
    """Predict every spike of ``input_csv`` with the bundle in ``model_dir``; write ``out``.

    ``columns``: the waveform columns' name template (``--columns``); ``None``: the one the
    bundle was trained with, else the rule's own (see the module docstring)."""
    from tuning.bundle.model_bundle import load_model

    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:  # also refuses NaN
        raise InputError(f"--min-confidence must be between 0 and 1, got {min_confidence}")
    if chunk_rows < 1:
        raise InputError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    model = load_model(model_dir, backend=backend)
    task = model.task_name(task)
    out = check_output_path(out, input_csv)
    path, header, header_line, rows = open_csv(input_csv)
    try:
        return _predict_rows(model, task, path, header, header_line, rows, out, label_column, columns,
                             min_confidence, chunk_rows, progress)
    finally:
        rows.close()  # closes the file, also when a check fails before the first chunk


def _predict_rows(model, task, path, header, header_line, rows, out, label_column, columns, min_confidence,
                  chunk_rows, progress) -> PredictSummary:
    from tuning import atomic

    spec = model.metadata["tasks"][model.tasks.index(task)]
    columns = columns if columns is not None else spec.get("columns")
    label_j = find_label_column(path, header, label_column, spec, model.n_channels, columns)
    layout = waveform_columns(path, header, label_j, columns)  # the training loader's rule
    if layout.n_channels != model.n_channels:
        raise InputError(f"{path}: waveforms of {layout.n_channels} channel(s), but the bundle was trained on "
                         f"{model.n_channels}; give it files with the same channels")
    model.check_length(len(layout.waveform), task, source=str(path))

    outputs = ["row", "label", *[f"p_{c}" for c in model.classes(task)], "confidence"]
    if label_j is not None:
        outputs.append("true_label")
    outputs[1:1] = _metadata_names(layout.metadata_names, outputs)
    bar = _progress_bar(path, progress)
    try:
        with atomic.atomic_path(out) as tmp, open(tmp, "wb") as stream:
            summary = None
            if header_line == 1:  # pyarrow's reader, for a plain file; None: the file needs the csv module
                summary = _predict_chunks(model, task, _arrow_chunks(path, header, layout, label_j, chunk_rows),
                                          stream, out, outputs, label_j, min_confidence, bar)
            if summary is None:
                stream.seek(0)
                stream.truncate()
                bar.reset()
                summary = _predict_chunks(model, task, _checked_chunks(path, header, rows, layout, label_j,
                                                                       chunk_rows),
                                          stream, out, outputs, label_j, min_confidence, bar)
            if summary.rows == 0:
                raise InputError(f"{path}: has a header but no data rows; add one row per spike")
    finally:
        bar.close()
    summary.label_column = None if label_j is None else header[label_j]
    summary.metadata_columns = layout.metadata_names
    return summary


@dataclass
class _Chunk:
    """Spikes read from the input: waveforms float32 (rows, columns), the metadata columns'
    cells (one text array per column, stripped) and the label cells (or None)."""

    X: np.ndarray
    metadata: list
    labels: object


class _NotPlain(Exception):
    """The file is not one pyarrow's strict reader takes as it stands: read it with the csv module."""


def _arrow_chunks(path: Path, header: list[str], layout, label_j: int | None, chunk_rows: int):
    """Chunks of a plain file by pyarrow's CSV reader (parsing in C++, without Python's lock,
    so it overlaps the network's work); raises :class:`_NotPlain` at the first block it does
    not take as it stands (a ragged row, a quoted cell, a cell that is not a finite number,
    bad UTF-8 ...), which the csv module's reading then explains or accepts."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    from tuning.data.readers import arrow_csv_options, fill_waveforms

    text_cols = [*layout.metadata, *([] if label_j is None else [label_j])]
    names, options = arrow_csv_options(header, layout.waveform, text_cols, ARROW_BLOCK_BYTES)
    wave_names = [names[j] for j in layout.waveform]
    try:
        source = pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)
        with source, pa_csv.open_csv(source, **options) as reader:
            for batch in reader:
                for start in range(0, batch.num_rows, chunk_rows):
                    part = batch.slice(start, chunk_rows)
                    X = np.empty((part.num_rows, len(wave_names)), dtype=np.float32)
                    if not fill_waveforms(part, wave_names, X):
                        raise _NotPlain
                    text = [pc.utf8_trim_whitespace(part.column(names[j])) for j in text_cols]
                    if any(pc.any(pc.match_substring(cells, '"')).as_py() for cells in text):
                        raise _NotPlain  # the csv module strips the quotes around a cell
                    yield _Chunk(X, text[:len(layout.metadata)], text[-1] if label_j is not None else None)
    except (pa.ArrowException, OSError, ValueError, EOFError, zlib.error):
        raise _NotPlain from None


def _checked_chunks(path: Path, header: list[str], rows, layout, label_j: int | None, chunk_rows: int):
    """Chunks read by the csv module, with the training loader's checks and messages."""
    for lines, chunk in _chunks(rows, chunk_rows):
        for row, line in zip(chunk, lines):
            check_row_length(path, row, line, len(header))
        X = waveform_array(path, header, chunk, lines, layout.waveform)
        metadata = [[row[j].strip() for row in chunk] for j in layout.metadata]
        yield _Chunk(X, metadata, None if label_j is None else [row[label_j] for row in chunk])


def _predict_chunks(model, task, chunks, stream, out, outputs, label_j, min_confidence,
                    bar) -> PredictSummary | None:
    """Predict every chunk and write its rows; reading runs one chunk ahead and writing one
    behind, in threads, beside the network's work. None when ``chunks`` raised
    :class:`_NotPlain` (whatever was written is the caller's to discard)."""
    from tuning.bundle.model_bundle import UNSORTED

    summary = PredictSummary(model, task, out)
    numeric = all_numeric(model.classes(task))
    canonical: dict[str, str] = {}  # label cell -> the bundle's class name it stands for
    stream.write(_csv_line(outputs).encode("utf-8"))
    with _Background(stream.write) as writer:
        try:
            for chunk in _read_ahead(chunks):
                probabilities = model.predict_proba(chunk.X, task)
                labels = model.labels_from_proba(probabilities, task, min_confidence)
                true = None
                if label_j is not None:
                    true = _canonical_labels(chunk.labels, numeric, canonical)
                    _count_pairs(summary.confusion, true, labels)
                    summary.scored += int(np.count_nonzero(true != ""))
                writer.put(_chunk_bytes, summary.rows, chunk.metadata, labels, probabilities, true)
                summary.rows += len(chunk.X)
                summary.unsorted += int(np.sum(labels == UNSORTED)) if min_confidence is not None else 0
                bar.update(len(chunk.X))
        except _NotPlain:
            return None
    return summary


def _canonical_labels(cells, numeric: bool, canonical: dict[str, str]) -> np.ndarray:
    """The class name each label cell stands for (object array; "" for a missing label),
    by the training loader's rule, worked out once per distinct cell."""
    if hasattr(cells, "dictionary_encode"):  # a pyarrow array: its distinct cells, then an index
        encoded = cells.dictionary_encode()
        names = [canonical.setdefault(c, canonical_label(c, numeric)) for c in encoded.dictionary.to_pylist()]
        return np.array(names, dtype=object)[encoded.indices.to_numpy()]
    return np.array([canonical[c] if c in canonical else canonical.setdefault(c, canonical_label(c, numeric))
                     for c in cells], dtype=object)


def _count_pairs(confusion: Counter, true: np.ndarray, predicted: np.ndarray) -> None:
    """Add each (true label, predicted label) pair of the labelled rows to ``confusion``."""
    import pandas as pd

    labelled = true != ""
    pairs = pd.DataFrame({"true": true[labelled], "predicted": predicted[labelled]}).value_counts(sort=False)
    for (t, p), count in pairs.items():
        confusion[(str(t), str(p))] += int(count)


def _read_ahead(chunks, depth: int = 2):
    """Iterate ``chunks`` in a thread, up to ``depth`` items ahead; its exceptions surface here."""
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in chunks:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(("done", done))
        except BaseException as error:  # handed to the consumer
            items.put(("error", error))

    thread = threading.Thread(target=produce, name="predict-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "error":
                raise value
            if kind == "done":
                return
            yield value
    finally:
        stop.set()
        thread.join()
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


class _Background:
    """Runs ``make(*args)`` for each :meth:`put` in one thread, in order, and hands each
    result to ``sink``; the first error is raised at the next put or at exit."""

    def __init__(self, sink, depth: int = 2):
        import queue

        self._sink = sink
        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = None

    def __enter__(self):
        import threading

        self._thread = threading.Thread(target=self._work, name="predict-writer", daemon=True)
        self._thread.start()
        return self

    def _work(self):
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._error is None:
                try:
                    make, args = job
                    self._sink(make(*args))
                except BaseException as error:
                    self._error = error

    def put(self, make, *args):
        if self._error is not None:
            raise self._error
        self._jobs.put((make, args))

    def __exit__(self, kind, value, traceback):
        self._jobs.put(None)
        self._thread.join()
        if kind is None and self._error is not None:
            raise self._error
        return False


def find_label_column(path: Path, header: list[str], label_column: str | None, spec: dict,
                      n_channels: int = 1, columns: str | None = None) -> int | None:
    """Index of INPUT's label column, or None (see the module docstring)."""
    if label_column is not None:
        found = find_column(header, label_column)
        if found is not None:
            return found
        raise InputError(f"{path}: label column {label_column!r} not found; the columns are "
                         f"{', '.join(header[:5])}{', ...' if len(header) > 5 else ''}; "
                         "pass one of them with --label-column, or leave it out for a file without labels")
    names = {*LABEL_COLUMN_NAMES, str(spec.get("label_column", "")).lower()}
    for j, name in enumerate(header):
        if name.lower() in names:
            return j
    last = len(header) - 1
    if len(header) == n_channels * int(spec["input_length"]) + 1 and \
            last not in waveform_columns(path, header, None, columns).waveform:
        return last
    return None


def _metadata_names(names: tuple[str, ...], outputs: list[str]) -> list[str]:
    """The metadata columns' names in the output: ``input_`` in front of one that an output
    column (or an earlier metadata column) already has."""
    taken, result = set(outputs), []
    for name in names:
        while name in taken:
            name = f"input_{name}"
        taken.add(name)
        result.append(name)
    return result


def check_output_path(out, input_csv) -> Path:
    """``out`` as a Path, once it is known to be writable: an existing folder to write in,
    not a folder itself, not the input. Tried with a temporary file, before any prediction."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder; give a file name such as {out / 'predictions.csv'}")
    folder = out.parent
    if not folder.is_dir():
        raise InputError(f"--out {out}: the folder {folder} does not exist (or is not a folder); create it first")
    if Path(input_csv).exists() and out.exists() and out.resolve() == Path(input_csv).resolve():
        raise InputError(f"--out {out}: is the input file; write the predictions to another file")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise InputError(f"--out {out}: cannot write in {folder} ({error.strerror}); "
                         "choose another output path") from None
    return out


def _chunks(rows, size: int):
    lines, chunk = [], []
    for line, row in rows:
        lines.append(line)
        chunk.append(row)
        if len(chunk) == size:
            yield lines, chunk
            lines, chunk = [], []
    if chunk:
        yield lines, chunk


def _csv_line(cells) -> str:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _chunk_bytes(first_row: int, metadata: list, labels, probabilities, true) -> bytes:
    """CSV rows of one chunk (no header), formatted by pyarrow's writer (C++, without Python's
    lock). Probabilities are rounded to 6 decimals; cells are quoted only when a chunk's text
    needs it (a comma, quote or line break in it)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    probabilities = np.round(probabilities, PROBABILITY_DECIMALS)
    columns = [pa.array(np.arange(first_row, first_row + len(labels)))]
    columns += [cells if isinstance(cells, pa.Array) else pa.array(cells, pa.string()) for cells in metadata]
    columns.append(pa.array(labels, pa.string()))
    columns += [pa.array(probabilities[:, k]) for k in range(probabilities.shape[1])]
    columns.append(pa.array(probabilities.max(axis=1)))
    if true is not None:
        columns.append(pa.array(true, pa.string()))
    table = pa.Table.from_arrays(columns, names=[f"c{k}" for k in range(len(columns))])
    quote = any(pc.any(pc.match_substring_regex(column, r'[,"\r\n]')).as_py()
                for column in columns if pa.types.is_string(column.type))
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False,
                                                      quoting_style="needed" if quote else "none"))
    return sink.getvalue().to_pybytes()


def _progress_bar(path: Path, enabled: bool):
    from tqdm import tqdm

    size = path.stat().st_size
    show = enabled and size >= PROGRESS_MIN_BYTES
    # minus the header; blank lines overcount; a .gz file's lines are not counted (no total)
    total = count_lines(path) - 1 if show and not is_gzip(path) else None
    return tqdm(total=total, desc="predict", unit="spike", unit_scale=True, disable=not show)


def print_summary(summary: PredictSummary, min_confidence: float | None) -> None:
    model, task = summary.model, summary.task
    print(f"Predicted {summary.rows} spikes with {model.metadata['approach']} ({task}) -> {summary.out}")
    if summary.metadata_columns:
        print(f"  metadata columns (not waveform samples), copied beside each prediction: "
              f"{', '.join(summary.metadata_columns)}")
    if min_confidence is not None:
        print(f"  unsorted (confidence below {min_confidence:g}): {summary.unsorted} "
              f"({100 * summary.unsorted / summary.rows:.1f}%)")
    found = summary.scores()
    if found is None:
        return
    print(f"Against the labels in column {summary.label_column!r} ({summary.scored} spikes):")
    print(f"  accuracy {100 * found['accuracy']:.1f}%  balanced accuracy {100 * found['balanced_accuracy']:.1f}%")
    from tuning.metrics import unit_recall_line, weak_unit_lines

    print(f"  {unit_recall_line(found['units'])}")
    for line in weak_unit_lines(found["units"], model.metadata.get("training", {}).get("metric", "accuracy")):
        print(f"  warning: {line}")
    recorded = model.metadata["tasks"][model.tasks.index(task)]["scores"]
    full, one = recorded.get("full_split", {}), recorded.get("one_split", {})
    if "accuracy_mean" in full:
        interval = (f" [{100 * full['accuracy_ci95_low']:.1f}, {100 * full['accuracy_ci95_high']:.1f}]"
                    if "accuracy_ci95_low" in full else "")
        print(f"  the bundle's recorded accuracy: full split {100 * full['accuracy_mean']:.1f}%{interval}"
              + (f", one split {100 * one['accuracy']:.1f}%" if "accuracy" in one else ""))
    if found["unknown_labels"]:
        print(f"  labels the bundle does not know (counted as wrong): {', '.join(found['unknown_labels'])}")
    print("Confusion matrix (rows: true label, columns: predicted label):")
    print(found["confusion"].to_string())


def run(args) -> int:
    summary = predict_csv(args.model_dir, args.input, args.out, task=args.task,
                          min_confidence=args.min_confidence, label_column=args.label_column,
                          columns=args.columns, backend=args.backend, chunk_rows=args.chunk_rows, progress=not args.no_progress)
    print_summary(summary, args.min_confidence)
    return 0
