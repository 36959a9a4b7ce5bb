"""Every family's Optuna space samples configs that build and train, with conditional
parameters present exactly when their parent asks for them."""

import pickle
import subprocess
import sys

import optuna
import pytest
import torch
from torch import nn

import models
import search_spaces
from search_spaces import FAMILIES, common, get_space, space_module, space_source

TASKS = ["A2", "A3", "A12"]
CLASS_COUNTS = {"A2": 2, "A3": 2, "A12": 6}
N_SAMPLES = 50

TRAINING_KEYS = {
    "lr", "weight_decay", "batch_size", "optimizer", "momentum", "normalisation",
    "class_weighted_loss", "lr_schedule", "label_smoothing", "augment", "augment_shift",
    "augment_scale", "augment_noise",
}
AUGMENT_KEYS = {"augment_shift", "augment_scale", "augment_noise"}
MULTITASK_KEYS = {"task_sampling", "loss_weighting", "head_hidden", "head_dropout"} | {
    f"task_weight_{t}" for t in TASKS
}
FINETUNE_KEYS = {"ft_epoch_share", "ft_lr_ratio", "ft_train", "ft_trunk_lr_ratio"}
TRUNK_KEYS = {
    "ffn": {"ffn_n_layers", "dropout", "batch_norm", "activation"}
    | {f"ffn_units_l{i}" for i in range(4)},
    "cnn": {"cnn_n_blocks", "cnn_pool", "batch_norm", "dropout", "cnn_global_pool",
            "cnn_dense_units"}
    | {f"cnn_{p}_b{i}" for p in ("channels", "kernel") for i in range(4)},
    "lstm": {"lstm_hidden", "lstm_layers", "bidirectional", "dropout", "lstm_readout",
             "lstm_input_stride"},
}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample_configs(family, n=N_SAMPLES, seed=0):
    return search_spaces.sample_configs(family, TASKS, n, seed)


@pytest.fixture(scope="module")
def configs():
    return {family: sample_configs(family) for family in FAMILIES}


def check_conditionals(family, cfg):
    trunk = models.trunk_family(models.network_family(family, cfg))  # "auto": the family it chose
    if trunk == "ffn":
        for i in range(4):
            assert (f"ffn_units_l{i}" in cfg) == (i < cfg["ffn_n_layers"])
    if trunk == "cnn":
        for i in range(4):
            assert (f"cnn_channels_b{i}" in cfg) == (i < cfg["cnn_n_blocks"])
            assert (f"cnn_kernel_b{i}" in cfg) == (i < cfg["cnn_n_blocks"])
    assert ("momentum" in cfg) == (cfg["optimizer"] == "sgd")
    for key in AUGMENT_KEYS:
        assert (key in cfg) == cfg["augment"]
    if models.is_multitask(family):
        static = cfg["loss_weighting"] == "static"
        for t in TASKS:
            assert (f"task_weight_{t}" in cfg) == static
        assert ("head_dropout" in cfg) == (cfg["head_hidden"] > 0)
    else:
        assert not any(k.startswith(("task_", "head_", "loss_")) for k in cfg)
    if models.is_finetuned(family):
        assert {"ft_epoch_share", "ft_lr_ratio", "ft_train"} <= set(cfg)
        assert ("ft_trunk_lr_ratio" in cfg) == (cfg["ft_train"] != "head")
    else:
        assert not any(k.startswith("ft_") for k in cfg)


