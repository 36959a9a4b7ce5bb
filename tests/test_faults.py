"""When the machine fails, not the input: a full disk, a killed worker, Ray's memory monitor,
a storage folder that turns read-only or disappears in the middle of a search.

Each fault is injected for real into ``python -m tuning`` subprocesses:

* a full disk: a small tmpfs mounted on a folder of the test (where this process may mount,
  as root may) and filled to the last byte; elsewhere a file-size limit in the command's
  process (``RLIMIT_FSIZE``, SIGXFSZ ignored so that a write fails with EFBIG) for the
  commands that start no Ray (Ray's own files would hit the limit too);
* a killed worker: ``kill -9`` of the trial's worker process, by the PID its hold file gives;
* Ray's memory monitor: a node threshold (``RAY_memory_usage_threshold``) below what the
  machine already uses, so the monitor kills every trial's worker;
* a read-only storage folder: ``chmod -R a-w`` (as root, the search runs without the
  capability that ignores file modes, so that the modes apply to it);
* a vanished storage folder: the storage folder is a bind mount, unmounted mid-search
  (as an unmounted network share) and mounted again.

Each test checks the one ``error:`` line, exit code 75, that nothing already there changed
(the results tree, the predictions, the experiment's saved state) and that the command the
line prints finishes the work once the fault is gone. The searches use the interruption
tests' helpers (tests/test_resume.py): the trainable's hold hook parks every trial at a known
epoch, with its checkpoint saved, before the fault is injected.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from test_resume import (  # noqa: F401 (runs: the fixture that starts and stops CLI runs)
    REPO, experiment_dir, held_and_saved, runs, saved_state, trial_histories, wait_until)

EXIT_MACHINE_FAILURE = 75
SMALL_DISK_SIZE = "32m"
FILE_SIZE_LIMIT = 2048  # bytes: what the fallback lets a file grow to
def search(epochs: int = 4) -> list[str]:
    """Two trials at once (2 CPUs) of ``epochs`` epochs each (none stopped early), 2x1 folds."""
    return ["--samples", "2", "--max-epochs", str(epochs), "--grace-period", str(epochs), "--folds", "2",
            "--repeats", "1", "--num-cpus", "2"]
APPROACH = "Classic FFN PyTorch"


# ---------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------


def can_mount() -> bool:
    probe = Path(tempfile.mkdtemp(prefix="sst-mount-"))
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True)
        if done.returncode == 0:
            subprocess.run(["umount", str(probe)], check=True)
        return done.returncode == 0
    except FileNotFoundError:
        return False
    finally:
        probe.rmdir()


@functools.lru_cache(maxsize=None)
def mounting() -> bool:
    """Whether the tests may mount (``SPIKESORT_TEST_NO_MOUNT=1``: behave as if not, to try the
    fallbacks). Probed on first use, not on import: collecting the module (the fast tier does)
    starts no process."""
    return can_mount() and not os.environ.get("SPIKESORT_TEST_NO_MOUNT")


# A string condition is evaluated when a test is set up, so deselected tests never probe.
needs_mounting = pytest.mark.skipif("not mounting()", reason="mounting a tmpfs or a bind mount is not permitted here")


class SmallDisk:
    """A folder that runs out of room on demand: a tmpfs of SMALL_DISK_SIZE mounted on it
    (where mounting is permitted), filled to the last byte by :meth:`fill`; elsewhere a
    plain folder, and :meth:`fill` makes :meth:`preexec` give the command a file-size limit."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True)
        self.tmpfs = mounting() and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_SIZE}", "tmpfs", str(folder)]).returncode == 0
        self.filler = folder / "filler"
        self.full = False

    @property
    def no_room(self) -> str:
        """What the error line says: the disk full, or (the fallback) the file-size limit."""
        return "the disk is full" if self.tmpfs else "a file would exceed the file-size limit"

    def fill(self) -> None:
        self.full = True
        if self.tmpfs:
            try:
                with open(self.filler, "wb") as stream:
                    while True:
                        stream.write(b"\0" * 65536)
                        stream.flush()
            except OSError:
                pass
            usage = shutil.disk_usage(self.folder)
            assert usage.free == 0, (usage, sorted(self.folder.rglob("*")))

    def free(self) -> None:
        self.full = False
        self.filler.unlink(missing_ok=True)

    def preexec(self):
        """For ``subprocess``: the file-size limit of the fallback while full (None: no limit)."""
        if self.tmpfs or not self.full:
            return None

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
            resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
        return limit

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.folder)])


