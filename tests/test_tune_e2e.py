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

from tuning.export import results_tree as tree
from tuning.search.run_record import RUN_RECORD
from tuning.settings import TuneSettings

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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
def test_asha_runs_two_trials_at_once(cli_run, experiment):
    # Two trials trained at the same time: their spans (start of the first epoch to the
    # report of the last, as Tune logged them) overlap.
    spans = []
    for trial in experiment.glob("trial_*"):
        results = read_results(trial)
        spans.append((results[0]["timestamp"] - results[0]["time_this_iter_s"], results[-1]["timestamp"]))
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:]), spans
    # Two trial actors (worker processes) ran trials.
    pids = {read_results(trial)[0]["pid"] for trial in experiment.glob("trial_*")}
    assert len(pids) >= 2


@pytest.mark.subprocess
def test_console_is_a_line_per_trial_then_the_summary(cli_run, experiment):
    result, _ = cli_run
    out, err = result.stdout, result.stderr
    lines = out.splitlines()
    trial_lines = [l for l in lines if re.match(r"^\[\d+/%d\] trial " % SAMPLES, l)]
    assert len(trial_lines) == SAMPLES, out
    for line in trial_lines:
        assert re.match(r"^\[\d+/\d+\] trial \w+: \d+ epochs?, best val_accuracy \d\.\d{4}, "
                        r"(stopped early by ASHA|ran to the end)$", line), line
    # The progress line: not a terminal here, so plain lines (at least the final one).
    assert re.search(r"^%d/%d trials done, 0 running \| best val_accuracy \d\.\d{4} \| " % (SAMPLES, SAMPLES),
                     out, re.MULTILINE), out
    # Nothing from Ray's tables or from the workers, during or after the search; the
    # export's summary is the last thing printed.
    assert "Checkpoint successfully created" not in out + err
    assert not re.search(r"^\(\w+ pid=", out + err, re.MULTILINE)
    assert "Trial status:" not in out and "started with configuration" not in out
    assert lines[-2].startswith("Results: ") and lines[-1].startswith("Model bundles "), lines[-3:]
    # One line per hyperparameter of the best config (about 27 for cnn) is most of it.
    assert len(lines) + len(err.splitlines()) <= 60, out + err
    # The log file inside the experiment folder, named in the summary: the same trial
    # lines, Tune's own log records and its trial table.
    log = re.search(r"^Log: (.+)$", out, re.MULTILINE)
    assert log and Path(log.group(1)) == experiment / "tune.log"
    logged = (experiment / "tune.log").read_text()
    assert all(line in logged for line in trial_lines)
    assert f"Number of trials: {SAMPLES}/{SAMPLES} ({SAMPLES} TERMINATED)" in logged
    assert "INFO ray.tune" in logged


@pytest.mark.subprocess
def test_export_takes_a_relative_experiment_path(ray_2cpu, experiment, monkeypatch):
    from tuning.cli import main

    monkeypatch.chdir(experiment.parent.parent)
    relative = os.path.join("ray_results", experiment.name)
    assert main(["export", relative, "--results-dir", "results-again", "--folds", "2", "--repeats", "1"]) == 0
    assert (experiment.parent.parent / "results-again" / "Classic CNN PyTorch" / "Individual Dataset Results"
            / "Classic_CNN_full_split_metrics_T3.csv").is_file()


def test_search_hands_its_best_trial_and_data_to_the_export(ray_2cpu, module_tiny_dataset_dir, tmp_path):
    import shutil

    import pandas as pd

    from tuning.search.driver import load_for_tuning, run_groups
    from tuning.errors import InputError
    from tuning.export.exporter import best_trial_from_outcome, export_experiment

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(module_tiny_dataset_dir / "T2.csv", data / "T2.csv")
    settings = TuneSettings(data_dir=str(data), storage=str(tmp_path / "rr"), samples=2, max_epochs=2,
                            grace_period=1, folds=2, repeats=1, verbose=0)
    (datasets,) = load_for_tuning("ffn", "T2", settings)  # as `tune` does: validated once
    (outcome,) = run_groups("ffn", [datasets], settings)
    # What the export would otherwise read back is gone: the data file, Tune's state and
    # every trial's results.
    (data / "T2.csv").unlink()
    for path in [*outcome.path.glob("experiment_state-*.json"), *outcome.path.glob("trial_*")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(InputError):
        export_experiment(outcome.path, tmp_path / "from_disk", progress=False)
    summary = export_experiment(outcome.path, tmp_path / "results", progress=False,
                                best=best_trial_from_outcome(outcome), datasets=datasets)
    assert summary.best.trial_id == outcome.best_trial_id and summary.best.config == outcome.best_config
    best = pd.read_csv(tmp_path / "results" / "Classic FFN PyTorch" / "Best Performance Results"
                       / "Classic_FFN_best_performers.csv", dtype={"trial_id": str})
    assert best["trial_id"].tolist() == [outcome.best_trial_id]
    assert best["objective_value"].tolist() == pytest.approx([outcome.best_metrics["val_accuracy"]])


def test_run_tuning_python_api(ray_2cpu, module_tiny_dataset_dir, tmp_path):
    from tuning.search.driver import run_tuning

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
    # The best trial's own log gives that value under the shared rule (tuning.search.best_trial:
    # with 2 epochs, the mean of both), and the best epoch is its best epoch.
    from tuning.search.best_trial import score_trial

    history = read_results(outcome.path / f"trial_{outcome.best_trial_id}")
    assert score_trial(history, "val_accuracy", "max").score == pytest.approx(outcome.best_metrics["val_accuracy"])
    at_best = [r for r in history if r["training_iteration"] == outcome.best_epoch][0]
    assert max(r["val_accuracy"] for r in history) == pytest.approx(at_best["val_accuracy"])


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
