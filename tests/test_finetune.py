"""Share first, then specialise (issue 24): the ft-* families' two stages, what fine-tuning
may change, no leakage into stage 1, resumable trials, per-dataset bundles, and a CLI tune.

Everything trains on one torch thread on tiny synthetic data; the end-to-end test (marked
slow) runs the real CLI with a real Ray runtime of 2 CPUs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

import models
import search_spaces
from conftest import TINY_ROWS_PER_CLASS, _write_csv, fake_scores, make_waveforms
from models import FFNTrunk
from tuning import atomic, finetune
from tuning.bundle import model_bundle
from tuning.cli import main
from tuning.data.preprocess import Normaliser
from tuning.data.readers import load_dataset
from tuning.export import results_tree
from tuning.export.reruns import plan_jobs, run_job
from tuning.training import TaskData, fit

REPO = Path(__file__).resolve().parents[1]
FFN = {"ffn_n_layers": 2, "ffn_units_l0": 16, "ffn_units_l1": 8, "batch_size": 16, "lr": 1e-2,
       "normalisation": "global", "ft_epoch_share": 0.5, "ft_lr_ratio": 1.0}
CNN = {"cnn_n_blocks": 2, "cnn_channels_b0": 4, "cnn_channels_b1": 8, "cnn_kernel_b0": 5, "cnn_kernel_b1": 3,
       "batch_norm": True, "cnn_dense_units": 8, "batch_size": 16, "lr": 3e-3, "normalisation": "global",
       "ft_epoch_share": 0.5, "ft_lr_ratio": 1.0}


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """Colleagues share the two cores: train on one thread (conftest's fixture)."""


def make_task(name: str, n_classes: int, length: int = 48, seed: int = 0) -> TaskData:
    X, y = make_waveforms(n_classes, 20, length=length, seed=seed)
    X = X.astype(np.float32)
    cut = int(0.7 * len(y))
    return TaskData(name, n_classes, X[:cut], y[:cut], X[cut:], y[cut:])


@pytest.fixture
def tasks():
    return [make_task("A", 2, seed=1), make_task("B", 3, length=40, seed=2)]


def tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers (batch-norm statistics too), detached copies."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def differing(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def trained_state(config, tasks, first, part, epochs=3):
    """Stage 2 from ``first`` with ``ft_train=part``: the networks' state after its last epoch
    (whatever epoch fit keeps as the best), through fit's own per-epoch state."""
    config = {**config, "ft_train": part}
    states = []
    fit("ft-cnn", finetune.stage2_config(config), tasks, max_epochs=epochs, seed=1,
        warm_start=finetune.warm_start(first.model, config, range(len(tasks)), first.input_length),
        on_epoch=lambda epoch, metrics, state: states.append({k: v.clone() for k, v in state()["model"].items()}))
    return states[-1]


# ------------------------------------------------------------------------ stage 2's start
def test_stage2_networks_start_as_copies_of_the_stage1_trunk_and_heads(tasks):
    first = fit("mtl-cnn", CNN, tasks, max_epochs=2, seed=0)
    source = tensors(first.model)
    start = finetune.warm_start(first.model, CNN, [0, 1], first.input_length)
    for t, net in enumerate(start.model.nets):
        assert net.num_tasks == 1 and net.class_counts == (first.model.class_counts[t],)
        for key, value in tensors(net.trunk).items():
            expected = source[f"trunk.{key}"]
            if expected.dim() == value.dim() + 1:  # batch-norm statistics kept per task: this task's
                expected = expected[t]
            assert torch.equal(value, expected), key
        for key, value in tensors(net.heads[0]).items():
            assert torch.equal(value, source[f"heads.{t}.{key}"]), key
    # Same logits as the multi-task net on every task before any fine-tuning ...
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(5, first.input_length)).astype(np.float32))
    first.model.eval(), start.model.eval()
    for t in range(2):
        assert torch.equal(start.model(x, t), first.model(x, t))
    # ... and copies, not the same tensors: changing one leaves the stage-1 net as it was.
    with torch.no_grad():
        start.model.nets[0].trunk.blocks[0].weight.add_(1.0)
    assert not differing(source, tensors(first.model))


@pytest.mark.parametrize("part, unchanged_trunk", [("head", "all"), ("last_block", "before the dense layer"),
                                                    ("all", "none")])