@pytest.fixture
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path / "small")
    yield disk
    disk.close()


@pytest.fixture
def small_tmpfs(small_disk):
    if not small_disk.tmpfs:
        pytest.skip("needs a tmpfs (mounting not permitted): Ray's own files would hit a file-size limit")
    return small_disk


def without_file_mode_override() -> list[str]:
    """A command prefix under which ``chmod`` binds this user (root ignores file modes)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a chmod-ed folder would stay writable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all"]


# ---------------------------------------------------------------------------------------
# Running the CLI and reading what it printed
# ---------------------------------------------------------------------------------------


def cli(args: list[str], *, preexec=None, env: dict | None = None, timeout: int = 600,
        command: list[str] | None = None) -> subprocess.CompletedProcess:
    """``python -m tuning ARGS`` (or ``command``) from the repository, with a Ray temp dir of its own."""
    ray_tmp = tempfile.mkdtemp(prefix="sst-", dir="/tmp")  # short: Ray's socket paths
    full_env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TUNE_GLOBAL_CHECKPOINT_S")}
    full_env.update(RAY_TMPDIR=ray_tmp, RAY_USAGE_STATS_ENABLED="0", **(env or {}))
    try:
        return subprocess.run(command or [sys.executable, "-m", "tuning", *args], cwd=REPO, env=full_env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              preexec_fn=preexec)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def the_error_line(stderr: str) -> tuple[str, str]:
    """The one ``error:`` line (no traceback beside it): (what it says, the command it prints)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    said, command = lines[0].split(", then continue with: ")
    return said, command


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------
# Which errors are the machine's (tuning/errors.py: the one translation)
# ---------------------------------------------------------------------------------------


def test_only_the_machines_os_errors_become_a_machine_error(tmp_path):
    from ray.exceptions import RayTaskError

    from tuning.errors import MachineError, as_machine_error, machine_error

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a" / "results.csv"))
    found = as_machine_error(full)
    assert isinstance(found, MachineError) and found.remedy == "free some space"
    usage = shutil.disk_usage(tmp_path)
    assert str(found).startswith(f"{tmp_path / 'a'}: the disk is full (")  # the nearest folder that exists
    assert f" free of {usage.total / 2 ** 30:.1f} GiB" in str(found)
    assert str(found).endswith(f"; the command stopped while writing {tmp_path / 'a' / 'results.csv'}")
    read_only = as_machine_error(OSError(errno.EROFS, "Read-only file system", "/mnt/share/x"))
    assert str(read_only) == "/mnt/share: cannot be written (Read-only file system); " \
                             "the command stopped while writing /mnt/share/x"
    for other in (OSError(errno.ENOENT, "No such file or directory", "x.csv"), PermissionError(errno.EACCES, "no")):
        assert as_machine_error(other) is None  # bad input, handled where it is read or checked
    # A trial's error carries the worker's exception (Ray wraps it): found through the wrapper.
    try:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    except OSError as worker_error:
        wrapped = RayTaskError("train", "traceback text", worker_error)
    quota = machine_error(wrapped, tmp_path, 3 * 2 ** 20, kept="nothing changed")
    assert str(quota).startswith(f"{tmp_path}: the disk quota is used up (")
    assert str(quota).endswith("; this step needed about 3.0 MiB); nothing changed")
    assert machine_error(RuntimeError("a bug"), tmp_path) is None


# ---------------------------------------------------------------------------------------
# A full disk, for commands without Ray: predict, import
# ---------------------------------------------------------------------------------------


