"""Issue 12's training levers: augmentation of training batches, learning-rate schedules,
label smoothing, and exact resumption with all of them on."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

import models
from conftest import make_waveforms
from tuning import training_loop
from tuning.data.augment import Augmenter
from tuning.training import TaskData, fit


def tiny_task(rows_per_class=40, n_classes=3, length=48, seed=0) -> TaskData:
    X, y = make_waveforms(n_classes, rows_per_class, length=length, seed=seed)
    X = X.astype(np.float32)
    n_val = len(y) // 4
    return TaskData("T", n_classes, X[n_val:], y[n_val:], X[:n_val], y[:n_val])


BASE = {"ffn_n_layers": 1, "ffn_units_l0": 16, "lr": 3e-3, "batch_size": 16, "dropout": 0.1}
AUGMENTED = {**BASE, "augment": True, "augment_shift": 2, "augment_scale": 0.15, "augment_noise": 0.1}


# ----------------------------------------------------------------------------- augmentation
def ramp_batch(rows=64, length=20, channels=None):
    x = torch.arange(length, dtype=torch.float32).repeat(rows, 1)
    return x if channels is None else x[:, None, :].repeat(1, channels, 1) + 100 * torch.arange(channels)[None, :, None]


@pytest.mark.parametrize("channels", [None, 3])
def test_shift_is_a_clamped_time_shift_within_bounds(channels):
    x = ramp_batch(channels=channels)
    before = x.clone()
    out = Augmenter(max_shift=3)(x, np.random.default_rng(0))
    assert torch.equal(x, before)  # the input batch is not modified in place
    flat_out = out if channels is None else out[:, 0, :]
    length = x.shape[-1]
    shifts = (length // 2 - flat_out[:, length // 2]).long()  # output t reads input t - shift
    assert shifts.abs().max() <= 3 and len(set(shifts.tolist())) > 3  # within bounds, and varied
    expected = torch.clamp(torch.arange(length)[None, :] - shifts[:, None], 0, length - 1).float()
    assert torch.equal(flat_out, expected)
    if channels is not None:  # every channel of a spike moves together
        for c in range(channels):
            assert torch.equal(out[:, c, :], expected + 100 * c)


def test_flattened_channel_major_rows_shift_within_each_channel():
    channels, length = 3, 20
    x3 = ramp_batch(length=length, channels=channels)
    flat = x3.reshape(len(x3), channels * length)  # the training loop's layout
    out = Augmenter(max_shift=3, n_channels=channels)(flat, np.random.default_rng(0))
    assert out.shape == flat.shape
    expected = Augmenter(max_shift=3)(x3, np.random.default_rng(0)).reshape(flat.shape)
    assert torch.equal(out, expected)  # each channel clamped at its own edges


def test_fit_augments_multichannel_tasks():
    task = tiny_task(length=40)
    two = TaskData("T", 3, task.X_train, task.y_train, task.X_val, task.y_val, n_channels=2)
    result = fit("cnn", {"augment": True, "augment_shift": 2, "lr": 3e-3, "batch_size": 16}, [two],
                 max_epochs=1, seed=0)
    assert result.n_channels == 2 and np.isfinite(result.history[0]["train_loss"])


def test_scale_and_noise_within_bounds():
    ones = torch.ones(500, 30)
    scaled = Augmenter(scale=0.2)(ones, np.random.default_rng(1))
    factors = scaled[:, 0]
    assert torch.all(scaled == factors[:, None])  # one factor per row
    assert factors.min() >= 0.8 and factors.max() <= 1.2 and factors.std() > 0.05
    noisy = Augmenter(noise_std=0.5)(torch.zeros(400, 50), np.random.default_rng(2))
    assert float(noisy.std()) == pytest.approx(0.5, rel=0.05)


def test_augmenter_from_config_scales_noise_to_the_data_and_honours_the_switch():
    x = [torch.randn(1000, 48) * 30.0]
    aug = Augmenter.from_config({"augment": True, "augment_noise": 0.1, "augment_shift": 2}, x)
    assert aug.noise_std == pytest.approx(3.0, rel=0.05) and aug.max_shift == 2 and aug.active
    assert not Augmenter.from_config({"augment": False, "augment_shift": 2}, x).active
    assert not Augmenter.from_config({}, x).active
    with pytest.raises(ValueError, match="augment_scale"):
        Augmenter.from_config({"augment_scale": 1.5}, x)


def test_same_seed_same_batches_other_seed_other_batches():
    x = torch.randn(32, 48)
    aug = Augmenter(max_shift=3, scale=0.1, noise_std=0.2)
    a = aug(x, np.random.default_rng([7, 3, 1]))
    b = aug(x, np.random.default_rng([7, 3, 1]))
    c = aug(x, np.random.default_rng([8, 3, 1]))
    assert torch.equal(a, b) and not torch.equal(a, c)


class Recorder(nn.Module):
    """The real network, with every input it sees kept (training and evaluation apart)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, {"train": [], "eval": []}

    def forward(self, x, task=0):
        self.seen["train" if self.training else "eval"].append(x.detach().clone())
        return self.net(x, task)