def test_what_fine_tuning_may_change(tasks, part, unchanged_trunk):
    first = fit("mtl-cnn", CNN, tasks, max_epochs=1, seed=0)
    before = tensors(first.model)
    after = trained_state(CNN, tasks, first, part)
    for t in range(2):
        after_trunk = {k.removeprefix(f"nets.{t}."): v for k, v in after.items() if k.startswith(f"nets.{t}.trunk.")}
        before_trunk = {k: v[t] if k in after_trunk and v.dim() == after_trunk[k].dim() + 1 else v  # per-task stats
                        for k, v in before.items() if k.startswith("trunk.")}
        trunk_changed = {k.removeprefix("trunk.") for k in differing(before_trunk, after_trunk)}
        head_changed = differing({k: v for k, v in before.items() if k.startswith(f"heads.{t}.")},
                                 {k.replace(f"nets.{t}.heads.0.", f"heads.{t}."): v for k, v in after.items()
                                  if k.startswith(f"nets.{t}.heads.")})
        assert head_changed, (part, t)
        if unchanged_trunk == "all":  # weights and batch-norm statistics as stage 1 left them
            assert trunk_changed == set(), trunk_changed
        elif unchanged_trunk == "none":
            assert {"blocks.0.weight", "dense.0.weight"} <= trunk_changed
        else:
            assert trunk_changed and all(k.startswith("dense.") for k in trunk_changed), trunk_changed


def test_trunk_learning_rate_ratio_scales_the_trunk_group():
    net = models.build_model("mtl-ffn", FFN, 48, [2, 3])
    config = {**FFN, "lr": 0.01, "ft_lr_ratio": 0.5, "ft_train": "all", "ft_trunk_lr_ratio": 0.1}
    start = finetune.warm_start(net, config, [0, 1], 48)
    from tuning.training_loop import TaskLossWeighting, _optimizer

    optimizer = _optimizer(finetune.stage2_config(config), start.param_groups, TaskLossWeighting("equal", [1, 1], [1, 1]))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.005, 0.0005])
    head_only = finetune.warm_start(net, {**config, "ft_train": "head"}, [0, 1], 48)
    trainable = {id(p) for g in head_only.param_groups for p in g["params"]}
    assert trainable == {id(p) for n in head_only.model.nets for p in n.heads.parameters()}


# ------------------------------------------------------------------------ both stages in fit
def test_fit_runs_exactly_the_two_stages_through_the_one_loop(tasks):
    """fit("ft-ffn") = fit(mtl-ffn) for stage 1's epochs, then a fit per dataset from its copy."""
    config = {**FFN, "ft_train": "last_block", "ft_epoch_share": 0.4}
    assert finetune.stage_epochs(config, 5) == (3, 2)
    result = fit("ft-ffn", config, tasks, max_epochs=5, seed=3)
    first = fit("mtl-ffn", config, tasks, max_epochs=3, seed=3)
    for t, task in enumerate(tasks):
        alone = fit("ft-ffn", finetune.stage2_config(config), [task], max_epochs=2, seed=4,
                    warm_start=finetune.warm_start(first.model, config, [t], first.input_length))
        assert not differing(tensors(alone.model.nets[0]), tensors(result.model.nets[t]))
        assert result.task_epochs[t] == (first.epochs_run + alone.epochs_run, first.epochs_run + alone.best_epoch)
        np.testing.assert_array_equal(result.predict(task.X_val, t), alone.predict(task.X_val))
    assert result.input_length == 48 and isinstance(result.model, models.FineTunedNets)
    assert all(p.requires_grad for p in result.model.parameters())  # whole networks again, for counts and exports
    view = result.task_view(1)
    assert models.count_parameters(view.model) == models.count_parameters(result.model.nets[1])
    assert [h["epoch"] for h in result.history if h["stage"] == 1] == [1, 2, 3]
    assert sorted(h["dataset"] for h in result.history if h["stage"] == 2) == ["A", "A", "B", "B"]