@pytest.mark.subprocess  # mounts a small tmpfs (mount, umount)
def test_predict_into_a_full_disk_keeps_the_old_predictions_and_the_printed_command_writes_them(
        cnn_bundle, session_tiny_dataset_dir, small_disk, tmp_path):
    folder, _, _ = cnn_bundle
    out = small_disk.folder / "predictions.csv"
    first = cli(["predict", str(folder), str(session_tiny_dataset_dir / "T3.csv"), "--out", str(out),
                 "--no-progress"])
    assert first.returncode == 0, first.stderr[-3000:]
    before = out.read_bytes()
    fewer = tmp_path / "fewer.csv"  # a second input, so the continued command's output differs
    fewer.write_text("".join((session_tiny_dataset_dir / "T3.csv").read_text().splitlines(True)[:51]))

    small_disk.fill()
    failed = cli(["predict", str(folder), str(fewer), "--out", str(out), "--no-progress"],
                 preexec=small_disk.preexec())
    assert failed.returncode == EXIT_MACHINE_FAILURE, failed.stderr[-3000:]
    said, command = the_error_line(failed.stderr)
    assert said.startswith(f"error: {small_disk.folder}: {small_disk.no_room} (")
    # What it needed: more than it had written when the disk filled (nothing, on a tmpfs filled to the last byte).
    assert re.search(r" free of [\d.]+ [KMGT]?i?B(; this step needed more than \d[\d.]* [KMGT]?i?B)?\); "
                     r"nothing already there was changed\. Free some space$", said), said
    assert out.read_bytes() == before  # the old predictions, whole
    assert sorted(p.name for p in small_disk.folder.iterdir()) == sorted(
        ["predictions.csv"] + (["filler"] if small_disk.tmpfs else []))  # no temporary left

    small_disk.free()
    again = cli([], command=shlex.split(command))
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(pd.read_csv(out)) == 50  # the rows of the second input


@pytest.mark.subprocess  # mounts a small tmpfs (mount, umount)
@pytest.mark.filterwarnings("ignore:The extractor is not serializable")  # a generated recording's provenance
def test_import_into_a_full_disk_keeps_the_old_dataset_and_the_printed_command_writes_it(small_disk, tmp_path):
    pytest.importorskip("spikeinterface")
    import spikeinterface.core as sc

    recording, truth = sc.generate_ground_truth_recording(
        durations=[10.0], sampling_frequency=20_000.0, num_channels=4, num_units=2, seed=5,
        generate_sorting_kwargs=dict(firing_rates=6.0, refractory_period_ms=4.0))
    recording = recording.save(folder=tmp_path / "recording", verbose=False)
    analyzer = sc.create_sorting_analyzer(truth, recording, format="binary_folder", folder=tmp_path / "analyzer",
                                          sparse=False)
    analyzer.compute(["random_spikes", "templates"], verbose=False)
    csv = small_disk.folder / "M1.csv"
    args = ["import", str(tmp_path / "analyzer"), str(csv), "--folds", "2"]
    first = cli([*args, "--max-spikes", "30"])
    assert first.returncode == 0, first.stderr[-3000:]
    before = tree_bytes(small_disk.folder)
    assert set(before) == {"M1.csv", "M1.json"}

    small_disk.fill()
    failed = cli([*args, "--max-spikes", "20"], preexec=small_disk.preexec())
    assert failed.returncode == EXIT_MACHINE_FAILURE, failed.stderr[-3000:]
    said, command = the_error_line(failed.stderr)
    assert said.startswith(f"error: {small_disk.folder}: {small_disk.no_room} (")
    assert "this step needed about " in said and said.endswith("; nothing already there was changed. Free some space")
    small_disk.free()
    assert tree_bytes(small_disk.folder) == before  # both files as they were, no temporary

    again = cli([], command=shlex.split(command))
    assert again.returncode == 0, again.stderr[-3000:]
    assert pd.read_csv(csv)["unit"].value_counts().tolist() == [20, 20]