@pytest.mark.parametrize("family", FAMILIES)
def test_space_keys_and_conditionals(family, configs):
    extra = {models.AUTO_KEY} if family == models.AUTO else set()
    if models.is_multitask(family):
        extra |= MULTITASK_KEYS
    if models.is_finetuned(family):
        extra |= FINETUNE_KEYS
    for cfg in configs[family]:
        assert cfg["family"] == family
        # "auto": the trunk keys of the family it chose, and none of the others'
        allowed = TRUNK_KEYS[models.trunk_family(models.network_family(family, cfg))] | TRAINING_KEYS | {"family"} | extra
        assert set(cfg) <= allowed, set(cfg) - allowed
        check_conditionals(family, cfg)
    if family == models.AUTO:  # every family is a real branch of its space
        assert {c[models.AUTO_KEY] for c in configs[family]} == set(models.AUTO_CHOICES)
    # The conditional branches are really exercised, so the checks above are not vacuous.
    optimizers = {c["optimizer"] for c in configs[family]}
    assert optimizers == set(common.OPTIMIZERS)
    assert {c["lr_schedule"] for c in configs[family]} == set(common.LR_SCHEDULES)
    assert {c["augment"] for c in configs[family]} == {True, False}
    if models.is_multitask(family):
        assert {c["loss_weighting"] for c in configs[family]} == set(common.LOSS_WEIGHTINGS)
    if models.is_finetuned(family):
        assert {c["ft_train"] for c in configs[family]} == set(common.FINETUNE_PARTS) == set(models.FINETUNE_PARTS)


def test_ranges(configs):
    for family, cfgs in configs.items():
        for c in cfgs:
            assert 1e-4 <= c["lr"] <= 1e-2 and 1e-6 <= c["weight_decay"] <= 1e-2
            assert c["batch_size"] in (32, 64, 128, 256)
            assert c["normalisation"] in common.NORMALISATIONS
            assert c["class_weighted_loss"] in (True, False)
            assert c["lr_schedule"] in common.LR_SCHEDULES and 0.0 <= c["label_smoothing"] <= 0.2
            if c["augment"]:
                assert 0 <= c["augment_shift"] <= common.MAX_AUGMENT_SHIFT
                assert 0.0 <= c["augment_scale"] <= 0.2 and 0.0 <= c["augment_noise"] <= 0.2
            if "momentum" in c:
                assert 0.8 <= c["momentum"] <= 0.99
            for k, v in c.items():
                if k.startswith("task_weight_"):
                    assert 0.25 <= v <= 4.0
                if k.startswith("ffn_units_l"):
                    assert 16 <= v <= 256
                if k.startswith("cnn_channels_b"):
                    assert 8 <= v <= 64
                if k.startswith("cnn_kernel_b"):
                    assert v in (3, 5, 7, 9)
            if "lstm_hidden" in c:
                assert 16 <= c["lstm_hidden"] <= 96 and 1 <= c["lstm_layers"] <= 2
            if "ft_train" in c:
                assert 0.1 <= c["ft_epoch_share"] <= 0.5 and 0.03 <= c["ft_lr_ratio"] <= 1.0
                assert 0.1 <= c.get("ft_trunk_lr_ratio", 0.1) <= 1.0


# Not only the stand-ins' 48 samples and 2-6 classes: other probes and sampling rates give
# other lengths (64 at 30 kHz), other sorters other unit counts. Every config at 48 samples;
# the first OTHER_SHAPES_CONFIGS at the other shapes (the build cost grows with each shape).
LENGTHS_AND_CLASSES = [(48, 3), (64, 6), (32, 2), (96, 10), (20, 4)]
OTHER_SHAPES_CONFIGS = 6


@pytest.mark.parametrize("length,n_classes", LENGTHS_AND_CLASSES)
@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_configs_build_and_train(family, configs, length, n_classes):
    torch.manual_seed(0)
    multitask = models.is_multitask(family)
    counts = [CLASS_COUNTS[t] for t in TASKS] if multitask else [n_classes]
    x = torch.randn(4, length)
    for cfg in configs[family][:None if length == 48 else OTHER_SHAPES_CONFIGS]:
        model = models.build_model(family, cfg, length, counts)
        model.train()
        loss = 0.0
        # One small batch per task: every head gets a gradient.
        for task, k in enumerate(counts):
            logits = model(x, task=task)
            assert logits.shape == (4, k)
            loss = loss + nn.functional.cross_entropy(logits, torch.arange(4) % k)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for p in model.parameters()), cfg