def test_a_trial_reports_every_dataset_each_epoch_and_resumes_in_either_stage(tasks):
    config = {**FFN, "ft_train": "all", "lr_schedule": "cosine", "augment": True, "augment_noise": 0.1}

    def run(resume_state=None):
        reports = []
        fit("ft-ffn", config, tasks, max_epochs=4, seed=0, resume_state=resume_state,
            # Saved at once, as the trainable does: the state holds the live tensors.
            on_epoch=lambda epoch, metrics, state: reports.append((epoch, metrics, _saved(state()))))
        return reports

    reports = run()
    assert [e for e, _, _ in reports] == [1, 2, 3, 4] == [m["epoch"] for _, m, _ in reports]
    assert [m["stage"] for _, m, _ in reports] == [1, 1, 2, 2]
    assert all({"val_accuracy/A", "val_accuracy/B", "val_accuracy"} <= set(m) for _, m, _ in reports)
    assert np.all(np.diff([m["train_seconds"] for _, m, _ in reports]) > 0)
    for stop in (1, 2, 3):  # stage 1 half-way, at its end, stage 2 half-way
        state = torch.load(reports[stop - 1][2], weights_only=True)
        resumed = run(state)
        assert [e for e, _, _ in resumed] == list(range(stop + 1, 5))
        for (_, expected, _), (_, got, _) in zip(reports[stop:], resumed):
            assert got["val_loss"] == pytest.approx(expected["val_loss"], abs=1e-6)
            assert got["val_accuracy/B"] == expected["val_accuracy/B"]


def _saved(state) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return io.BytesIO(buffer.getvalue())


# ------------------------------------------------------------------------ no leakage
def test_no_validation_or_test_row_is_ever_trained_on(session_tiny_dataset_dir):
    """Marker rows (every sample 777 in the scored fold, 555 in the inner validation part) in
    every dataset of each rerun job: no training batch of either stage holds one; the
    evaluation passes do (so the markers are really there); normalisers fit training rows only."""
    datasets = [load_dataset(session_tiny_dataset_dir / f"{n}.csv") for n in ("T2", "T3")]
    jobs = plan_jobs(datasets, seed=0, folds=2, repeats=1, val_fraction=0.15, test_fraction=0.15,
                     inner_val_fraction=0.15)
    seen = {True: [], False: []}  # training mode -> inputs of every trunk forward

    def record(module, args):
        if isinstance(module, FFNTrunk):
            seen[module.training].append(args[0].detach().numpy().copy())

    config = {**FFN, "normalisation": "none", "ft_train": "all"}
    for job in jobs:
        marked = []
        for d, val, test in zip(datasets, job.val, job.test):
            X = d.X.copy()
            X[test], X[val] = 777.0, 555.0
            marked.append(dataclasses.replace(d, X=X))
        seen[True].clear(), seen[False].clear()
        handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
        try:
            rows = run_job("ft-ffn", config, marked, job, max_epochs=4, patience=4, threads=1)
        finally:
            handle.remove()
        trained, evaluated = np.concatenate(seen[True]), np.concatenate(seen[False])
        assert len(trained) > 0
        for value in (777.0, 555.0):
            assert not np.any(np.all(trained == value, axis=1)), (job.kind, job.fold, value)
            assert np.any(np.all(evaluated == value, axis=1)), (job.kind, job.fold, value)
        assert {r["dataset"] for r in rows} == {"T2", "T3"}
    # Normalisation is fitted on the training rows alone (global: their mean and std).
    job = jobs[1]
    tasks = [TaskData.from_rows(d, tr, va) for d, tr, va in zip(datasets, job.train, job.val)]
    result = fit("ft-ffn", {**FFN, "normalisation": "global"}, tasks, max_epochs=2, seed=0)
    for t, task in enumerate(tasks):
        assert result.normalisers[t].state() == Normaliser("global").fit(task.X_train).state()