# ---------------------------------------------------------------------------------------
# A full disk under the results tree (the export) and under the search's storage
# ---------------------------------------------------------------------------------------


@pytest.mark.cluster
def test_export_into_a_full_disk_keeps_the_tree_and_the_printed_command_exports(
        tiny_dataset_dir, small_tmpfs, tmp_path):
    results = small_tmpfs.folder / "results"
    storage = tmp_path / "ray_results"
    tuned = cli(["tune", "ffn", "T2", *search(2), "--data-dir", str(tiny_dataset_dir), "--storage", str(storage),
                 "--results-dir", str(results)])
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    before = tree_bytes(results)
    experiment = experiment_dir(storage)

    small_tmpfs.fill()
    failed = cli(["export", str(experiment), "--results-dir", str(results), "--num-cpus", "2"])
    assert failed.returncode == EXIT_MACHINE_FAILURE, failed.stderr[-3000:]
    said, command = the_error_line(failed.stderr)
    # the export writes under results/<Approach> and results/References: the line names their common folder
    assert said.startswith(f"error: {results}: the disk is full (0 B free of "), said
    assert said.endswith("; nothing already there was changed. Free some space")
    assert tree_bytes(results) == before  # every file as it was; no temporary, no backup left

    small_tmpfs.free()
    assert command.endswith(shlex.join(["export", str(experiment), "--results-dir", str(results), "--num-cpus", "2"]))
    again = cli([], command=shlex.split(command))
    assert again.returncode == 0, again.stderr[-3000:]
    commands = (results / APPROACH / "Run Config" / "command.txt").read_text()
    assert re.search(r"^export: \S+ export ", commands, re.MULTILINE), commands  # written by this export
    assert set(tree_bytes(results)) == set(before)


@pytest.mark.cluster
def test_a_full_storage_disk_stops_the_search_then_resume_finishes_it_through_a_killed_worker(
        tiny_dataset_dir, small_tmpfs, tmp_path, runs):
    """The storage fills while two trials are parked at epoch 2: one line, exit 75, the saved
    state intact. The printed command (after space is freed) resumes; there a trial's worker
    is killed with kill -9 at epoch 3: Tune retries it from its checkpoint and the console
    says why. Every trial trains every epoch once."""
    storage, results, hold, logs = small_tmpfs.folder / "ray_results", tmp_path / "results", \
        tmp_path / "hold", tmp_path / "logs"
    hold.mkdir()
    logs.mkdir()
    args = ["ffn", "T2", *search(), "--data-dir", str(tiny_dataset_dir), "--storage", str(storage),
            "--results-dir", str(results)]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TUNE_GLOBAL_CHECKPOINT_S")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"

    first = runs(args, {**env, "SPIKESORT_TUNE_HOLD_AT": f"2:{hold}"}, logs, "1-disk-full")
    wait_until(lambda: held_and_saved(hold, storage, 2, 2), "two trials parked at epoch 2", first)
    small_tmpfs.fill()
    (hold / "release").touch()
    assert first.wait() == EXIT_MACHINE_FAILURE, first.output()[-3000:]
    said, command = the_error_line(first.stderr_path.read_text())
    assert said.startswith(f"error: {storage}: the disk is full (0 B free of "), said
    assert re.search(r"; this step needed about [\d.]+ [KM]iB\); the search stopped; what it had saved \(its state "
                     r"and each trial's last checkpoint\) is kept\. Free some space$", said), said
    assert command.endswith(" --resume") and f" -m tuning tune {shlex.join(args)}" in command
    exp = experiment_dir(storage)
    assert {epochs for _, epochs, _ in saved_state(exp).values()} == {2}  # the state as saved at epoch 2
    # Tune uploads its experiment state in place, every second: a disk that fills during the
    # upload leaves the file cut short. As it would be:
    (state_file,) = sorted(exp.glob("experiment_state-*.json"))
    state_file.write_bytes(state_file.read_bytes()[:1000])

    small_tmpfs.free()
    for marker in hold.glob("*.held"):
        marker.unlink()
    (hold / "release").unlink()
    second = runs([], {**env, "SPIKESORT_TUNE_HOLD_AT": f"3:{hold}"}, logs, "2-resume-kill",
                  command=shlex.split(command))
    parked = wait_until(lambda: held_and_saved(hold, storage, 3, 2), "the trials parked at epoch 3", second)
    killed = parked[0]
    _, _, pid = (hold / f"{killed}.held").read_text().split()
    os.kill(int(pid), signal.SIGKILL)
    (hold / "release").touch()
    assert second.wait() == 0, second.output()[-3000:]
    out = second.stdout_path.read_text()
    assert f"Resuming {exp}" in out and "Put back Tune's saved state from its copy (experiment_state-" in out, out
    assert re.search(rf"^trial {killed} failed after 3 epochs \(failure 1\); Tune restarts it from its last "
                     rf"checkpoint\. Cause: its worker process \(PID {pid}\) died: killed from outside", out,
                     re.MULTILINE), out
    assert re.search(r"^Trial failures \(.*\): 1 worker process died$", out, re.MULTILINE), out
    for trial_id, history in trial_histories(exp).items():
        assert history["epoch"].tolist() == [1, 2, 3, 4], trial_id  # each epoch once, none lost
    best = pd.read_csv(results / APPROACH / "Best Performance Results" / "Classic_FFN_best_performers.csv")
    assert bool(best["search_complete"].iloc[0]) and int(best["n_trials"].iloc[0]) == 2


