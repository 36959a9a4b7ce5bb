"""The sorting speed of a bundle (issue 28): the inference batch, predict's pyarrow reading and
writing, and the speed a bundle records. Fast tier: no Ray, no subprocess."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import _write_csv
from tuning.bundle import model_bundle, predict
from models.flops import flops_per_spike
from tuning.bundle.speed import speed_line
from tuning.errors import InputError


def many_spikes(dataset, n: int) -> np.ndarray:
    """``n`` noisy copies of the dataset's waveforms: several inference batches' worth."""
    rng = np.random.default_rng(0)
    rows = dataset.X[rng.integers(0, dataset.n_rows, n)]
    return (rows + rng.normal(0, 0.05 * dataset.X.std(), rows.shape)).astype(np.float32)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_inference_batches_give_the_labels_of_one_whole_batch(cnn_bundle, backend, monkeypatch):
    folder, _, dataset = cnn_bundle
    X = many_spikes(dataset, 2 * model_bundle.INFERENCE_BATCH[backend] + 100)  # two batches and a part
    model = model_bundle.load_model(folder, backend=backend)
    batched = model.logits(X)
    monkeypatch.setattr(model_bundle, "INFERENCE_BATCH", {backend: len(X)})  # the reference: one forward pass
    whole = model.logits(X)
    assert np.array_equal(batched.argmax(1), whole.argmax(1))
    assert np.allclose(batched, whole, atol=1e-5)


def test_flops_per_spike_matches_hand_counts():
    import models

    ffn = models.build_model("ffn", {"ffn_n_layers": 1, "ffn_units_l0": 16}, 48, [3], 1)
    assert flops_per_spike(ffn, 48) == 2 * 48 * 16 + 2 * 16 * 3
    # LSTM (not seen by torch's counter): 12 steps of 4 samples, 4 gates, hidden 8; then the head.
    lstm = models.build_model("lstm", {"lstm_hidden": 8, "lstm_layers": 1, "lstm_input_stride": 4}, 48, [3], 1)
    assert flops_per_spike(lstm, 48) == 2 * 4 * 8 * (4 + 8) * 12 + 2 * 8 * 3
    both = models.build_model("lstm", {"lstm_hidden": 8, "lstm_layers": 2, "lstm_input_stride": 4,
                                       "bidirectional": True}, 48, [3], 1)
    first, second = 2 * 4 * 8 * (4 + 8) * 12 * 2, 2 * 4 * 8 * (16 + 8) * 12 * 2
    assert flops_per_spike(both, 48) == first + second + 2 * 16 * 3


def test_bundle_json_records_its_speed(cnn_bundle, mtl_bundle):
    for folder, _, _ in (cnn_bundle, mtl_bundle):
        speed = json.loads((folder / model_bundle.METADATA_FILE).read_text())["speed"]
        network = model_bundle.load_model(folder)._network
        assert speed["flops_per_spike"] == flops_per_spike(network, model_bundle.load_model(folder)._network_length)
        usable = json.loads((folder / model_bundle.METADATA_FILE).read_text())["bfloat16"]["usable"]
        assert set(speed["spikes_per_s"]) == {"torch", "onnx", *(["torch-bf16"] if usable else [])}
        assert all(rate > 0 for rate in speed["spikes_per_s"].values())
        assert speed["fastest_backend"] == max(speed["spikes_per_s"], key=speed["spikes_per_s"].get)
        assert speed["batch"] == model_bundle.INFERENCE_BATCH and speed["machine"]["cpu_count"] >= 1
        line = speed_line(speed)
        assert f"{speed['spikes_per_s'][speed['fastest_backend']]:,} spikes/s ({speed['fastest_backend']}" in line
        assert "MFLOP a spike" in line


def test_speed_is_timed_for_the_seconds_asked_within_the_batch_cap(monkeypatch):
    from tuning.bundle import speed

    clock = {"now": 0.0}
    monkeypatch.setattr(speed.time, "perf_counter", lambda: clock["now"])
    calls = []

    def one_batch(part):  # every batch takes 1/64 s on the fake clock (exact in binary)
        calls.append(len(part))
        clock["now"] += 1 / 64

    x = np.zeros((100, 4), dtype=np.float32)
    # The export's glance: 0.2 s, so 13 batches of 10 spikes (the cap of 32 is not reached).
    assert speed._rate(one_batch, x, 10) == pytest.approx(13 * 10 / (13 / 64))
    assert len(calls) == 1 + 13  # a warm-up batch, then the timed ones
    calls.clear()
    speed._rate(one_batch, x, 10, seconds=1.0, max_batches=speed.MEASURE_MAX_BATCHES)
    assert len(calls) == 1 + speed.MEASURE_MAX_BATCHES  # the cap ends it before the second is up
    calls.clear()
    speed._rate(one_batch, x, 10, seconds=1.0, max_batches=1 << 30)
    assert len(calls) == 1 + 64  # a benchmark's longer window, no cap


def test_bfloat16_backend_follows_the_export_check(cnn_bundle, tmp_path):
    import shutil

    folder, _, dataset = cnn_bundle
    check = json.loads((folder / model_bundle.METADATA_FILE).read_text())["bfloat16"]
    (task,) = check["tasks"]
    full = model_bundle.load_model(folder).predict(dataset.X)
    assert task["rows"] == dataset.n_rows
    assert task["accuracy_float32"] == pytest.approx(np.mean(full == np.array(dataset.class_names)[dataset.y]))
    assert check["usable"] == (task["agreement"] >= 0.995
                               and abs(task["accuracy_float32"] - task["accuracy_bfloat16"]) <= 0.002)
    if check["usable"]:  # the same labels the check counted, through predict's own path
        low = model_bundle.load_model(folder, backend="torch-bf16").predict(dataset.X)
        assert np.mean(low == full) == pytest.approx(task["agreement"])
        summary = predict.predict_csv(folder, dataset.path, tmp_path / "bf16.csv", backend="torch-bf16",
                                      progress=False)
        assert summary.rows == dataset.n_rows
    copy = tmp_path / "bundle"
    shutil.copytree(folder, copy)
    meta = json.loads((copy / model_bundle.METADATA_FILE).read_text())
    meta["bfloat16"]["usable"] = False
    meta["bfloat16"]["tasks"][0]["agreement"] = 0.98
    (copy / model_bundle.METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"agreed with float32 on 98.00% of the rows.*use --backend torch"):
        model_bundle.load_model(copy, backend="torch-bf16")
    del meta["bfloat16"]
    (copy / model_bundle.METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="exported before the bfloat16 check"):
        model_bundle.load_model(copy, backend="torch-bf16")
    assert model_bundle.load_model(copy).predict(dataset.X[:5]).tolist() == full[:5].tolist()


def spikes_file(dataset, path, *, blank_first_line=False, cells=None):
    """A labelled CSV with two metadata columns; ``cells``: {(row, column): text} overrides."""
    header = ["spike_time", *[f"s{i}" for i in range(dataset.length)], "channel", "Track"]
    rows = []
    for i, (x, k) in enumerate(zip(dataset.X, dataset.y)):
        row = [f"{0.25 * i:.2f}", *[f"{v:.2f}" for v in x], f" ch{i % 4} ", dataset.class_names[k]]
        for (r, c), text in (cells or {}).items():
            if r == i:
                row[c] = text
        rows.append(row)
    _write_csv(path, header, rows)
    if blank_first_line:  # the header on line 2: the csv module's reading
        path.write_text("\n" + path.read_text())
    return path


def counting_checked_reader(monkeypatch) -> list:
    calls = []
    original = predict._checked_chunks

    def counted(*args, **kwargs):
        calls.append(1)
        yield from original(*args, **kwargs)

    monkeypatch.setattr(predict, "_checked_chunks", counted)
    return calls


def test_pyarrow_and_csv_module_readings_write_the_same_predictions(cnn_bundle, tmp_path, monkeypatch):
    folder, _, dataset = cnn_bundle
    calls = counting_checked_reader(monkeypatch)
    plain = predict.predict_csv(folder, spikes_file(dataset, tmp_path / "plain.csv"), tmp_path / "fast.csv",
                                chunk_rows=7, progress=False)
    assert calls == []  # read by pyarrow alone
    checked = predict.predict_csv(folder, spikes_file(dataset, tmp_path / "line2.csv", blank_first_line=True),
                                  tmp_path / "checked.csv", chunk_rows=7, progress=False)
    assert calls == [1]
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "checked.csv").read_bytes()
    assert plain.confusion == checked.confusion and plain.scored == checked.scored == dataset.n_rows
    frame = pd.read_csv(tmp_path / "fast.csv", dtype=str, keep_default_na=False)
    assert frame["channel"].tolist()[:4] == ["ch0", "ch1", "ch2", "ch3"]  # stripped, as the csv reading does
    assert frame["label"].tolist() == model_bundle.load_model(folder).predict(dataset.X).tolist()


def test_a_file_pyarrow_refuses_halfway_is_read_again_by_the_csv_module(cnn_bundle, tmp_path, monkeypatch):
    """A quoted metadata cell (with a comma) and a number with an underscore, both near the
    end: pyarrow gives up on that chunk, the csv module reads the whole file again, and the
    output is what it would have written from the start."""
    folder, _, dataset = cnn_bundle
    last = dataset.n_rows - 3
    odd = {(last, dataset.length + 1): "ch1,2", (last + 1, 5): "1_000"}
    source = spikes_file(dataset, tmp_path / "odd.csv", cells=odd)
    calls = counting_checked_reader(monkeypatch)
    summary = predict.predict_csv(folder, source, tmp_path / "out.csv", chunk_rows=7, progress=False)
    assert calls == [1] and summary.rows == dataset.n_rows
    frame = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert frame["channel"].iloc[last] == "ch1,2" and frame["row"].tolist() == [str(i) for i in range(dataset.n_rows)]


def test_a_bad_cell_deep_in_a_plain_file_is_named_by_its_line(cnn_bundle, tmp_path):
    folder, _, dataset = cnn_bundle
    row = dataset.n_rows - 2
    source = spikes_file(dataset, tmp_path / "bad.csv", cells={(row, 3): "n/a"})
    out = tmp_path / "out.csv"
    out.write_text("previous predictions\n")
    with pytest.raises(InputError, match=rf"bad.csv: line {row + 2}, column 's2' .*'n/a' is not a number"):
        predict.predict_csv(folder, source, out, chunk_rows=7, progress=False)
    assert out.read_text() == "previous predictions\n"
