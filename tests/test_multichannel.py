"""Multi-channel waveforms end to end: the ch{c}_s{t} columns, the loader, per-channel
resampling and normalisation, the trunks' channel inputs, training, the multi-task rule,
and a multi-channel CNN against the same CNN on the extremum channel alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import CNNTrunk, FFNTrunk, LSTMTrunk, build_model
from tuning.data.channels import channel_layout, column_names
from tuning.data.readers import load_dataset
from tuning.errors import InputError
from tuning.data.preprocess import Normaliser, resample_to_length
from tuning.settings import TuneSettings, load_for_tuning
from tuning.training import TaskData, fit


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small nets train fastest on one thread, and the test machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_multichannel(write_csv, path, X3, labels, shuffle_columns=None):
    """Write ``X3`` ``(rows, C, T)`` as a ch{c}_s{t} CSV with a trailing ``unit`` column."""
    n, c, t = X3.shape
    names = column_names(c, t)
    flat = X3.reshape(n, c * t)
    order = np.arange(c * t) if shuffle_columns is None else shuffle_columns
    rows = ([f"{v:.3f}" for v in row[order]] + [str(lab)] for row, lab in zip(flat, labels))
    return write_csv(path, [names[j] for j in order] + ["unit"], rows)


def test_column_names_and_layout():
    assert column_names(1, 3) == ["s0", "s1", "s2"]  # one channel: the plain single-channel header
    assert column_names(2, 2) == ["ch0_s0", "ch0_s1", "ch1_s0", "ch1_s1"]
    assert channel_layout("f.csv", ["s0", "s1", "x"]) == (1, None)
    n, order = channel_layout("f.csv", ["ch0_s0", "ch0_s1", "ch1_s0", "ch1_s1"])
    assert n == 2 and order is None
    n, order = channel_layout("f.csv", ["CH1_S0", "ch0_s0", "ch1_s1", "ch0_s1"])  # any case, any order
    assert n == 2 and order.tolist() == [1, 3, 0, 2]


@pytest.mark.parametrize("names, message", [
    (["ch0_s0", "ch0_s1", "s2"], "'s2' does not follow the multi-channel naming"),
    (["ch0_s0", "ch0_s1", "ch1_s0"], "ch1_s1 is missing"),
    (["ch0_s0", "ch0_s00"], "both channel 0, sample 0"),
])
def test_layout_errors_name_the_file_and_column(names, message):
    with pytest.raises(InputError, match="f.csv") as info:
        channel_layout("f.csv", names)
    assert message in str(info.value)


def test_loader_reads_channels_and_restores_channel_major_order(tmp_path, write_csv):
    rng = np.random.default_rng(0)
    X3 = rng.normal(size=(12, 3, 5)).round(3)
    labels = [i % 2 for i in range(12)]
    shuffled = rng.permutation(15)
    path = write_multichannel(write_csv, tmp_path / "M.csv", X3, labels, shuffle_columns=shuffled)
    d = load_dataset(path, min_rows_per_class=2)
    assert d.n_channels == 3 and d.length == 5 and d.X.shape == (12, 15)
    np.testing.assert_allclose(d.X.reshape(12, 3, 5), X3, atol=1e-6)
    assert d.label_column == "unit" and d.class_names == ("0", "1")
    assert "channels=3" in repr(d)


def test_single_channel_file_is_unchanged(tiny_dataset_dir):
    d = load_dataset(tiny_dataset_dir / "T2.csv")
    assert d.n_channels == 1 and d.length == 48 and d.X.shape[1] == 48
    assert "channels" not in repr(d)


def test_resampling_stays_inside_each_channel():
    # Two channels, each a ramp over its own range: resampling the flattened row as one
    # waveform would blend the end of channel 0 into the start of channel 1.
    X = np.concatenate([np.linspace(0, 1, 5), np.linspace(10, 20, 5)])[None, :]
    out = resample_to_length(X, 9, n_channels=2)
    assert out.shape == (1, 18)
    np.testing.assert_allclose(out[0, :9], np.linspace(0, 1, 9), atol=1e-6)
    np.testing.assert_allclose(out[0, 9:], np.linspace(10, 20, 9), atol=1e-5)
    with pytest.raises(ValueError, match="do not split into 4 channels"):
        resample_to_length(X, 9, n_channels=4)


def test_per_waveform_normalisation_keeps_channel_ratios():
    # Channel 1 carries a third of channel 0's spike: the ratio that tells units apart.
    wave = np.array([0.0, -90.0, 30.0, 0.0])
    X = np.concatenate([wave, wave / 3.0])[None, :]
    out = Normaliser("per_waveform").transform(X).reshape(2, 4)
    ratio = (out[1] - out[1].mean()) / (out[0] - out[0].mean())
    np.testing.assert_allclose(ratio[[1, 2]], 1 / 3, rtol=1e-5)


def test_trunks_take_channels():
    x = torch.randn(5, 4 * 32)  # 4 channels x 32 samples, channel-major
    cnn = CNNTrunk(32, {"cnn_n_blocks": 2}, n_channels=4)
    assert cnn.blocks[0].in_channels == 4
    torch.testing.assert_close(cnn(x), cnn(x.reshape(5, 4, 32)))
    ffn = FFNTrunk(32, {"ffn_n_layers": 1}, n_channels=4)
    assert ffn.layers[0].in_features == 128 and ffn(x).shape == (5, ffn.out_features)
    lstm = LSTMTrunk(32, {"lstm_input_stride": 2}, n_channels=4)
    assert lstm.lstm.input_size == 8
    steps = lstm._to_sequence(x)
    assert steps.shape == (5, 16, 8)
    # Step k holds samples 2k and 2k+1 of every channel.
    x3 = x.reshape(5, 4, 32)
    torch.testing.assert_close(steps[:, 3], x3[:, :, 6:8].transpose(1, 2).reshape(5, 8))
    net = build_model("mtl-lstm", {}, 32, [2, 3], n_channels=4)
    assert net(x, task=1).shape == (5, 3)


def test_one_channel_build_matches_the_single_channel_model():
    torch.manual_seed(0)
    a = build_model("cnn", {}, 48, [3])
    torch.manual_seed(0)
    b = build_model("cnn", {}, 48, [3], n_channels=1)
    x = torch.randn(4, 48)
    torch.testing.assert_close(a(x), b(x))


def neighbour_channel_spikes(n_per_class: int, seed: int):
    """Two units with the same spike on the extremum channel (ch0) and opposite small
    deflections on the neighbouring channel (ch1); ch2 is noise. ``X`` (n, 3, 40)."""
    rng = np.random.default_rng(seed)
    t = np.arange(40.0)
    spike = -80.0 * np.exp(-0.5 * ((t - 12) / 2.0) ** 2) + 20.0 * np.exp(-0.5 * ((t - 20) / 4.0) ** 2)
    bump = 18.0 * np.exp(-0.5 * ((t - 14) / 3.0) ** 2)
    X, y = [], []
    for unit, sign in ((0, 1.0), (1, -1.0)):
        template = np.stack([spike * (1.0 + 0.01 * unit), sign * bump, np.zeros_like(t)])
        # Amplitude jitter per spike makes ch0 alone useless; the noise is per sample.
        scale = rng.normal(1.0, 0.15, size=(n_per_class, 1, 1))
        X.append(template * scale + rng.normal(0.0, 8.0, size=(n_per_class, 3, 40)))
        y.append(np.full(n_per_class, unit))
    X, y = np.concatenate(X).astype(np.float32), np.concatenate(y)
    order = rng.permutation(len(y))
    return X[order], y[order]


def test_multichannel_cnn_beats_the_extremum_channel_alone():
    X, y = neighbour_channel_spikes(150, seed=1)
    train, val, test = np.arange(0, 180), np.arange(180, 240), np.arange(240, 300)
    config = {"cnn_n_blocks": 2, "cnn_channels_b0": 8, "cnn_channels_b1": 16, "cnn_kernel_b0": 5,
              "cnn_kernel_b1": 5, "lr": 3e-3, "batch_size": 32, "normalisation": "global"}

    def accuracy(X3):
        flat = np.ascontiguousarray(X3.reshape(len(X3), -1))
        task = TaskData("N", 2, flat[train], y[train], flat[val], y[val], n_channels=X3.shape[1])
        result = fit("cnn", config, [task], max_epochs=8, seed=0)
        assert result.n_channels == X3.shape[1] and result.input_length == 40
        return float(np.mean(result.predict(flat[test]) == y[test]))

    multi = accuracy(X)
    extremum = accuracy(X[:, :1])
    print("accuracy multi-channel", multi, "extremum only", extremum)
    assert multi >= 0.9, (multi, extremum)
    assert extremum <= 0.7, (multi, extremum)


def test_multitask_needs_one_channel_count(tmp_path, write_csv):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    labels = [i % 2 for i in range(20)]
    write_multichannel(write_csv, data / "FOUR.csv", rng.normal(size=(20, 4, 16)), labels)
    write_multichannel(write_csv, data / "TWO.csv", rng.normal(size=(20, 2, 16)), labels)
    write_multichannel(write_csv, data / "TWO_LONG.csv", rng.normal(size=(20, 2, 24)), labels)
    settings = TuneSettings(data_dir=str(data), folds=2)
    with pytest.raises(InputError, match=r"same number of channels.*FOUR \(4 channels.*TWO \(2 channels"):
        load_for_tuning("mtl-cnn", "FOUR,TWO", settings)
    # Single-task: each dataset alone, whatever its channels.
    assert [g[0].n_channels for g in load_for_tuning("cnn", "FOUR,TWO", settings)] == [4, 2]
    # Same channels, different lengths: one group, resampled per channel to the longest.
    (group,) = load_for_tuning("mtl-cnn", "TWO,TWO_LONG", settings)
    tasks = [TaskData.from_rows(d, np.arange(0, 14), np.arange(14, 20)) for d in group]
    result = fit("mtl-cnn", {"cnn_n_blocks": 1}, tasks, max_epochs=1, seed=0)
    assert (result.input_length, result.n_channels) == (24, 2)
    assert result.predict(group[0].X, task=0).shape == (20,)