# ---------------------------------------------------------------------------------------
# The storage folder turns read-only, then disappears
# ---------------------------------------------------------------------------------------


@pytest.mark.cluster
@needs_mounting
def test_a_storage_folder_that_turns_read_only_then_vanishes_stops_the_search_and_resume_finishes_it(
        tiny_dataset_dir, tmp_path, runs):
    share, storage, hold, logs = (tmp_path / n for n in ("share", "ray_results", "hold", "logs"))
    for folder in (share, storage, hold, logs):
        folder.mkdir()
    subprocess.run(["mount", "--bind", str(share), str(storage)], check=True)  # the "network share"
    try:
        prefix = without_file_mode_override()
        args = ["ffn", "T2", *search(), "--data-dir", str(tiny_dataset_dir), "--storage", str(storage), "--no-export"]
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TUNE_GLOBAL_CHECKPOINT_S")}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        tune = [*prefix, sys.executable, "-m", "tuning", "tune"]

        # 1. Read-only while the trials are parked at epoch 1.
        first = runs(args, {**env, "SPIKESORT_TUNE_HOLD_AT": f"1:{hold}"}, logs, "1-read-only",
                     command=[*tune, *args])
        wait_until(lambda: held_and_saved(hold, storage, 1, 2), "two trials parked at epoch 1", first)
        exp = experiment_dir(storage)
        subprocess.run(["chmod", "-R", "a-w", str(storage)], check=True)
        (hold / "release").touch()
        assert first.wait() == EXIT_MACHINE_FAILURE, first.output()[-3000:]
        said, command = the_error_line(first.stderr_path.read_text())
        assert said == (f"error: {storage}: the experiment folder {exp.name} became read-only during the search; "
                        f"the search stopped; what it had saved (its state and each trial's last checkpoint) is "
                        f"kept. Bring the folder back (mount it again, make it writable)"), said
        assert command.endswith(" --resume")
        subprocess.run(["chmod", "-R", "u+w", str(storage)], check=True)
        assert {epochs for _, epochs, _ in saved_state(exp).values()} == {1}

        # 2. The printed command resumes; the share is unmounted while the trials are parked at epoch 2.
        for marker in hold.glob("*"):
            marker.unlink()
        second = runs([], {**env, "SPIKESORT_TUNE_HOLD_AT": f"2:{hold}"}, logs, "2-vanished",
                      command=[*prefix, *shlex.split(command)])
        wait_until(lambda: held_and_saved(hold, storage, 2, 2), "two trials parked at epoch 2", second)
        subprocess.run(["umount", "-l", str(storage)], check=True)
        (hold / "release").touch()
        assert second.wait() == EXIT_MACHINE_FAILURE, second.output()[-3000:]
        said, command = the_error_line(second.stderr_path.read_text())
        assert said.startswith(f"error: {storage}: the experiment folder {exp.name} is gone from it during the "
                               f"search (an unmounted share, a moved folder?); the search stopped;"), said
        subprocess.run(["mount", "--bind", str(share), str(storage)], check=True)  # the share is back
        assert {epochs for _, epochs, _ in saved_state(exp).values()} == {2}

        # 3. The printed command finishes the search: every trial, every epoch once.
        third = runs([], env, logs, "3-finish", command=[*prefix, *shlex.split(command)])
        assert third.wait() == 0, third.output()[-3000:]
        state = saved_state(exp)
        assert len(state) == 2 and {status for status, _, _ in state.values()} == {"TERMINATED"}, state
        for trial_id, history in trial_histories(exp).items():
            assert history["epoch"].tolist() == [1, 2, 3, 4], trial_id
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(share)])
        subprocess.run(["umount", "-l", str(storage)], capture_output=True)