def test_augmentation_reaches_training_batches_only(monkeypatch):
    built = []
    real_build = models.build_model

    def build(*args, **kwargs):
        built.append(Recorder(real_build(*args, **kwargs)))
        return built[-1]

    monkeypatch.setattr(models, "build_model", build)
    task = tiny_task()
    fit("ffn", {**AUGMENTED, "augment_noise": 0.0, "augment_scale": 0.0, "augment_shift": 3},
        [task], max_epochs=1, seed=0)
    seen = built[0].seen
    train_rows = {tuple(np.round(r, 4)) for r in task.X_train.tolist()}
    trained = torch.cat(seen["train"]).numpy()
    unchanged = sum(tuple(np.round(r, 4)) in train_rows for r in trained.tolist())
    assert unchanged < 0.5 * len(trained)  # most rows shifted (1 in 7 draws a zero shift)
    # Validation sees the validation rows exactly as prepared, unaugmented.
    assert torch.equal(torch.cat(seen["eval"]), torch.from_numpy(task.X_val))


def test_fit_with_augmentation_is_seeded():
    task = tiny_task()
    runs = [fit("ffn", AUGMENTED, [task], max_epochs=2, seed=s).history for s in (5, 5, 6)]
    losses = [[h["train_loss"] for h in run] for run in runs]
    assert losses[0] == losses[1] and losses[0] != losses[2]
    plain = fit("ffn", BASE, [task], max_epochs=2, seed=5).history
    assert [h["train_loss"] for h in plain] != losses[0]  # the augmentation acted


# ----------------------------------------------------------------------------- schedules
def test_cosine_schedule_sets_the_rate_of_each_epoch():
    history = fit("ffn", {**BASE, "lr_schedule": "cosine"}, [tiny_task()], max_epochs=6, seed=0).history
    expected = [3e-3 * (1 + math.cos(math.pi * (e - 1) / 6)) / 2 for e in range(1, 7)]
    assert [h["lr"] for h in history] == pytest.approx(expected)
    constant = fit("ffn", BASE, [tiny_task()], max_epochs=3, seed=0).history
    assert [h["lr"] for h in constant] == pytest.approx([3e-3] * 3)


def test_plateau_schedule_halves_the_rate_after_a_plateau():
    # A rate too small to change any prediction: validation accuracy never improves.
    config = {**BASE, "lr": 1e-12, "dropout": 0.0, "lr_schedule": "plateau"}
    history = fit("ffn", config, [tiny_task()], max_epochs=10, seed=0).history
    assert len({h["val_accuracy"] for h in history}) == 1
    rates = [h["lr"] for h in history]
    # Best at epoch 1, then more than PLATEAU_PATIENCE epochs without improvement.
    first_drop = training_loop.PLATEAU_PATIENCE + 2
    assert rates[:first_drop] == pytest.approx([1e-12] * first_drop)
    assert rates[first_drop] == pytest.approx(1e-12 * training_loop.PLATEAU_FACTOR)
    assert all(b == pytest.approx(a) or b == pytest.approx(a * training_loop.PLATEAU_FACTOR)
               for a, b in zip(rates, rates[1:]))


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="lr_schedule"):
        fit("ffn", {**BASE, "lr_schedule": "step"}, [tiny_task()], max_epochs=1, seed=0)


