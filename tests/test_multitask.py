"""Multi-task learning (issue 4): heads, shared trunk, task sampling, loss weighting,
mixed waveform lengths, folds shared with single-task runs, and a CLI tune + export.

Everything trains on CPU with a single torch thread on tiny synthetic data; the one
end-to-end test (marked slow, about a minute) runs the real CLI with real Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from torch import nn

import search_spaces
from conftest import make_waveforms
from models import build_model
from tuning.export import results_tree
from tuning.data.readers import load_dataset
from tuning.data.preprocess import resample_to_length
from tuning.export.reruns import FULL_SPLIT, ONE_SPLIT, plan_jobs
from tuning.training import TaskData, fit
from tuning.training_loop import TaskLossWeighting, _task_schedule

REPO = Path(__file__).resolve().parents[1]

# Small trunks: a few thousand parameters, so every fit below takes well under a second.
FFN = {"ffn_n_layers": 1, "ffn_units_l0": 16, "batch_size": 16, "lr": 1e-2, "normalisation": "global"}
CNN = {"cnn_n_blocks": 2, "cnn_channels_b0": 4, "cnn_channels_b1": 8, "cnn_kernel_b0": 5,
       "cnn_kernel_b1": 3, "cnn_pool": "max", "batch_norm": True, "cnn_global_pool": "avg",
       "batch_size": 16, "normalisation": "global"}


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """Colleagues share the two cores: train on one thread (conftest's fixture)."""


def make_task(name: str, n_classes: int, rows_per_class: int = 20, length: int = 48,
              seed: int = 0) -> TaskData:
    """Separable synthetic waveforms, 70 % train / 30 % validation (classes interleaved)."""
    X, y = make_waveforms(n_classes, rows_per_class, length=length, seed=seed)
    X = X.astype(np.float32)
    cut = int(0.7 * len(y))
    return TaskData(name, n_classes, X[:cut], y[:cut], X[cut:], y[cut:])


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


# ---------------------------------------------------------------------------- heads


def test_build_model_gives_each_head_its_class_count():
    torch.manual_seed(0)
    model = build_model("mtl-cnn", CNN, 48, [2, 3, 6])
    assert model.class_counts == (2, 3, 6)
    assert [head.out_features for head in model.heads] == [2, 3, 6]
    x = torch.randn(5, 48)
    model.eval()
    for task, k in enumerate((2, 3, 6)):
        assert model(x, task).shape == (5, k)
    with pytest.raises(ValueError, match="out of range"):
        model(x, 3)


def test_fit_builds_one_head_per_task_with_its_class_count():
    tasks = [make_task("two", 2, seed=1), make_task("three", 3, seed=2), make_task("six", 6, seed=3)]
    result = fit("mtl-cnn", CNN, tasks, max_epochs=1, seed=0)
    assert result.model.class_counts == (2, 3, 6)
    assert [head.out_features for head in result.model.heads] == [2, 3, 6]
    for index, task in enumerate(tasks):
        predicted = result.predict(task.X_val, index)
        assert predicted.shape == task.y_val.shape
        assert predicted.min() >= 0 and predicted.max() < task.n_classes
        assert f"val_accuracy/{task.name}" in result.best_metrics


def test_fit_takes_read_only_arrays_without_warnings():
    """Ray's object store hands trials read-only arrays; fit must neither write to them
    nor wrap them in tensors that share their memory (torch warns about that)."""
    tasks = []
    for task in (make_task("a", 2, seed=1), make_task("b", 3, seed=2)):
        for array in (task.X_train, task.y_train, task.X_val, task.y_val):
            array.setflags(write=False)
        tasks.append(task)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fit("mtl-ffn", FFN, tasks, max_epochs=1, seed=0)
        assert result.predict(tasks[1].X_val, 1).shape == tasks[1].y_val.shape


# ------------------------------------------------------------------ shared trunk


def test_a_loss_on_one_task_changes_only_its_head_and_the_trunk():
    torch.manual_seed(0)
    model = build_model("mtl-cnn", CNN, 48, [2, 3, 6])
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    X, y = make_waveforms(3, 8, seed=4)
    before = snapshot(model)

    loss = nn.functional.cross_entropy(model(torch.tensor(X, dtype=torch.float32), 1), torch.tensor(y))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

    moved = changed(before, snapshot(model))
    trunk = {k for k in before if k.startswith("trunk.")}
    assert trunk and trunk <= moved, "every trunk parameter takes part in every task"
    assert {k for k in before if k.startswith("heads.1.")} <= moved
    assert not {k for k in moved if k.startswith(("heads.0.", "heads.2."))}, "other heads must not move"


def test_zero_static_weight_leaves_that_head_untouched_through_fit():
    """Through the real loop: ``task_weight_<name>`` from the config weights that task's
    loss (weight 0: its head never moves, with weight decay off); the others train."""
    tasks = [make_task("quiet", 2, seed=1), make_task("loud", 3, seed=2)]
    config = {**FFN, "loss_weighting": "static", "task_weight_quiet": 0.0, "task_weight_loud": 1.0,
              "task_sampling": "round_robin", "weight_decay": 0.0}
    torch.manual_seed(5)  # fit seeds torch with its seed before building: the same start
    initial = snapshot(build_model("mtl-ffn", config, 48, [2, 3]))
    result = fit("mtl-ffn", config, tasks, max_epochs=2, seed=5)
    moved = changed(initial, snapshot(result.model))
    assert not {k for k in moved if k.startswith("heads.0.")}
    assert {k for k in initial if k.startswith("heads.1.")} <= moved
    assert any(k.startswith("trunk.") for k in moved)

    # With the weights under other names (a mismatch with the task names) both heads train.
    renamed = {k: v for k, v in config.items() if not k.startswith("task_weight_")}
    renamed.update(task_weight_A2=0.0, task_weight_A4=0.0)
    result = fit("mtl-ffn", renamed, tasks, max_epochs=1, seed=5)
    assert any(k.startswith("heads.0.") for k in changed(initial, snapshot(result.model)))


# ------------------------------------------------- batch norm in a shared trunk
# One task per batch: a shared running average would mix the tasks' statistics and evaluate
# every task with that mixture (issue 23, item 7). Each task keeps its own statistics.

BN_FFN = {**FFN, "ffn_n_layers": 2, "ffn_units_l1": 8, "batch_norm": True}


@pytest.mark.parametrize("family, config", [("mtl-ffn", BN_FFN), ("mtl-cnn", CNN)])
def test_training_on_one_task_leaves_another_tasks_evaluation_unchanged(family, config):
    torch.manual_seed(0)
    model = build_model(family, config, 48, [2, 3])
    X, _ = make_waveforms(3, 8, seed=4)
    x = torch.tensor(X, dtype=torch.float32)
    with torch.no_grad():
        model.eval()
        before = [model(x, task).clone() for task in (0, 1)]
        model.train()
        for _ in range(5):  # training-mode passes on task 1 only, at another scale: its statistics move
            model(50 * x + 7, 1)
        model.eval()
        assert torch.equal(model(x, 0), before[0])
        assert not torch.allclose(model(x, 1), before[1])
    norm = next(m for m in model.modules() if hasattr(m, "running_mean"))
    assert norm.running_mean.shape[0] == 2 and not torch.allclose(norm.running_mean[0], norm.running_mean[1])


def test_single_task_models_keep_plain_batch_norm():
    """A one-task model is built as before: same modules, same state-dict keys and shapes."""
    model = build_model("ffn", BN_FFN, 48, [3])
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 2 and all(m.running_mean.shape == (m.num_features,) for m in norms)
    assert not model.task_specific_features


def test_a_state_dict_with_shared_statistics_loads_and_gives_the_same_outputs():
    """Bundles and checkpoints saved before per-task statistics load unchanged: the shared
    statistics are copied to every task."""
    from models import FFNTrunk

    torch.manual_seed(0)
    old = nn.Module()  # the multi-head network as it was: one trunk, plain batch norm
    old.trunk = FFNTrunk(48, BN_FFN)
    old.heads = nn.ModuleList([nn.Linear(8, 2), nn.Linear(8, 3)])
    old.train()
    X, _ = make_waveforms(3, 8, seed=4)
    x = torch.tensor(X, dtype=torch.float32)
    with torch.no_grad():
        old.trunk(x)  # statistics that are not the initial ones
    old.eval()
    new = build_model("mtl-ffn", BN_FFN, 48, [2, 3])
    new.load_state_dict(old.state_dict())
    new.eval()
    with torch.no_grad():
        for task in (0, 1):
            assert torch.equal(new(x, task), old.heads[task](old.trunk(x)))


def test_tasks_at_different_scales_each_keep_their_accuracy_with_batch_norm():
    """Through the real loop: two separable tasks, one at 100 times the other's amplitude,
    no input normalisation, batch norm on. Each task's validation accuracy is what it reaches
    trained alone; with one shared running average the small task was scored through the
    large one's statistics and fell to chance."""
    quiet = make_task("quiet", 2, rows_per_class=40, seed=1)
    loud = make_task("loud", 2, rows_per_class=40, seed=2)
    loud = TaskData("loud", 2, 100 * loud.X_train + 500, loud.y_train, 100 * loud.X_val + 500, loud.y_val)
    config = {**BN_FFN, "normalisation": "none", "task_sampling": "round_robin"}
    together = fit("mtl-ffn", config, [quiet, loud], max_epochs=6, seed=3)
    for index, task in enumerate((quiet, loud)):
        alone = fit("ffn", config, [task], max_epochs=6, seed=3)
        assert together.best_metrics[f"val_accuracy/{task.name}"] >= alone.best_metrics["val_accuracy"] - 0.1
        assert (together.predict(task.X_val, index) == task.y_val).mean() >= alone.best_metrics["val_accuracy"] - 0.1


# -------------------------------------------------------------- loss weighting


def test_task_loss_weighting_modes():
    loss = torch.tensor(2.0)
    static = TaskLossWeighting("static", [10, 30], [0.5, 3.0])
    assert float(static(loss, 0)) == 1.0 and float(static(loss, 1)) == 6.0
    assert list(static.parameters()) == []
    equal = TaskLossWeighting("equal", [10, 30], [9.0, 9.0])
    assert float(equal(loss, 0)) == float(equal(loss, 1)) == 2.0
    size = TaskLossWeighting("size", [10, 30], [1.0, 1.0])
    assert torch.allclose(size.fixed, torch.tensor([0.5, 1.5]))  # mean weight 1
    learned = TaskLossWeighting("uncertainty", [10, 30], [1.0, 1.0])
    assert [p.shape for p in learned.parameters()] == [torch.Size([2])]
    with torch.no_grad():
        learned.log_vars.copy_(torch.tensor([0.0, np.log(4.0)]))
    # Kendall et al.: exp(-s) * L + s / 2
    with torch.no_grad():
        assert float(learned(loss, 0)) == pytest.approx(2.0)
        assert float(learned(loss, 1)) == pytest.approx(0.5 + 0.5 * np.log(4.0))
    with pytest.raises(ValueError, match="loss_weighting"):
        TaskLossWeighting("median", [10, 30], [1.0, 1.0])


def test_uncertainty_log_variances_are_learned_during_fit():
    tasks = [make_task("a", 2, seed=1), make_task("b", 3, seed=2), make_task("c", 6, seed=3)]
    config = {**FFN, "lr": 1e-2, "loss_weighting": "uncertainty", "task_sampling": "round_robin"}
    result = fit("mtl-ffn", config, tasks, max_epochs=3, seed=0)
    assert len(result.history) == 3
    for task in tasks:
        values = [epoch[f"log_var/{task.name}"] for epoch in result.history]
        assert all(v != 0.0 for v in values), values
        assert values[0] != values[1] != values[2], values
    # the other modes log no log-variances
    plain = fit("mtl-ffn", {**FFN, "loss_weighting": "equal"}, tasks[:2], max_epochs=1, seed=0)
    assert not any(k.startswith("log_var/") for k in plain.history[0])


# ------------------------------------------------------------- task sampling


SIZES = np.array([640, 1920, 3840])  # 20 + 60 + 120 = 200 steps of 32 rows


def test_proportional_sampling_follows_dataset_sizes():
    schedule = _task_schedule("proportional", SIZES, 32, np.random.default_rng(0))
    assert len(schedule) == 200
    counts = np.bincount(schedule, minlength=3)
    expected = 200 * SIZES / SIZES.sum()
    # 4 binomial standard deviations: a seeded draw, far inside the band
    assert np.all(np.abs(counts - expected) <= 4 * np.sqrt(expected * (1 - SIZES / SIZES.sum()))), counts
    assert counts[0] < counts[1] < counts[2]


def test_uniform_sampling_gives_every_task_the_same_share():
    schedule = _task_schedule("uniform", SIZES, 32, np.random.default_rng(0))
    assert len(schedule) == 200
    counts = np.bincount(schedule, minlength=3)
    expected = 200 / 3
    assert np.all(np.abs(counts - expected) <= 4 * np.sqrt(expected * 2 / 3)), counts


def test_round_robin_cycles_exactly():
    schedule = _task_schedule("round_robin", SIZES, 32, np.random.default_rng(0))
    assert schedule.tolist() == [i % 3 for i in range(200)]


def test_single_task_schedule_and_unknown_policy():
    assert _task_schedule("uniform", np.array([100]), 32, np.random.default_rng(0)).tolist() == [0] * 4
    with pytest.raises(ValueError, match="task_sampling"):
        _task_schedule("greedy", SIZES, 32, np.random.default_rng(0))


@pytest.mark.parametrize("policy", ["proportional", "uniform", "round_robin"])
def test_every_policy_trains_through_fit(policy):
    tasks = [make_task("a", 2, seed=1), make_task("b", 3, seed=2)]
    result = fit("mtl-ffn", {**FFN, "task_sampling": policy}, tasks, max_epochs=2, seed=0)
    assert result.epochs_run == 2
    assert np.isfinite(result.history[-1]["train_loss"])


# ------------------------------------------------------------ mixed lengths


def test_lengths_48_and_64_train_together():
    short, long = make_task("L48", 2, rows_per_class=30, length=48, seed=1), \
        make_task("L64", 3, rows_per_class=30, length=64, seed=2)
    result = fit("mtl-ffn", FFN, [short, long], max_epochs=6, seed=0)
    assert result.input_length == 64
    assert result.model.trunk.input_length == 64
    for index, task in enumerate((short, long)):
        predicted = result.predict(task.X_val, index)
        assert predicted.shape == (len(task.y_val),)
        accuracy = float(np.mean(predicted == task.y_val))
        assert accuracy > 1.0 / task.n_classes + 0.3, (task.name, accuracy)
    # The short task's waveforms reach the network resampled to 64 samples, as the
    # policy states: predicting from the resampled array gives the same classes.
    resampled = resample_to_length(short.X_val, 64)
    assert np.array_equal(result.predict(resampled, 0), result.predict(short.X_val, 0))


def test_model_input_length_is_the_longest_task():
    tasks = [make_task("L64", 2, length=64, seed=1), make_task("L48", 2, length=48, seed=2)]
    result = fit("mtl-cnn", CNN, tasks, max_epochs=1, seed=0)
    assert result.input_length == 64
    result.model.eval()
    with torch.no_grad():
        assert result.model(torch.zeros(3, 64), 1).shape == (3, 2)


# ------------------------------------------------------------------- folds


@pytest.mark.parametrize("seed", [0, 7])
def test_multitask_folds_equal_single_task_folds(seed):
    a2, a4 = load_dataset(REPO / "data" / "A2.csv"), load_dataset(REPO / "data" / "A4.csv")
    settings = dict(folds=3, repeats=2, val_fraction=0.15, test_fraction=0.15, inner_val_fraction=0.15)
    joint = plan_jobs([a2, a4], seed=seed, **settings)
    alone = {d.name: plan_jobs([d], seed=seed, **settings) for d in (a2, a4)}
    assert len(joint) == 1 + 3 * 2
    assert [j.kind for j in joint] == [ONE_SPLIT] + [FULL_SPLIT] * 6
    for index, (dataset, jobs) in enumerate(zip((a2, a4), alone.values())):
        assert len(jobs) == len(joint)
        for mtl, single in zip(joint, jobs):
            assert (mtl.kind, mtl.repeat, mtl.fold, mtl.seed) == (single.kind, single.repeat, single.fold, single.seed)
            for part in ("train", "val", "test"):
                assert np.array_equal(getattr(mtl, part)[index], getattr(single, part)[0]), (dataset.name, part)
    # ... and the two datasets' folds are their own (different sizes), not one shared index set
    assert len(joint[1].test[0]) != len(joint[1].test[1])


# --------------------------------------------------------------- search space


def test_mtl_space_weight_keys_are_named_after_the_datasets():
    """The driver calls ``get_space(family, [d.name for d in datasets])``; a static
    weighting then suggests ``task_weight_<dataset name>``, the key ``fit`` reads."""
    names = ["A2", "A12"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"loss_weighting": "static"})
    trial = study.ask()
    constants = search_spaces.get_space("mtl-ffn", names)(trial)
    assert constants == {"family": "mtl-ffn"}
    assert {k for k in trial.params if k.startswith("task_weight_")} == {"task_weight_A2", "task_weight_A12"}
    config = {**trial.params, **constants}
    tasks = [make_task("A2", 2, seed=1), make_task("A12", 2, seed=2)]
    assert fit("mtl-ffn", config, tasks, max_epochs=1, seed=0).epochs_run == 1


