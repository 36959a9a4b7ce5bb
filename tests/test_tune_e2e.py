"""End to end: ``python -m tuning tune`` on a tiny dataset, its TensorBoard logs, parallel
trials under ASHA, the Python API, and what ``--smoke`` shrinks.

The CLI run is shared by the module (4 trials of at most 3 epochs, 2 folds x 1 repeat,
2 CPUs); it starts and stops its own local Ray runtime.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tuning import results_tree as tree
from tuning.driver import RUN_RECORD, TuneSettings

SAMPLES, MAX_EPOCHS = 4, 3


@pytest.fixture(scope="module")
def cli_run(module_tiny_dataset_dir, tmp_path_factory):
    """(completed process, working folder) of one CLI tune + export of cnn on T3."""
    work = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    command = [sys.executable, "-m", "tuning", "tune", "cnn", "T3",
               "--data-dir", str(module_tiny_dataset_dir), "--storage", str(work / "ray_results"),
               "--results-dir", str(work / "results"), "--samples", str(SAMPLES),
               "--max-epochs", str(MAX_EPOCHS), "--grace-period", "1", "--folds", "2", "--repeats", "1",
               "--num-cpus", "2"]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    return result, work


@pytest.fixture(scope="module")
def experiment(cli_run) -> Path:
    result, _ = cli_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    match = re.search(r"^Experiment folder: (.+)$", result.stdout, re.MULTILINE)
    assert match, result.stdout[-3000:]
    return Path(match.group(1))


def read_results(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]


def test_cli_tune_prints_best_config_and_experiment(cli_run, experiment):
    result, work = cli_run
    out = result.stdout
    assert "Traceback" not in out + result.stderr
    assert experiment.is_dir() and experiment.parent == work / "ray_results"
    assert experiment.name.startswith("cnn-T3-")
    # The best configuration, one "key: value" line per hyperparameter.
    block = out.split("Best configuration:\n", 1)[1].split("Experiment folder:", 1)[0]
    config = dict(line.strip().split(": ", 1) for line in block.strip().splitlines())
    assert config["family"] == "cnn"
    assert {"cnn_n_blocks", "lr", "batch_size", "optimizer", "normalisation"} <= set(config)
    for block_index in range(int(config["cnn_n_blocks"])):
        assert f"cnn_channels_b{block_index}" in config
    # It is the config of a trial of this experiment.
    trial_configs = [read_results(d)[0]["config"] for d in experiment.glob("trial_*")]
    assert any({k: str(v) for k, v in c.items()} == config for c in trial_configs)
    match = re.search(r"^== cnn on T3: (\d+) trials, (\d+) stopped early by ASHA, (\d+) errored$", out, re.MULTILINE)
    assert match and match.groups()[::2] == (str(SAMPLES), "0")
    # The TensorBoard command points at the experiment folder.
    logdir = re.search(r"^TensorBoard: tensorboard --logdir (\S+)$", out, re.MULTILINE)
    assert logdir and Path(logdir.group(1)) == experiment and Path(logdir.group(1)).is_dir()
    # The run record an export needs, and the export that followed the search.
    record = json.loads((experiment / RUN_RECORD).read_text())
    assert record["family"] == "cnn" and [d["name"] for d in record["datasets"]] == ["T3"]
    assert record["settings"]["samples"] == SAMPLES and record["metric"] == "val_accuracy"
    assert record["datasets"][0]["label_map"] == {"unit_a": 0, "unit_b": 1, "unit_c": 2}
    individual = (work / "results" / "Classic CNN PyTorch" / "Individual Dataset Results"
                  / "Classic_CNN_full_split_metrics_T3.csv")
    assert individual.is_file()
    assert individual.read_text().splitlines()[0].split(",") == tree.individual_columns(3)
    assert "Results: " in out
    # Nothing was written outside the paths given on the command line.
    assert sorted(p.name for p in work.iterdir()) == ["ray_results", "results"]


def test_the_export_leaves_a_bundle_that_predict_uses(cli_run, experiment, module_tiny_dataset_dir, tmp_path):
    _, work = cli_run
    bundle = work / "results" / "Classic CNN PyTorch" / "Model" / "T3"
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json", "model.onnx", "weights.pt"]
    out = tmp_path / "predictions.csv"
    result = subprocess.run([sys.executable, "-m", "tuning", "predict", str(bundle),
                             str(module_tiny_dataset_dir / "T3.csv"), "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Predicted 180 spikes with Classic CNN PyTorch (T3)" in result.stdout and "accuracy" in result.stdout
    assert len(out.read_text().splitlines()) == 181


def test_every_trial_logs_val_accuracy_to_tensorboard(experiment):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trials = sorted(experiment.glob("trial_*"))
    assert len(trials) == SAMPLES
    for trial in trials:
        reported = read_results(trial)
        assert 1 <= len(reported) <= MAX_EPOCHS
        events = list(trial.glob("events.out.tfevents.*"))
        assert events, f"no TensorBoard file in {trial}"
        accumulator = EventAccumulator(str(trial), size_guidance={"scalars": 0})
        accumulator.Reload()
        tags = [tag for tag in accumulator.Tags()["scalars"] if "val_accuracy" in tag]
        assert tags, accumulator.Tags()["scalars"]
        tag = min(tags, key=len)  # the objective itself, not a per-task variant
        scalars = accumulator.Scalars(tag)
        assert [s.step for s in scalars] == [r["training_iteration"] for r in reported]
        assert [s.value for s in scalars] == pytest.approx([r["val_accuracy"] for r in reported])


def test_asha_runs_two_trials_at_once(cli_run, experiment):
    result, _ = cli_run
    # Ray's own status line: both CPUs held by trials at the same time.
    assert re.search(r"Logical resource usage: 2\.0/2 CPUs", result.stdout), result.stdout[-3000:]
    # Two trial actors (worker processes) ran trials.
    pids = {read_results(trial)[0]["pid"] for trial in experiment.glob("trial_*")}
    assert len(pids) >= 2


def test_run_tuning_python_api(ray_2cpu, module_tiny_dataset_dir, tmp_path):
    from tuning.driver import run_tuning

    outcomes = run_tuning("ffn", "T2", data_dir=str(module_tiny_dataset_dir), storage=str(tmp_path / "rr"),
                          samples=3, max_epochs=2, grace_period=1, folds=2, repeats=1, verbose=0)
    assert ray_2cpu.is_initialized()  # the caller's runtime is left running
    assert len(outcomes) == 1
    outcome = outcomes[0]
    assert outcome.family == "ffn" and outcome.datasets == ["T2"]
    assert outcome.complete and outcome.n_trials == 3 and outcome.n_errored == 0
    assert outcome.best_config["family"] == "ffn" and "lr" in outcome.best_config
    assert 1 <= outcome.best_epoch <= 2
    assert 0.0 <= outcome.best_metrics["val_accuracy"] <= 1.0
    assert outcome.path.parent == tmp_path / "rr" and (outcome.path / RUN_RECORD).is_file()
    # The best trial's own log holds that value at that epoch.
    history = read_results(outcome.path / f"trial_{outcome.best_trial_id}")
    at_best = [r for r in history if r["training_iteration"] == outcome.best_epoch][0]
    assert at_best["val_accuracy"] == pytest.approx(outcome.best_metrics["val_accuracy"])
    assert max(r["val_accuracy"] for r in history) == pytest.approx(outcome.best_metrics["val_accuracy"])


def test_smoke_shrinks_the_effective_settings():
    big = TuneSettings(samples=30, max_epochs=30, grace_period=3, folds=5, repeats=3, smoke=True)
    small = big.effective()
    assert (small.samples, small.max_epochs, small.grace_period, small.folds, small.repeats) == (4, 4, 1, 3, 1)
    assert small.metric == big.metric and small.seed == big.seed and small.storage == big.storage
    small.validate()
    # Already smaller values are kept; without --smoke nothing changes.
    tiny = TuneSettings(samples=2, max_epochs=2, grace_period=1, folds=2, repeats=1, smoke=True).effective()
    assert (tiny.samples, tiny.max_epochs, tiny.folds) == (2, 2, 2)
    plain = TuneSettings(samples=30, max_epochs=30, folds=5, repeats=3)
    assert plain.effective() == plain


def test_smoke_flag_reaches_the_settings():
    from tuning.cli import build_parser, settings_from_args

    args = build_parser().parse_args(["tune", "cnn", "A2", "--smoke", "--samples", "50"])
    settings = settings_from_args(args)
    assert settings.smoke and settings.samples == 50
    effective = settings.effective()
    assert (effective.samples, effective.max_epochs, effective.repeats) == (4, 4, 1)
