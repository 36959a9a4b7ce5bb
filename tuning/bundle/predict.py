"""``python -m tuning predict MODEL_DIR INPUT.csv --out predictions.csv``: sort new spikes.

INPUT is a waveform CSV as for training, with or without a label column. It is read in
chunks (``--chunk-rows``, 50,000 by default) with the training loader's own checks and
messages, so memory stays bounded whatever the file's size. Every check that needs no
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
(calibrated probabilities, summing to 1), ``confidence`` (the largest probability), and
``true_label`` when the input has labels.
"""

from __future__ import annotations

import os
import tempfile
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
    path, header, _, rows = open_csv(input_csv)
    try:
        return _predict_rows(model, task, path, header, rows, out, label_column, columns, min_confidence,
                             chunk_rows, progress)
    finally:
        rows.close()  # closes the file, also when a check fails before the first chunk


def _predict_rows(model, task, path, header, rows, out, label_column, columns, min_confidence, chunk_rows,
                  progress) -> PredictSummary:
    from tuning import atomic

    spec = model.metadata["tasks"][model.tasks.index(task)]
    columns = columns if columns is not None else spec.get("columns")
    label_j = find_label_column(path, header, label_column, spec, model.n_channels, columns)
    layout = waveform_columns(path, header, label_j, columns)  # the training loader's rule
    if layout.n_channels != model.n_channels:
        raise InputError(f"{path}: waveforms of {layout.n_channels} channel(s), but the bundle was trained on "
                         f"{model.n_channels}; give it files with the same channels")
    model.check_length(len(layout.waveform), task, source=str(path))

    summary = PredictSummary(model, task, out, label_column=None if label_j is None else header[label_j],
                             metadata_columns=layout.metadata_names)
    classes = model.classes(task)
    numeric = all_numeric(classes)
    outputs = ["row", "label", *[f"p_{c}" for c in classes], "confidence"]
    if label_j is not None:
        outputs.append("true_label")
    outputs[1:1] = _metadata_names(layout.metadata_names, outputs)
    bar = _progress_bar(path, progress)
    try:
        with atomic.atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
            stream.write(_csv_line(outputs))
            for lines, chunk in _chunks(rows, chunk_rows):
                for row, line in zip(chunk, lines):
                    check_row_length(path, row, line, len(header))
                X = waveform_array(path, header, chunk, lines, layout.waveform)
                probabilities = model.predict_proba(X, task)
                labels = model.labels_from_proba(probabilities, task, min_confidence)
                true = None
                if label_j is not None:
                    true = [canonical_label(row[label_j], numeric) for row in chunk]
                    summary.confusion.update((t, p) for t, p in zip(true, labels) if t)
                    summary.scored += sum(1 for t in true if t)
                metadata = [[row[j].strip() for j in layout.metadata] for row in chunk]
                _write_chunk(stream, summary.rows, metadata, labels, probabilities, true)
                summary.rows += len(chunk)
                summary.unsorted += int(np.sum(labels == "unsorted")) if min_confidence is not None else 0
                bar.update(len(chunk))
            if summary.rows == 0:
                raise InputError(f"{path}: has a header but no data rows; add one row per spike")
    finally:
        bar.close()
    return summary


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


def _write_chunk(stream, first_row: int, metadata: list[list[str]], labels, probabilities, true) -> None:
    import pandas as pd

    frame = pd.DataFrame(probabilities)
    frame.insert(0, "label", labels)
    for k in range(len(metadata[0]) if metadata else 0):  # positional names: the header may repeat one
        frame.insert(k, f"metadata {k}", [cells[k] for cells in metadata])
    frame.insert(0, "row", np.arange(first_row, first_row + len(labels)))
    frame["confidence"] = probabilities.max(axis=1)
    if true is not None:
        frame["true_label"] = true
    frame.to_csv(stream, header=False, index=False, float_format="%.6g", lineterminator="\n")


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