# ---------------------------------------------------------------- end to end


def _tune(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tuning", "tune", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.subprocess
def test_multitask_tune_and_export_end_to_end(tiny_dataset_dir, tmp_path):
    common = ["--data-dir", str(tiny_dataset_dir), "--storage", str(tmp_path / "rr"),
              "--results-dir", str(tmp_path / "results"), "--samples", "2", "--max-epochs", "2",
              "--grace-period", "1", "--folds", "2", "--repeats", "1", "--num-cpus", "2"]
    done = _tune(["mtl-ffn", "all", *common], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    root = tmp_path / "results" / "Feature Based MTL FFN"
    best = pd.read_csv(root / "Best Performance Results" / "Feature_based_MTL_full_split_metrics_best_config.csv")
    assert sorted(best["dataset"]) == ["T2", "T3"]
    assert (best["family"] == "mtl-ffn").all()
    individual = {}
    for name, k in (("T2", 2), ("T3", 3)):
        frame = pd.read_csv(root / "Individual Dataset Results" / f"Feature_based_MTL_full_split_metrics_{name}.csv")
        assert list(frame.columns) == results_tree.individual_columns(k)
        assert len(frame) == 2 and set(frame["dataset"]) == {name}
        individual[name] = frame

    # per-task validation metrics in every trial's result.json and TensorBoard events
    experiment = next((tmp_path / "rr").glob("mtl-ffn-T2+T3-*"))
    trials = sorted(experiment.glob("trial_*"))
    assert len(trials) == 2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for trial in trials:
        lines = [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line]
        assert lines and all({"val_accuracy/T2", "val_accuracy/T3"} <= set(line) for line in lines)
        events = EventAccumulator(str(next(trial.glob("events.out.tfevents*"))))
        events.Reload()
        assert {"ray/tune/val_accuracy/T2", "ray/tune/val_accuracy/T3"} <= set(events.Tags()["scalars"])

    # The single-task export of T2 with the same seed and folds scores the same folds.
    done = _tune(["ffn", "T2", *common], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    single = pd.read_csv(tmp_path / "results" / "Classic FFN PyTorch" / "Individual Dataset Results"
                         / "Classic_FFN_full_split_metrics_T2.csv")
    assert list(single.columns) == list(individual["T2"].columns)
    keys = ["repeat", "fold", "seed", "n_train", "n_val", "n_test"]
    assert single[keys].sort_values(keys).values.tolist() == \
        individual["T2"][keys].sort_values(keys).values.tolist()