@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_configs_run_the_training_loop(family, configs):
    """A few sampled configs through tuning.training.fit (augmentation, schedules, label
    smoothing included) on a small 64-sample dataset: finite losses, every epoch reported."""
    import numpy as np

    from tuning.training import TaskData, fit

    rng = np.random.default_rng(0)
    tasks = []
    for name in (TASKS if models.is_multitask(family) else TASKS[-1:]):
        k = CLASS_COUNTS[name]
        y = np.arange(60) % k
        X = (rng.normal(size=(60, 64)) + y[:, None]).astype(np.float32)
        tasks.append(TaskData(name, k, X[:45], y[:45], X[45:], y[45:]))
    picked = [next(c for c in configs[family] if c["augment"]), next(c for c in configs[family] if not c["augment"])]
    for cfg in picked:
        result = fit(family, cfg, tasks, max_epochs=2, seed=0)
        # ft-*: epoch 1 is stage 1 (all datasets), epoch 2 stage 2 (one row per dataset's network).
        assert sorted({h["epoch"] for h in result.history}) == [1, 2], cfg
        assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in result.history), cfg


@pytest.mark.parametrize("family", FAMILIES)
def test_get_space_pickles_and_runs(family):
    space = get_space(family, TASKS)
    restored = pickle.loads(pickle.dumps(space))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    assert restored(trial) == {"family": family}
    assert trial.params


class _Recorder:
    """Stands in for Ray's suggest-capturing wrapper: only suggest_* exists."""

    def __init__(self, trial):
        self._trial, self.values = trial, {}

    def __getattr__(self, name):
        method = getattr(self._trial, name)
        if not name.startswith("suggest_"):
            raise AttributeError(name)

        def record(param, *args, **kwargs):
            self.values[param] = method(param, *args, **kwargs)
            return self.values[param]

        return record


@pytest.mark.parametrize("family", FAMILIES)
def test_space_uses_only_suggest_methods(family):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    trial = study.ask()
    recorder = _Recorder(trial)
    assert get_space(family, TASKS)(recorder) == {"family": family}
    assert recorder.values == trial.params


def test_registry_errors_and_source():
    assert search_spaces.FAMILIES is models.FAMILIES
    with pytest.raises(ValueError, match="mtl-lstm"):
        get_space("transformer", TASKS)
    with pytest.raises(ValueError, match="mtl-lstm"):
        space_module("mtl_cnn")
    with pytest.raises(ValueError, match="duplicates"):
        get_space("mtl-ffn", ["A2", "A2"])
    with pytest.raises(ValueError, match="empty"):
        get_space("mtl-ffn", [])
    assert space_module("mtl-cnn").__name__ == "search_spaces.mtl_cnn"
    src = space_source("mtl-cnn")
    for name in ("search_spaces/mtl_cnn.py", "search_spaces/cnn.py", "search_spaces/common.py"):
        assert name in src
    assert "def suggest_training" in src and "def suggest_trunk" in src
    assert "search_spaces/ffn.py" in space_source("ffn")
    src = space_source("ft-lstm")
    for name in ("search_spaces/ft_lstm.py", "search_spaces/mtl_lstm.py", "search_spaces/lstm.py",
                 "search_spaces/common.py"):
        assert src.count(f"# ==== {name} ====") == 1
    assert "def suggest_finetuning" in src


@pytest.mark.subprocess
def test_dependency_direction():
    # models must stay pure torch; search spaces must not pull in the pipeline or Ray.
    checks = {
        "models": ("tuning", "ray", "search_spaces", "optuna"),
        "search_spaces": ("tuning", "ray"),
    }
    for package, forbidden in checks.items():
        code = (
            f"import sys, {package}\n"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {forbidden!r}]\n"
            "assert not bad, bad\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, cwd=models.__path__[0] + "/..")