# ------------------------------------------------------------------------ bundles
@pytest.fixture(scope="module")
def ft_bundles(session_tiny_dataset_dir, tmp_path_factory):
    """The export's final model of ft-ffn on T2 (48 samples) and a T5 of 40 (resampled to 48),
    and one bundle per dataset written as the export writes them."""
    data_dir = tmp_path_factory.mktemp("ft_data")
    X, y = make_waveforms(2, TINY_ROWS_PER_CLASS, length=40, seed=5)
    _write_csv(data_dir / "T5.csv", [f"s{i}" for i in range(40)] + ["unit"],
               ([f"{v:.2f}" for v in x] + [str(int(c) + 3)] for x, c in zip(X, y)))
    datasets = [load_dataset(session_tiny_dataset_dir / "T2.csv"), load_dataset(data_dir / "T5.csv")]
    config = {**FFN, "family": "ft-ffn", "ft_train": "last_block", "batch_norm": True}
    final = model_bundle.train_final("ft-ffn", config, datasets, seed=0, max_epochs=6, patience=6,
                                     metric="accuracy", inner_val_fraction=0.15)
    root = tmp_path_factory.mktemp("ft_results") / "Fine-Tuned MTL FFN"
    full, one = fake_scores([d.name for d in datasets])
    plan = {}
    for bundle_datasets, bundle_final in model_bundle.bundles_of(final, datasets):
        plan.update(model_bundle.plan_bundle(model_bundle.bundle_folder(root, bundle_datasets), family="ft-ffn",
                                             approach=root.name, config=config, datasets=bundle_datasets,
                                             final=bundle_final, full_split=full, one_split=one,
                                             source={"experiment": "none"}, stage1_datasets=datasets))
    atomic.write_all(plan)
    return root, final, datasets


def test_each_dataset_gets_a_single_task_bundle_that_predicts_like_the_fine_tuned_network(ft_bundles):
    root, final, datasets = ft_bundles
    assert sorted(p.name for p in (root / "Model").iterdir()) == ["T2", "T5"]
    for t, dataset in enumerate(datasets):
        folder = root / "Model" / dataset.name
        model = model_bundle.load_model(folder)
        assert model.tasks == [dataset.name] and model.family == "ft-ffn"
        expected = model_bundle.task_logits(final.fit.model, final.fit.normalisers[t], final.fit.input_length,
                                            dataset.X, t)
        assert np.array_equal(model.logits(dataset.X), expected)
        in_memory = np.array(dataset.class_names)[final.fit.predict(dataset.X, t)]
        assert model.predict(dataset.X).tolist() == in_memory.tolist()
        assert np.mean(in_memory == np.array(dataset.class_names)[dataset.y]) > 0.8
        onnx = model_bundle.load_model(folder, backend="onnx")
        assert np.abs(onnx.logits(dataset.X) - model.logits(dataset.X)).max() <= 1e-4
        meta = model.metadata
        assert meta["input_length"] == 48 and meta["tasks"][0]["input_length"] == dataset.length
        assert meta["tasks"][0]["temperature"] == pytest.approx(final.temperatures[t])
        assert [d["name"] for d in meta["training"]["stage1"]["datasets"]] == ["T2", "T5"]
        assert (meta["training"]["epochs_run"], meta["training"]["best_epoch"]) == final.fit.task_epochs[t]
    # Both come from one stage-1 trunk: "last_block" froze the first layer, so it is the same in both.
    w2 = torch.load(root / "Model" / "T2" / "weights.pt", weights_only=True)
    w5 = torch.load(root / "Model" / "T5" / "weights.pt", weights_only=True)
    assert torch.equal(w2["trunk.layers.0.weight"], w5["trunk.layers.0.weight"])


def test_predict_command_reads_an_ft_bundle(ft_bundles, tmp_path, capsys):
    root, final, datasets = ft_bundles
    out_path = tmp_path / "predictions.csv"
    assert main(["predict", str(root / "Model" / "T5"), str(datasets[1].path), "--out", str(out_path)]) == 0
    frame = pd.read_csv(out_path, dtype={"label": str, "true_label": str})
    expected = np.array(datasets[1].class_names)[final.fit.predict(datasets[1].X, 1)]
    assert frame["label"].tolist() == expected.tolist()
    assert "accuracy" in capsys.readouterr().out


# ------------------------------------------------------------------------ names, space, CLI
def test_results_tree_names():
    assert results_tree.approach_names("ft-cnn") == ("Fine-Tuned MTL CNN", "Fine_Tuned_MTL_CNN")
    assert results_tree.approach_names("ft-ffn") == ("Fine-Tuned MTL FFN", "Fine_Tuned_MTL_FFN")
    assert results_tree.approach_names("ft-lstm", ensemble=True) == ("Fine-Tuned MTL LSTM Ensemble",
                                                                     "Fine_Tuned_MTL_LSTM_Ensemble")