# ---------------------------------------------------------------------------------------
# Ray's memory monitor
# ---------------------------------------------------------------------------------------


@pytest.mark.cluster
def test_trials_killed_by_rays_memory_monitor_are_named_in_the_summary_and_resume_finishes_them(
        tiny_dataset_dir, tmp_path):
    """A memory threshold below what the machine already uses: the monitor kills every trial's
    worker, each retry too. The console says why each trial is retried, the summary names the
    memory monitor and the memory per trial, the command ends with exit 75 (no trial to
    export); the printed command, with the threshold back to Ray's default, finishes it."""
    storage, results = tmp_path / "ray_results", tmp_path / "results"
    args = ["tune", "ffn", "T2", *search(2), "--data-dir", str(tiny_dataset_dir), "--storage", str(storage),
            "--results-dir", str(results)]
    killed = cli(args, env={"RAY_memory_usage_threshold": "0.001"})
    assert killed.returncode == EXIT_MACHINE_FAILURE, killed.stdout[-3000:] + killed.stderr[-3000:]
    out = killed.stdout
    retries = re.findall(r"^trial \w+ failed after \d+ epochs? \(failure \d\); Tune restarts it from its last "
                         r"checkpoint\. Cause: Ray's memory monitor killed its worker: the node used ([\d.]+) of "
                         r"([\d.]+) GB, above the monitor's threshold of 0\.1%, a trial's worker used ([\d.]+) GB",
                         out, re.MULTILINE)
    assert len(retries) == 4, out  # 2 trials x 2 retries (FailureConfig(max_failures=2))
    assert all(float(used) < float(limit) for used, limit, _ in retries)
    summary = re.search(r"^Ray's memory monitor killed trial workers (\d+) time\(s\): a trial's worker used up to "
                        r"([\d.]+) GB; the node used [\d.]+ of [\d.]+ GB, above the monitor's threshold of 0\.1%\. ",
                        out, re.MULTILINE)
    assert summary and int(summary.group(1)) == 6, out
    # The summary covers all 6 kills; the console's retry lines the 4 that were retried (the last
    # kill of each trial is no retry), so its maximum is at least theirs.
    assert float(summary.group(2)) >= max(float(worker) for _, _, worker in retries)
    said, command = the_error_line(killed.stderr)
    assert said.startswith(f"error: {experiment_dir(storage)}: no trial reported a score; Ray's memory monitor "
                           f"killed trial workers 6 time(s)"), said
    assert not results.exists()

    finished = cli([], command=shlex.split(command))
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert re.search(r"^\[2/2\] trial \w+: 2 epochs, best val_accuracy", finished.stdout, re.MULTILINE)
    best = pd.read_csv(results / APPROACH / "Best Performance Results" / "Classic_FFN_best_performers.csv")
    assert bool(best["search_complete"].iloc[0])
