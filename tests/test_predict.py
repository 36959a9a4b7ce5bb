"""``python -m tuning predict`` (issue 11): output, labels, --min-confidence, MTL --task,
bad input. The command runs in this process (``tuning.cli.main``) on the session's bundles
(conftest.py); one test runs ``scripts/predict.sh`` as a user would."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_LENGTH, _write_csv
from tuning.bundle import model_bundle
from tuning.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def unlabelled(dataset, path: Path) -> Path:
    return _write_csv(path, [f"s{i}" for i in range(dataset.length)], ([f"{v:.2f}" for v in x] for x in dataset.X))


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"label": str, "true_label": str}, keep_default_na=False)


def printed(name: str, out: str) -> float:
    return float(re.search(rf"\b{name} ([0-9.]+)%", out).group(1)) / 100


def test_predict_with_labels_writes_one_row_per_spike_and_scores_them(cnn_bundle, tmp_path, capsys):
    folder, _, dataset = cnn_bundle
    out_path = tmp_path / "predictions.csv"
    code, out, err = run(["predict", folder, dataset.path, "--out", out_path], capsys)
    assert code == 0, err
    frame = read(out_path)
    assert list(frame.columns) == ["row", "label", "p_unit_a", "p_unit_b", "p_unit_c", "confidence", "true_label"]
    assert frame["row"].tolist() == list(range(dataset.n_rows))
    model = model_bundle.load_model(folder)
    assert frame["label"].tolist() == model.predict(dataset.X).tolist()
    probabilities = frame[["p_unit_a", "p_unit_b", "p_unit_c"]].to_numpy()
    assert np.allclose(probabilities, model.predict_proba(dataset.X), atol=1e-5)
    assert np.allclose(frame["confidence"], probabilities.max(1), atol=1e-5)
    assert frame["true_label"].tolist() == [dataset.class_names[k] for k in dataset.y]
    accuracy = np.mean(frame["label"] == frame["true_label"])
    assert printed("accuracy", out) == pytest.approx(accuracy, abs=0.0005)
    assert "balanced accuracy" in out and "Confusion matrix" in out
    assert "the bundle's recorded accuracy: full split 90.0% [88.0, 92.0], one split 90.0%" in out
    for name in dataset.class_names:
        assert name in out.split("Confusion matrix", 1)[1]


def test_predict_without_labels_and_in_chunks_matches(cnn_bundle, tmp_path, capsys):
    folder, _, dataset = cnn_bundle
    source = unlabelled(dataset, tmp_path / "new_spikes.csv")
    whole, chunked, onnx = tmp_path / "whole.csv", tmp_path / "chunked.csv", tmp_path / "onnx.csv"
    assert run(["predict", folder, source, "--out", whole], capsys)[0] == 0
    code, out, _ = run(["predict", folder, source, "--out", chunked, "--chunk-rows", "7"], capsys)
    assert code == 0 and "accuracy" not in out
    frame = read(whole)
    in_chunks = read(chunked)  # the same up to float rounding (batch size changes the kernels' sums)
    assert in_chunks["label"].tolist() == frame["label"].tolist()
    assert np.allclose(in_chunks.drop(columns="label").to_numpy(), frame.drop(columns="label").to_numpy(), atol=1e-5)
    assert "true_label" not in frame.columns and len(frame) == dataset.n_rows
    assert run(["predict", folder, source, "--out", onnx, "--backend", "onnx"], capsys)[0] == 0
    assert read(onnx)["label"].tolist() == frame["label"].tolist()


def test_min_confidence_at_0_and_1(cnn_bundle, tmp_path, capsys):
    folder, _, dataset = cnn_bundle
    at_zero, at_one = tmp_path / "zero.csv", tmp_path / "one.csv"
    code, out, _ = run(["predict", folder, dataset.path, "--out", at_zero, "--min-confidence", "0"], capsys)
    assert code == 0 and "unsorted (confidence below 0): 0 (0.0%)" in out
    assert "unsorted" not in set(read(at_zero)["label"])
    code, out, _ = run(["predict", folder, dataset.path, "--out", at_one, "--min-confidence", "1"], capsys)
    assert code == 0
    sure = model_bundle.load_model(folder).predict_proba(dataset.X).max(1) >= 1.0
    labels = read(at_one)["label"]
    assert (labels == "unsorted").tolist() == (~sure).tolist()
    assert f"unsorted (confidence below 1): {int((~sure).sum())} " in out
    # Unsorted spikes count as wrong: the accuracy is that of the sure spikes' share.
    expected = np.mean((labels == read(at_zero)["true_label"]).to_numpy())
    assert printed("accuracy", out) == pytest.approx(expected, abs=0.0005)


def test_numeric_labels_match_by_value_and_unknown_labels_count_as_wrong(mtl_bundle, tmp_path, capsys):
    folder, _, (_, t5) = mtl_bundle
    labels = [f"{int(t5.class_names[k])}.0" for k in t5.y]  # "3.0" is class "3"
    labels[0] = "9"  # a unit the model never saw
    source = _write_csv(tmp_path / "t5.csv", [f"s{i}" for i in range(40)] + ["unit"],
                        ([f"{v:.2f}" for v in x] + [lab] for x, lab in zip(t5.X, labels)))
    out_path = tmp_path / "p.csv"
    code, out, err = run(["predict", folder, source, "--out", out_path, "--task", "T5"], capsys)
    assert code == 0, err
    frame = read(out_path)
    assert list(frame.columns) == ["row", "label", "p_3", "p_4", "confidence", "true_label"]
    assert frame["true_label"].iloc[0] == "9" and set(frame["true_label"].iloc[1:]) == {"3", "4"}
    assert "labels the bundle does not know (counted as wrong): 9" in out
    assert printed("accuracy", out) == pytest.approx(np.mean(frame["label"] == frame["true_label"]), abs=0.0005)


def test_mtl_bundle_predicts_per_task(mtl_bundle, tmp_path, capsys):
    folder, final, (t2, t5) = mtl_bundle
    for index, dataset in enumerate((t2, t5)):
        out_path = tmp_path / f"{dataset.name}.csv"
        code, out, err = run(["predict", folder, dataset.path, "--out", out_path, "--task", dataset.name], capsys)
        assert code == 0, err
        expected = np.array(dataset.class_names)[final.fit.predict(dataset.X, index)]
        assert read(out_path)["label"].tolist() == expected.tolist()
        assert f"({dataset.name})" in out


# --------------------------------------------------------------------------------------
# Bad input: one error line, exit 2, --out untouched
# --------------------------------------------------------------------------------------


@pytest.fixture
def sentinel(tmp_path) -> Path:
    """An existing --out file that a failed run must leave as it is."""
    path = tmp_path / "out" / "predictions.csv"
    path.parent.mkdir()
    path.write_text("previous predictions\n")
    return path


def assert_refused(argv, capsys, sentinel: Path, *fragments: str) -> str:
    code, out, err = run(argv, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert sentinel.read_text() == "previous predictions\n"
    assert sorted(p.name for p in sentinel.parent.iterdir()) == ["predictions.csv"]  # no temporary left
    return lines[0]


def _damaged_copy(folder: Path, tmp_path: Path, how: str) -> Path:
    import shutil

    target = tmp_path / "damaged"
    shutil.copytree(folder, target)
    meta = target / "bundle.json"
    if how == "corrupt":
        meta.write_text("{ not json")
    elif how == "version":
        meta.write_text(meta.read_text().replace('"format_version": 1', '"format_version": 2'))
    return target


@pytest.mark.parametrize("how, fragments", [
    ("missing", ["no such model bundle"]),
    ("corrupt", ["corrupt bundle metadata"]),
    ("version", ["bundle format version 2", "reads version 1", "export the experiment again"]),
])
def test_bad_bundle(cnn_bundle, tmp_path, capsys, sentinel, how, fragments):
    folder, _, dataset = cnn_bundle
    target = tmp_path / "nowhere" if how == "missing" else _damaged_copy(folder, tmp_path, how)
    assert_refused(["predict", target, dataset.path, "--out", sentinel], capsys, sentinel, *fragments)


def test_waveforms_of_another_length(cnn_bundle, tmp_path, capsys, sentinel):
    folder, _, dataset = cnn_bundle
    short = _write_csv(tmp_path / "short.csv", [f"s{i}" for i in range(40)], ([f"{v:.2f}" for v in x[:40]] for x in dataset.X))
    assert_refused(["predict", folder, short, "--out", sentinel], capsys, sentinel,
                   "short.csv", "40 samples", "takes 48")


def test_mtl_needs_a_known_task(mtl_bundle, capsys, sentinel):
    folder, _, (t2, _) = mtl_bundle
    assert_refused(["predict", folder, t2.path, "--out", sentinel], capsys, sentinel, "--task")
    assert_refused(["predict", folder, t2.path, "--out", sentinel, "--task", "T4"], capsys, sentinel,
                   "unknown task 'T4'", "T2, T5")


@pytest.mark.parametrize("cell, fragments", [
    ("abc", ["line 150", "column 's7' (field 8)", "'abc' is not a number"]),
    ("nan", ["line 150", "column 's7' (field 8)", "is not a finite number"]),
    ("", ["line 150", "the cell is empty"]),
])
def test_bad_cells_late_in_the_file(cnn_bundle, tmp_path, capsys, sentinel, cell, fragments):
    folder, _, dataset = cnn_bundle
    rows = [[f"{v:.2f}" for v in x] for x in dataset.X]
    rows[148][7] = cell  # line 150: header is line 1; earlier chunks have been predicted by then
    source = _write_csv(tmp_path / "bad.csv", [f"s{i}" for i in range(TINY_LENGTH)], rows)
    assert_refused(["predict", folder, source, "--out", sentinel, "--chunk-rows", "50"], capsys, sentinel,
                   "bad.csv", *fragments)


def test_same_messages_as_the_training_loader(cnn_bundle, tmp_path, capsys, sentinel):
    from tuning.data.readers import load_dataset
    from tuning.errors import InputError

    folder, _, dataset = cnn_bundle
    rows = [[f"{v:.2f}" for v in x] + ["unit_a"] for x in dataset.X[:20]]
    rows[4][3] = "inf"
    source = _write_csv(tmp_path / "bad.csv", [f"s{i}" for i in range(TINY_LENGTH)] + ["label"], rows)
    with pytest.raises(InputError) as training:
        load_dataset(source, min_rows_per_class=1)
    line = assert_refused(["predict", folder, source, "--out", sentinel], capsys, sentinel)
    assert line == f"error: {training.value}"


def test_unwritable_output_paths(cnn_bundle, tmp_path, capsys, sentinel):
    folder, _, dataset = cnn_bundle
    assert_refused(["predict", folder, dataset.path, "--out", tmp_path / "no" / "such" / "p.csv"], capsys, sentinel,
                   "does not exist")
    assert_refused(["predict", folder, dataset.path, "--out", sentinel.parent], capsys, sentinel, "is a folder")
    assert_refused(["predict", folder, dataset.path, "--out", sentinel / "p.csv"], capsys, sentinel,
                   "does not exist (or is not a folder)")
    assert_refused(["predict", folder, dataset.path, "--out", sentinel, "--min-confidence", "1.5"], capsys,
                   sentinel, "--min-confidence must be between 0 and 1")


@pytest.mark.subprocess
def test_predict_script_from_another_folder(cnn_bundle, tmp_path):
    folder, _, dataset = cnn_bundle
    (tmp_path / "work").mkdir()
    result = subprocess.run([str(ROOT / "scripts" / "predict.sh"), str(folder), str(dataset.path),
                             "--out", "p.csv"], cwd=tmp_path / "work", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Predicted 180 spikes" in result.stdout
    with open(tmp_path / "work" / "p.csv", newline="") as stream:
        assert sum(1 for _ in csv.reader(stream)) == 181


def test_multichannel_bundle_reads_channel_columns_in_any_order(tmp_path, capsys, sentinel):
    """A 2-channel dataset whose ch{c}_s{t} columns are written sample-major: the loader and
    predict both put them channel-major; the ONNX twin agrees; a 1-channel file is refused."""
    from conftest import BUNDLE_CNN_CONFIG, build_bundle, make_waveforms

    from tuning.data.readers import load_dataset

    X0, y = make_waveforms(2, 40, length=24, seed=7)
    X1 = 0.5 * X0 + np.random.default_rng(8).normal(0, 2.0, X0.shape)
    names = [f"ch{c}_s{t}" for t in range(24) for c in range(2)]  # ch0_s0, ch1_s0, ch0_s1, ...
    rows = ([f"{v:.2f}" for t in range(24) for v in (a[t], b[t])] + [str(int(c))] for a, b, c in zip(X0, X1, y))
    source = _write_csv(tmp_path / "M2.csv", names + ["label"], rows)
    dataset = load_dataset(source)
    assert dataset.n_channels == 2 and dataset.length == 24
    folder = tmp_path / "Model" / "M2"
    final = build_bundle(folder, "cnn", BUNDLE_CNN_CONFIG, [dataset], max_epochs=3)
    model = model_bundle.load_model(folder)
    assert model.n_channels == 2 and model.metadata["tasks"][0]["n_channels"] == 2
    expected = np.array(dataset.class_names)[final.fit.predict(dataset.X)]
    for backend in ("torch", "onnx"):
        out_path = tmp_path / f"{backend}.csv"
        code, out, err = run(["predict", folder, source, "--out", out_path, "--backend", backend], capsys)
        assert code == 0, err
        assert read(out_path)["label"].tolist() == expected.tolist()
    one_channel = _write_csv(tmp_path / "one.csv", [f"s{t}" for t in range(48)],
                             ([f"{v:.2f}" for v in x] for x in dataset.X))
    assert_refused(["predict", folder, one_channel, "--out", sentinel], capsys, sentinel,
                   "1 channel(s)", "trained on 2")
