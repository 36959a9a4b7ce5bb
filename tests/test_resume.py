"""Interrupting a search and continuing it, with real processes.

One search (``python -m tuning tune`` as a subprocess, on a local Ray runtime of its own)
is interrupted twice at points the test chooses, not at times it guesses: the trainable's
hold hook (``SPIKESORT_TUNE_HOLD_AT``) parks every trial after it has checkpointed a given
epoch, the test waits until Tune's saved experiment state shows that, then

1. sends SIGINT to the driver's process group (Ctrl-C in a terminal): the CLI reports the
   partial search with the exact resume command, exits 130 and exports nothing;
2. runs that command, parks the trials one epoch later and SIGKILLs the driver's process
   group (and the Ray workers it left, which run in sessions of their own);
3. runs the resume command again, to the end, with the export.

Then every trial has finished once, each interrupted trial continued from its checkpoint
(each epoch in its history once), every trial's history equals an uninterrupted training
of its configuration, and the export names the best of those.

Each run gets its own Ray temp dir (``RAY_TMPDIR``, short: Ray's socket paths must stay
under 107 characters); every Ray process it starts inherits that variable, which is how
the test finds and stops exactly its own processes. It never calls ``ray stop``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tuning.export.results_tree import TEXT_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SAMPLES, EPOCHS = 4, 4
TUNE_ARGS = ["ffn", "T2", "--samples", str(SAMPLES), "--max-epochs", str(EPOCHS),
             "--grace-period", str(EPOCHS), "--folds", "2", "--repeats", "1", "--num-cpus", "2"]
WAIT_LIMIT_S = 300  # a guard against hanging, not a speed requirement

pytestmark = pytest.mark.cluster


# ---------------------------------------------------------------------------------------
# Processes: start the CLI in a session of its own; stop it and every Ray process it left
# ---------------------------------------------------------------------------------------


def pids_with_env(name: str, value: str) -> list[int]:
    """Processes whose environment holds ``name=value`` exactly (this user's, readable)."""
    entry = f"{name}={value}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if entry in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


class Run:
    """One ``python -m tuning tune`` subprocess with its own Ray temp dir."""

    def __init__(self, args: list[str], env: dict, logs: Path, name: str, command: list[str] | None = None):
        """``python -m tuning tune ARGS``, or ``command`` as given (a printed one)."""
        self.ray_tmpdir = tempfile.mkdtemp(prefix="sst-", dir="/tmp")
        self.env = {**env, "RAY_TMPDIR": self.ray_tmpdir}
        self.stdout_path, self.stderr_path = logs / f"{name}.out", logs / f"{name}.err"
        command = command or [sys.executable, "-m", "tuning", "tune", *args]
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(command, cwd=REPO,
                                         env=self.env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=WAIT_LIMIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"tune did not finish within {WAIT_LIMIT_S} s:\n{self.output()[-3000:]}")

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the driver and the Ray processes ray.init started
        except ProcessLookupError:
            pass

    def kill(self) -> list[int]:
        """SIGKILL the driver's group, then what its runtime left (workers: own sessions)."""
        self.signal_group(signal.SIGKILL)
        self.proc.wait()
        return self.stop_leftovers()

    def stop_leftovers(self) -> list[int]:
        """SIGKILL every process with this run's RAY_TMPDIR until none is left; their PIDs."""
        stopped: list[int] = []
        deadline = time.monotonic() + 60
        while (left := pids_with_env("RAY_TMPDIR", self.ray_tmpdir)) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            stopped += [pid for pid in left if pid not in stopped]
            time.sleep(0.1)
        return stopped

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.stop_leftovers()
        shutil.rmtree(self.ray_tmpdir, ignore_errors=True)


@pytest.fixture
def runs():
    """Start CLI runs; whatever happens, stop them and their Ray processes afterwards."""
    started: list[Run] = []

    def start(*args, **kwargs) -> Run:
        run = Run(*args, **kwargs)
        started.append(run)
        return run

    yield start
    for run in started:
        run.cleanup()


def wait_until(condition, what: str, run: Run):
    deadline = time.monotonic() + WAIT_LIMIT_S
    while True:
        value = condition()
        if value:
            return value
        if run.proc.poll() is not None:
            pytest.fail(f"tune exited ({run.proc.returncode}) before {what}:\n{run.output()[-3000:]}")
        if time.monotonic() > deadline:
            run.kill()
            pytest.fail(f"no {what} within {WAIT_LIMIT_S} s:\n{run.output()[-3000:]}")
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------
# Reading an experiment folder
# ---------------------------------------------------------------------------------------


def experiment_dir(storage: Path, prefix: str = "ffn-T2-") -> Path | None:
    found = [p for p in storage.glob(prefix + "*") if p.is_dir()]
    assert len(found) <= 1, f"expected one experiment, found {found}"
    return found[0] if found else None


def _newest_trial_data(exp: Path) -> list[tuple[dict, dict]]:
    """(trial, run metadata) of each trial in Tune's newest saved experiment state."""
    # The newest session's file by name, as Tune picks it (a restore copies older ones
    # again, so their modification times say nothing).
    files = sorted(exp.glob("experiment_state-*.json"))
    if not files:
        return []
    try:
        data = json.loads(files[-1].read_text())
    except (OSError, ValueError):  # caught while Tune rewrites it: read again later
        return []
    return [(json.loads(trial_json), json.loads(run_metadata)) for trial_json, run_metadata in data["trial_data"]]


def _newest_checkpoint(meta: dict) -> int:
    """Index of the newest checkpoint a trial's saved run metadata would restore from (-1:
    none). The checkpoint manager is saved cloudpickled, as hex; its checkpoint paths end in
    ``checkpoint_<index>``."""
    manager = meta.get("checkpoint_manager", {})
    raw = manager.get("value", "") if isinstance(manager, dict) else str(manager)
    try:
        text = bytes.fromhex(raw).decode("latin-1")
    except ValueError:
        text = str(raw)
    return max((int(i) for i in re.findall(r"checkpoint_(\d{6})", text)), default=-1)


def _last_iteration(meta: dict) -> int:
    found = re.search(r"'training_iteration': (\d+)", str(meta.get("last_result", "")))
    return int(found.group(1)) if found else 0


def saved_state(exp: Path) -> dict:
    """Tune's newest saved experiment state: trial id -> (status, last training_iteration, failures)."""
    return {trial["trial_id"]: (trial["status"], _last_iteration(meta), int(meta.get("num_failures", 0)))
            for trial, meta in _newest_trial_data(exp)}


def held_and_saved(hold: Path, exp_storage: Path, epoch: int, n: int, prefix: str = "ffn-T2-"):
    """The ids of ``n`` trials parked at ``epoch`` once Tune's saved state shows them there."""
    held = sorted(p.stem for p in hold.glob("*.held"))
    exp = experiment_dir(exp_storage, prefix)
    if len(held) < n or exp is None:
        return None
    # The result of ``epoch`` and its checkpoint (index epoch - 1) both in one saved state: a
    # driver killed now resumes each trial after ``epoch``. The result alone is not enough: a
    # state saved between the two made a resumed trial redo the epoch (seen once in CI).
    saved = {trial["trial_id"]: (_last_iteration(meta), _newest_checkpoint(meta))
             for trial, meta in _newest_trial_data(exp)}
    if all(saved.get(t) == (epoch, epoch - 1) for t in held):
        return held
    return None


def trial_histories(exp: Path) -> dict[str, pd.DataFrame]:
    """Each trial folder's result.json, as Tune wrote it, one row per report."""
    histories = {}
    for folder in sorted(exp.glob("trial_*")):
        lines = (folder / "result.json").read_text().splitlines()
        histories[folder.name.removeprefix("trial_")] = pd.DataFrame([json.loads(l) for l in lines if l])
    return histories


def uninterrupted_histories(data_dir: Path, configs: dict[str, dict]) -> dict[str, list[dict]]:
    """Each configuration trained in this process without a break: the reference run."""
    import torch

    from tuning.data.readers import load_datasets
    from tuning.search.driver import TuneSettings
    from tuning.data.splits import tuning_split
    from tuning.training import TaskData, fit

    settings = TuneSettings()
    (dataset,) = load_datasets("T2", data_dir)
    split = tuning_split(dataset.y, 0, settings.val_fraction, settings.test_fraction)
    tasks = [TaskData.from_rows(dataset, split.train, split.val)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a trial with one CPU
    try:
        out = {}
        for trial_id, config in configs.items():
            rows = []
            fit("ffn", config, tasks, max_epochs=EPOCHS, seed=0, metric="accuracy",
                on_epoch=lambda epoch, metrics, state: rows.append(dict(metrics)))
            out[trial_id] = rows
        return out
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------


def test_ctrl_c_then_kill_9_then_resume_finishes_every_trial_once(tiny_dataset_dir, tmp_path, runs):
    storage, results, hold, logs = (tmp_path / n for n in ("ray_results", "results", "hold", "logs"))
    hold.mkdir()
    logs.mkdir()
    args = [*TUNE_ARGS, "--data-dir", str(tiny_dataset_dir), "--storage", str(storage),
            "--results-dir", str(results)]
    base_env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TUNE_GLOBAL_CHECKPOINT_S")}
    base_env["RAY_USAGE_STATS_ENABLED"] = "0"

    # 1. Ctrl-C once two trials have checkpointed epoch 2.
    first = runs(args, {**base_env, "SPIKESORT_TUNE_HOLD_AT": f"2:{hold}"}, logs, "1-ctrl-c")
    parked = wait_until(lambda: held_and_saved(hold, storage, 2, 2), "two trials parked at epoch 2", first)
    first.signal_group(signal.SIGINT)
    assert first.wait() == 130, first.output()[-3000:]
    first.stop_leftovers()
    err = first.stderr_path.read_text()
    resume = f" -m tuning tune {' '.join(args)} --resume"
    assert "is incomplete" in err and "not exporting" in err, err[-3000:]
    assert resume in err, err[-3000:]  # the exact command (no quoting needed for these paths)
    assert shlex.split(continue_command(err))[0] in (sys.executable, os.path.relpath(sys.executable, REPO))
    assert not results.exists(), "an interrupted search must not be exported"
    exp = experiment_dir(storage)
    assert all((exp / f"trial_{t}" / "checkpoint_000001").is_dir() for t in parked)

    # 2. Resume; kill -9 the driver once the same trials have checkpointed epoch 3.
    for marker in hold.glob("*.held"):
        marker.unlink()
    started = time.monotonic()
    second = runs([*args, "--resume"], {**base_env, "SPIKESORT_TUNE_HOLD_AT": f"3:{hold}"}, logs, "2-kill")
    parked_again = wait_until(lambda: held_and_saved(hold, storage, 3, 2), "two trials parked at epoch 3",
                              second)
    resume_to_epoch_3_s = time.monotonic() - started
    assert parked_again == parked  # the interrupted trials, continued (not new ones)
    left_behind = second.kill()

    # 3. Resume to the end, with the export.
    started = time.monotonic()
    third = runs([*args, "--resume"], base_env, logs, "3-finish")
    assert third.wait() == 0, third.output()[-3000:]
    resume_to_end_s = time.monotonic() - started
    assert f"Resuming {exp}" in third.stdout_path.read_text()
    print(f"\nresume timings: to epoch 3 of the parked trials {resume_to_epoch_3_s:.1f} s, "
          f"to the end with export {resume_to_end_s:.1f} s; Ray processes left by kill -9 "
          f"and stopped by PID: {len(left_behind)}")

    # Every trial finished, none twice: as many trials as samples, distinct configurations,
    # no trial folder that the saved state does not know (a trial suggested again).
    state = saved_state(exp)
    assert len(state) == SAMPLES, state
    assert {status for status, _, _ in state.values()} == {"TERMINATED"}, state
    assert sorted(p.name for p in exp.glob("trial_*")) == sorted(f"trial_{t}" for t in state)
    configs = {t: json.loads((exp / f"trial_{t}" / "params.json").read_text()) for t in state}
    assert len({json.dumps(c, sort_keys=True) for c in configs.values()}) == SAMPLES

    # Each trial trained every epoch exactly once; the interrupted ones continued from
    # their checkpoints (epoch 3 after the checkpoint of 2, epoch 4 after that of 3).
    histories = trial_histories(exp)
    for trial_id, history in histories.items():
        assert history["epoch"].tolist() == list(range(1, EPOCHS + 1)), (trial_id, history["epoch"].tolist())
        assert history["training_iteration"].tolist() == list(range(1, EPOCHS + 1))

    # ... and their histories equal an uninterrupted training of the same configuration.
    reference = uninterrupted_histories(tiny_dataset_dir, configs)
    for trial_id, rows in reference.items():
        got = histories[trial_id]
        for key in ("val_loss", "val_accuracy", "train_loss"):
            assert got[key].tolist() == pytest.approx([r[key] for r in rows], rel=1e-5, abs=1e-7), \
                (trial_id, key, "interrupted" if trial_id in parked else "not interrupted")

    # The export after resuming names the best configuration of those uninterrupted runs,
    # by the project's one best-trial rule.
    from tuning.search.best_trial import pick_best, score_trial

    best_value = pick_best(reference, "val_accuracy", "max").score
    best_ids = {t for t, rows in reference.items()
                if score_trial(rows, "val_accuracy", "max").score == pytest.approx(best_value, abs=1e-12)}
    best_file = results / "Classic FFN PyTorch" / "Best Performance Results" / "Classic_FFN_best_performers.csv"
    best = pd.read_csv(best_file, dtype=TEXT_COLUMNS)
    assert best["dataset"].tolist() == ["T2"]
    row = best.iloc[0]
    assert row["trial_id"] in best_ids
    assert row["objective_value"] == pytest.approx(best_value, rel=1e-5)  # CSV: 6 digits
    assert bool(row["search_complete"]) and int(row["n_trials"]) == SAMPLES
    for key, value in configs[row["trial_id"]].items():
        if key != "family":
            assert row[key] == (pytest.approx(value, rel=1e-5) if isinstance(value, float) else value), key  # CSV: 6 digits
    for folder, name in (("Full Split Results", "Classic_FFN_full_split_metrics_system.csv"),
                         ("Full Split Results", "Classic_FFN_one_split_metrics_system.csv"),
                         ("Individual Dataset Results", "Classic_FFN_full_split_metrics_T2.csv")):
        assert (results / "Classic FFN PyTorch" / folder / name).is_file(), name


def continue_command(stderr: str) -> str:
    """The command printed after "Continue with:"."""
    lines = stderr.splitlines()
    return next(lines[i + 1] for i, line in enumerate(lines) if line.endswith("Continue with:")).strip()


@pytest.mark.slow
def test_ctrl_c_stops_every_dataset_and_the_printed_command_finishes_them(tiny_dataset_dir, tmp_path, runs):
    """T2,T3,T4 in one command: Ctrl-C while T3's trials are half-way. The command stops
    there (T4 never starts), exits 130 and prints a command; that command, run as
    printed, resumes T3, starts T4 and leaves the finished (exported) T2 alone."""
    storage, results, hold, logs = (tmp_path / n for n in ("ray_results", "results", "hold", "logs"))
    hold.mkdir()
    logs.mkdir()
    shutil.copy(tiny_dataset_dir / "T2.csv", tiny_dataset_dir / "T4.csv")
    args = ["ffn", "T2,T3,T4", "--samples", "2", "--max-epochs", "2", "--grace-period", "2", "--folds", "2",
            "--repeats", "1", "--num-cpus", "2", "--data-dir", str(tiny_dataset_dir), "--storage", str(storage),
            "--results-dir", str(results)]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TUNE_GLOBAL_CHECKPOINT_S")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    individual = results / "Classic FFN PyTorch" / "Individual Dataset Results"

    first = runs(args, {**env, "SPIKESORT_TUNE_HOLD_AT": f"1:{hold}", "SPIKESORT_TUNE_HOLD_ONLY": "ffn-T3-"},
                 logs, "1-ctrl-c")
    wait_until(lambda: held_and_saved(hold, storage, 1, 2, prefix="ffn-T3-"), "T3's trials parked at epoch 1", first)
    first.signal_group(signal.SIGINT)
    assert first.wait() == 130, first.output()[-3000:]
    first.stop_leftovers()
    err = first.stderr_path.read_text()
    assert (individual / "Classic_FFN_full_split_metrics_T2.csv").is_file()  # T2 finished and exported
    assert not (individual / "Classic_FFN_full_split_metrics_T3.csv").exists()
    assert experiment_dir(storage, "ffn-T4-") is None, "T4 must not start after Ctrl-C"
    command = continue_command(err)
    assert " -m tuning tune ffn T3,T4 --samples 2 " in command and command.endswith(" --resume"), command
    t2, t3 = experiment_dir(storage, "ffn-T2-"), experiment_dir(storage, "ffn-T3-")

    second = runs([], env, logs, "2-continue", command=shlex.split(command))
    assert second.wait() == 0, second.output()[-3000:]
    out = second.stdout_path.read_text()
    assert f"Resuming {t3}" in out and "Nothing to resume: starting a new experiment." in out, out[-3000:]
    assert "ffn on T2" not in out and str(t2) not in out  # T2 untouched
    assert experiment_dir(storage, "ffn-T2-") == t2 and experiment_dir(storage, "ffn-T4-") is not None
    for name in ("T2", "T3", "T4"):
        assert (individual / f"Classic_FFN_full_split_metrics_{name}.csv").is_file(), name
    state = saved_state(t3)
    assert len(state) == 2 and {s for s, _, _ in state.values()} == {"TERMINATED"}, state
    for trial_id, history in trial_histories(t3).items():
        assert history["training_iteration"].tolist() == [1, 2], trial_id  # continued, not restarted