def test_label_smoothing_reaches_the_training_loss_only():
    task = tiny_task()
    criterion = training_loop._criterion(task, {"label_smoothing": 0.1}, "cpu")
    logits, target = torch.randn(8, 3), torch.arange(8) % 3
    assert float(criterion(logits, target)) == pytest.approx(
        float(nn.functional.cross_entropy(logits, target, label_smoothing=0.1)))
    assert training_loop._criterion(task, {}, "cpu").label_smoothing == 0.0
    smooth = fit("ffn", {**BASE, "label_smoothing": 0.2}, [task], max_epochs=1, seed=0).history[0]
    plain = fit("ffn", BASE, [task], max_epochs=1, seed=0).history[0]
    # Same first-epoch batches; the smoothed loss of the same logits is larger.
    assert smooth["train_loss"] > plain["train_loss"]


# ----------------------------------------------------------------------------- resume
def checkpointed(state: dict) -> dict:
    """``state`` through torch.save / torch.load(weights_only=True), as a trial's checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_resume_is_exact_with_a_schedule_and_augmentation(schedule):
    config = {**AUGMENTED, "lr_schedule": schedule, "label_smoothing": 0.05}
    task = tiny_task()
    saved = {}

    def keep(epoch, metrics, state):
        if epoch == 3:
            saved["state"] = checkpointed(state())

    whole = fit("ffn", config, [task], max_epochs=6, seed=1, on_epoch=keep).history
    assert saved["state"]["scheduler"] is not None
    resumed = fit("ffn", config, [task], max_epochs=6, seed=1, resume_state=saved["state"]).history
    keys = ("train_loss", "val_loss", "val_accuracy", "lr")
    assert [[h[k] for k in keys] for h in resumed] == [[h[k] for k in keys] for h in whole]
    # Without the scheduler's state the rates after the resume would not be the same.
    if schedule == "cosine":
        stale = {**saved["state"], "scheduler": None}
        restarted = fit("ffn", config, [task], max_epochs=6, seed=1, resume_state=stale).history
        assert [h["lr"] for h in restarted[3:]] != [h["lr"] for h in whole[3:]]


# ----------------------------------------------------------------------------- ensemble
def test_ensemble_averages_member_probabilities():
    from tuning.data.readers import Dataset
    from tuning.export.ensemble import average_proba, fit_members, score_members

    task = tiny_task()
    X = np.concatenate([task.X_train, task.X_val])
    y = np.concatenate([task.y_train, task.y_val])
    dataset = Dataset("T", None, X, y, "label", ("a", "b", "c"))
    test = np.arange(len(task.y_train), len(y))
    members = fit_members("ffn", [BASE, {**BASE, "ffn_units_l0": 8}], [task], max_epochs=2, seed=0)
    p = [m.predict_proba(X[test]) for m in members]
    assert np.allclose(average_proba(members, X[test]), (p[0] + p[1]) / 2)
    assert p[0].shape == (len(test), 3) and np.allclose(p[0].sum(1), 1.0, atol=1e-5)
    assert np.array_equal(p[0].argmax(1), members[0].predict(X[test]))
    scores = score_members(members, dataset, test)
    truth = y[test]
    assert scores["single"]["accuracy"] == pytest.approx(float(np.mean(p[0].argmax(1) == truth)))
    assert scores["ensemble"]["accuracy"] == pytest.approx(float(np.mean((p[0] + p[1]).argmax(1) == truth)))
    # Two copies of one configuration (same seed): the same networks, the single's score.
    twins = fit_members("ffn", [BASE, BASE], [task], max_epochs=2, seed=0)
    twin_scores = score_members(twins, dataset, test)
    assert twin_scores["ensemble"] == twin_scores["single"]
