"""Waveform columns by rule, metadata columns kept beside predictions (issue 27, items 2 and 3),
and one label canonicalisation for training and predict (issue 25).

Bundles are trained in this process with the export's final-model recipe (conftest's
``build_bundle``); the commands run through ``tuning.cli.main`` as a user types them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_LENGTH, _write_csv, build_bundle, make_waveforms
from tuning.bundle.predict import predict_csv
from tuning.cli import main
from tuning.data.columns import waveform_columns
from tuning.data.labels import map_labels
from tuning.data.readers import load_dataset
from tuning.errors import InputError
from tuning.settings import TuneSettings, load_for_tuning

FFN = {"family": "ffn", "ffn_n_layers": 1, "ffn_units_l0": 8, "normalisation": "global", "lr": 0.01,
       "batch_size": 32}
SAMPLES = [f"s{t}" for t in range(TINY_LENGTH)]


def sorter_export(path, header_of, n_classes=2, seed=4, labels=None):
    """A CSV as a sorter export writes one: ``header_of(samples)`` gives the header, with
    ``spike_time``, ``channel``, ``amplitude`` and ``label`` placed around the samples."""
    X, y = make_waveforms(n_classes, 30, seed=seed)
    rows = []
    for i, (x, c) in enumerate(zip(X, y)):
        cells = {"spike_time": f"{1000 + 37 * i}", "channel": str(3 + c), "amplitude": f"{x.min():.2f}",
                 "label": str(c) if labels is None else labels[i % len(labels)]}
        cells.update({name: f"{v:.2f}" for name, v in zip(SAMPLES, x)})
        rows.append(cells)
    header = header_of(SAMPLES)
    _write_csv(path, header, ([row.get(name, "") for name in header] for row in rows))
    return path, X


def one_error_line(capsys, argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


# ------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize("header, label, waveform, metadata, pattern", [
    (["spike_time", "s1", "s0", "s2", "amplitude", "unit"], 5, ["s0", "s1", "s2"], ["spike_time", "amplitude"], "s{t}"),
    (["t", "wave_1", "wave_2", "y"], 3, ["wave_1", "wave_2"], ["t"], "wave_{t}"),
    (["0", "1", "2", "label"], 3, ["0", "1", "2"], [], "{t}"),                     # pandas' own header
    (["a", "b", "c", "label"], 3, ["a", "b", "c"], [], None),                      # no pattern: as before
    (["Unnamed: 0", "ch1_s0", "ch0_s0", "ch1_s1", "ch0_s1", "unit"], 5,
     ["ch0_s0", "ch0_s1", "ch1_s0", "ch1_s1"], ["Unnamed: 0"], "ch{c}_s{t}"),  # channel-major
])
def test_waveform_columns_by_name(header, label, waveform, metadata, pattern):
    layout = waveform_columns("f.csv", header, label)
    assert list(layout.waveform_names) == waveform and list(layout.metadata_names) == metadata
    assert layout.pattern == pattern and layout.n_channels == (2 if pattern == "ch{c}_s{t}" else 1)


def test_columns_template_names_other_columns():
    header = ["V(2)", "V(1)", "note", "unit"]
    layout = waveform_columns("f.csv", header, 3, "v({t})")  # literal brackets, any case
    assert layout.waveform_names == ("V(1)", "V(2)") and layout.metadata_names == ("note",)
    layout = waveform_columns("f.csv", ["e1_t0", "e0_t0", "e1_t1", "e0_t1"], None, "e{c}_t{t}")
    assert layout.n_channels == 2 and layout.waveform_names == ("e0_t0", "e0_t1", "e1_t0", "e1_t1")


@pytest.mark.parametrize("header, pattern, message", [
    (["s0", "spike_time", "s1", "label"], None, "'spike_time' (field 2) sits between the waveform columns 's0' and 's1'"),
    (["s0", "s2", "label"], None, "sample 1 has no column"),
    (["s0", "S0", "label"], None, "'s0' and 'S0' are both sample 0"),
    (["a", "b", "label"], "wave_{t}", "no column matches --columns 'wave_{t}'"),
])
def test_rule_errors_name_the_file_and_the_columns(header, pattern, message):
    with pytest.raises(InputError, match="f.csv") as info:
        waveform_columns("f.csv", header, len(header) - 1, pattern)
    assert message in str(info.value)


@pytest.mark.parametrize("pattern", ["wave", "w{c}", "w{t}{t}", "w{x}{t}", "w{t}}"])
def test_malformed_templates_are_refused(pattern):
    with pytest.raises(InputError, match="give a column-name template with {t} once"):
        waveform_columns("f.csv", ["w1", "label"], 1, pattern)


# ------------------------------------------------------- a sorter export: train, predict


def test_metadata_columns_are_skipped_in_training_and_kept_beside_predictions(tmp_path, capsys):
    path, X = sorter_export(tmp_path / "data" / "Sorted.csv",
                            lambda s: ["spike_time", "channel", *s, "amplitude", "label"])
    groups = load_for_tuning("ffn", str(path), TuneSettings(storage=str(tmp_path / "rr")))
    printed = capsys.readouterr().out
    assert printed.count("metadata columns spike_time, channel, amplitude") == 1  # named once
    (dataset,), = groups
    assert dataset.length == 48 and dataset.metadata_columns == ("spike_time", "channel", "amplitude")
    assert np.array_equal(dataset.X, X.round(2).astype(np.float32))  # the samples, and nothing else

    folder = tmp_path / "Model" / "Sorted"
    build_bundle(folder, "ffn", FFN, [dataset], max_epochs=2)
    spec = json.loads((folder / "bundle.json").read_text())
    assert spec["input_length"] == 48 and spec["tasks"][0]["input_length"] == 48

    out = tmp_path / "predictions.csv"
    assert main(["predict", str(folder), str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    assert "copied beside each prediction: spike_time, channel, amplitude" in capsys.readouterr().out
    written = pd.read_csv(out, dtype=str)
    given = pd.read_csv(path, dtype=str)
    assert list(written.columns) == ["row", "spike_time", "channel", "amplitude", "label", "p_0", "p_1",
                                     "confidence", "true_label"]
    for name in ("spike_time", "channel", "amplitude"):  # joined back to its spike, cell for cell
        assert written[name].tolist() == given[name].tolist()
    assert written["true_label"].tolist() == given["label"].tolist()


def test_metadata_named_like_an_output_column_and_a_template_the_bundle_keeps(tmp_path, capsys):
    """A file that names its samples otherwise: --columns at training; the bundle keeps the
    template, so predict reads the same file without being told again."""
    X, y = make_waveforms(2, 30, seed=6)
    header = ["confidence", *[f"V({t})" for t in range(1, TINY_LENGTH + 1)], "unit"]
    path = _write_csv(tmp_path / "Lab.csv", header,
                      ([f"{0.5 + i}", *[f"{v:.2f}" for v in x], str(c)] for i, (x, c) in enumerate(zip(X, y))))
    # No numbered pattern ("V(1)" ends in a bracket): as before the rule, every column is a sample.
    assert load_dataset(path).length == TINY_LENGTH + 1
    dataset = load_dataset(path, columns="V({t})")
    assert dataset.length == TINY_LENGTH and dataset.columns == "V({t})"
    assert dataset.metadata_columns == ("confidence",)
    folder = tmp_path / "Model" / "Lab"
    build_bundle(folder, "ffn", FFN, [dataset], max_epochs=1)
    out = tmp_path / "p.csv"
    assert main(["predict", str(folder), str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    written = pd.read_csv(out, dtype=str)
    assert list(written.columns)[:3] == ["row", "input_confidence", "label"]
    assert written["input_confidence"].tolist() == [f"{0.5 + i}" for i in range(len(y))]


def test_bad_column_layouts_exit_2_with_one_line(tmp_path, capsys):
    storage = ["--storage", tmp_path / "rr"]
    between, _ = sorter_export(tmp_path / "Between.csv", lambda s: [*s[:24], "spike_time", *s[24:], "label"])
    err = one_error_line(capsys, ["tune", "ffn", between, *storage])
    assert str(between) in err and "'spike_time' (field 25) sits between the waveform columns 's23' and 's24'" in err
    holed, _ = sorter_export(tmp_path / "Holed.csv", lambda s: [*s[:12], *s[13:], "label"])
    err = one_error_line(capsys, ["tune", "ffn", holed, *storage])
    assert "sample 12 has no column" in err
    plain, _ = sorter_export(tmp_path / "Plain.csv", lambda s: [*s, "label"])
    err = one_error_line(capsys, ["tune", "ffn", plain, "--columns", "wave_{t}", *storage])
    assert str(plain) in err and "no column matches --columns 'wave_{t}'" in err
    err = one_error_line(capsys, ["tune", "ffn", plain, "--columns", "wave_", *storage])
    assert "--columns 'wave_'" in err
    assert not (tmp_path / "rr").exists()  # nothing started


def test_predict_refuses_a_bad_layout_before_writing(cnn_bundle, tmp_path, capsys):
    folder, _, dataset = cnn_bundle
    header = ["Track", *SAMPLES[:10], "spike_time", *SAMPLES[10:]]
    path = _write_csv(tmp_path / "bad.csv", header,
                      ([dataset.class_names[c], *[f"{v:.2f}" for v in x[:10]], "17", *[f"{v:.2f}" for v in x[10:]]]
                       for x, c in zip(dataset.X, dataset.y)))
    out = tmp_path / "p.csv"
    err = one_error_line(capsys, ["predict", folder, path, "--out", out])
    assert str(path) in err and "'spike_time'" in err and "between" in err
    assert not out.exists()


# ------------------------------------------- issue 25: one canonicalisation of labels


@pytest.mark.parametrize("spellings, classes", [
    (["1", "1.0", " 2 ", "02", "2e0", "+1"], ("1", "2")),          # numbers: by value
    (["1", "1.0", " 2 ", "unit_a"], ("1", "1.0", "2", "unit_a")),  # one string: all strings
])
def test_training_and_predict_read_the_same_labels_alike(tmp_path, spellings, classes):
    """The same odd labels through training's mapping (the loader) and predict's (against a
    bundle trained on them): every row gets the same class name; NaN-ish labels are missing
    to both (training refuses them, predict leaves them out of its scores)."""
    X, _ = make_waveforms(2, 30, seed=8)  # the waveforms do not matter here, the labels do
    labels = [spellings[i % len(spellings)] for i in range(len(X))]
    path = _write_csv(tmp_path / "Odd.csv", [*SAMPLES, "label"],
                      ([*[f"{v:.2f}" for v in x], lab] for x, lab in zip(X, labels)))
    dataset = load_dataset(path, min_rows_per_class=2)
    assert dataset.class_names == classes
    assert map_labels(labels)[1] == classes
    folder = tmp_path / "Model" / "Odd"
    build_bundle(folder, "ffn", FFN, [dataset], max_epochs=1)

    missing = ["nan", "NaN", "", " nan "]
    with_missing = _write_csv(tmp_path / "WithMissing.csv", [*SAMPLES, "label"],
                              ([*[f"{v:.2f}" for v in x], lab] for x, lab in zip(np.vstack([X, X[:4]]),
                                                                                 labels + missing)))
    with pytest.raises(InputError, match="the label column 'label' is empty"):
        load_dataset(with_missing, min_rows_per_class=2)
    summary = predict_csv(folder, with_missing, tmp_path / "p.csv", progress=False)
    written = pd.read_csv(tmp_path / "p.csv", dtype=str, keep_default_na=False)
    trained_as = [dataset.class_names[k] for k in dataset.y]
    assert written["true_label"].tolist() == trained_as + [""] * len(missing)
    assert summary.scored == len(X) and not summary.scores()["unknown_labels"]


def test_resume_needs_the_searchs_own_columns(tmp_path):
    from tuning.search.driver import settings_for_resume
    from tuning.search.run_record import write_run_record

    path, _ = sorter_export(tmp_path / "Sorted.csv", lambda s: ["spike_time", *s, "label"])
    settings = TuneSettings(storage=str(tmp_path / "rr"))
    write_run_record(tmp_path, "ffn", [load_dataset(path, columns="s{t}")], settings)
    with pytest.raises(InputError, match="read its waveform columns with --columns 's{t}', this command with no "):
        settings_for_resume(tmp_path, [load_dataset(path)], settings)
    assert settings_for_resume(tmp_path, [load_dataset(path, columns="s{t}")], settings).seed == settings.seed