@pytest.mark.parametrize("family", ["ft-ffn", "ft-cnn", "ft-lstm"])
def test_sampled_configs_fine_tune_only_what_they_say(family):
    """Configs from the family's space: a stage-2 step gives a gradient to exactly the
    parameters ft_train names, and the stage-1 part is the mtl-* twin's space."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    parts = set()
    for _ in range(12):
        trial = study.ask()
        assert search_spaces.get_space(family, ["A2", "A12"])(trial) == {"family": family}
        config = trial.params
        # Without its ft_* keys, the config is one the twin's space asks for, key for key.
        stage1 = {k: v for k, v in config.items() if not k.startswith("ft_")}
        replay = optuna.trial.FixedTrial(stage1)
        search_spaces.get_space(models.multitask_twin(family), ["A2", "A12"])(replay)
        assert replay.params == stage1
        net = models.build_model(family, config, 48, [2, 6])
        start = finetune.warm_start(net, config, [0, 1], 48)
        start.model.train()
        loss = sum(start.model(torch.randn(4, 48), t).sum() for t in range(2))
        loss.backward()
        trainable = {id(p) for g in start.param_groups for p in g["params"]}
        graded = {id(p) for p in start.model.parameters() if p.grad is not None}
        assert graded == trainable, config["ft_train"]
        heads = {id(p) for n in start.model.nets for p in n.heads.parameters()}
        everything = {id(p) for p in start.model.parameters()}
        expected = {"head": heads, "all": everything}.get(config["ft_train"])
        if expected is None:  # the whole trunk when it has one layer with weights (a 1-layer LSTM)
            assert heads < trainable <= everything
        else:
            assert trainable == expected
        parts.add(config["ft_train"])
    assert parts == set(models.FINETUNE_PARTS)


@pytest.mark.parametrize("argv, message", [
    (["ft-cnn", "T2"], "ft-cnn fine-tunes per dataset a network trained on several datasets"),
    (["ft-ffn", "all", "--max-epochs", "1", "--grace-period", "1"], "--max-epochs must be at least 2"),
])
def test_bad_ft_command_lines(tiny_dataset_dir, tmp_path, capsys, argv, message):
    code = main(["tune", *argv, "--data-dir", str(tiny_dataset_dir), "--storage", str(tmp_path / "rr")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rr").exists()


@pytest.mark.slow
def test_ft_tune_and_export_end_to_end(tiny_dataset_dir, tmp_path):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tuning", "tune", "ft-ffn", "all", "--data-dir", str(tiny_dataset_dir),
         "--storage", str(tmp_path / "rr"), "--results-dir", str(tmp_path / "results"), "--samples", "2",
         "--max-epochs", "4", "--grace-period", "1", "--folds", "2", "--repeats", "1", "--num-cpus", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    root = tmp_path / "results" / "Fine-Tuned MTL FFN"
    best = pd.read_csv(root / "Best Performance Results" / "Fine_Tuned_MTL_FFN_full_split_metrics_best_config.csv")
    assert sorted(best["dataset"]) == ["T2", "T3"] and (best["family"] == "ft-ffn").all()
    assert {"ft_train", "ft_lr_ratio", "ft_epoch_share", "loss_weighting"} <= set(best.columns)
    for name, k in (("T2", 2), ("T3", 3)):
        frame = pd.read_csv(root / "Individual Dataset Results" / f"Fine_Tuned_MTL_FFN_full_split_metrics_{name}.csv")
        assert list(frame.columns) == results_tree.individual_columns(k) and len(frame) == 2
        bundle = model_bundle.load_model(root / "Model" / name)
        assert bundle.tasks == [name] and bundle.family == "ft-ffn"
    system = pd.read_csv(root / "Full Split Results" / "Fine_Tuned_MTL_FFN_full_split_metrics_system.csv")
    assert set(system["dataset"]) == {"T2", "T3", "overall"}
    assert "search_spaces/mtl_ffn.py" in (root / "Run Config" / "search_space_ft-ffn.py").read_text()
    # Every trial reported 4 iterations at most (both stages), each dataset's score each time.
    experiment = next((tmp_path / "rr").glob("ft-ffn-T2+T3-*"))
    for trial in sorted(experiment.glob("trial_*")):
        lines = [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line]
        assert lines and [r["training_iteration"] for r in lines] == [r["epoch"] for r in lines]
        assert all({"val_accuracy/T2", "val_accuracy/T3", "stage"} <= set(r) for r in lines)
        if len(lines) == 4:
            assert [r["stage"] for r in lines][-1] == 2
