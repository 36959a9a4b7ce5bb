"""Stop a search at once when its storage folder fails, saying which folder and why.

A search writes into ``--storage`` all the time: each trial's checkpoint and results every
epoch, Tune's experiment state every second. When that folder fills up, turns read-only or
disappears (an unmounted network share), Tune would go on: retry every trial that failed to
save (using up its retries), log the failed state saves and carry on, or end in a traceback.
:class:`StorageGuard`, a Tune callback, checks instead, at most once a second and whenever a
trial fails, that the experiment folder is still there with its run record, writable, and
not full; on the first problem it raises :class:`tuning.errors.MachineError`, which ends
``fit`` (the driver translates any other error that escapes ``fit`` with
:func:`storage_problem` too). What the search had saved stays as it was, and ``--resume``
continues from there once the folder is back.

Tune itself rewrites its experiment state in the storage folder in place, every second
(``experiment_state-*.json``, the searcher's state, ``tuner.pkl``: uploaded from its staging
folder, not written to a temporary name), so a disk that fills during that upload leaves
them cut short and the experiment could not be resumed. The guard therefore keeps a copy
of each state file, written all or nothing (:mod:`tuning.atomic`) right after Tune saved it,
in ``<experiment>/.spikesort-state/``; :func:`repair_saved_state`, before ``--resume``,
puts that copy back when the folder's own is missing or does not read (the copy is never
older than the folder's).

Only local (and mounted network) folders are checked; for cloud URIs Ray's own retries apply.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ray import tune

from tuning import atomic
from tuning.errors import MachineError, disk_full, machine_error, storage_lost
from tuning.search import failures
from tuning.search.run_record import RUN_RECORD

CHECK_PERIOD_S = 1.0
MIN_FREE_BYTES = 256 * 1024
"""Below this much free space the search stops before a write fails half-way: Tune
rewrites its experiment state in place (not to a temporary name), so a write that fails
for want of space would leave it cut short."""
BACKUP_FOLDER = ".spikesort-state"
KEPT = "the search stopped; what it had saved (its state and each trial's last checkpoint) is kept"


def storage_problem(experiment_path: str | Path, storage: str | Path,
                    error: BaseException | None = None) -> MachineError | None:
    """The MachineError of the storage folder (``storage``, holding ``experiment_path``),
    or None when the folder is fine and ``error`` (if given) is not the machine's."""
    if "://" in str(experiment_path):
        return None
    experiment = Path(experiment_path)
    if not (experiment / RUN_RECORD).is_file():
        return storage_lost(storage, f"the experiment folder {experiment.name} is gone from it during the "
                                     f"search (an unmounted share, a moved folder?)", KEPT)
    if not os.access(experiment, os.W_OK):
        return storage_lost(storage, f"the experiment folder {experiment.name} became read-only during the search",
                            KEPT)
    try:
        usage = shutil.disk_usage(experiment)
    except OSError:
        usage = None
    if usage is not None and usage.total > 0 and usage.free < MIN_FREE_BYTES:  # total 0: a mount with no sizes
        return disk_full(storage, checkpoint_bytes(experiment), kept=KEPT)
    if error is not None:
        return machine_error(error, storage, checkpoint_bytes(experiment), kept=KEPT)
    return None


def checkpoint_bytes(experiment: Path) -> int | None:
    """Bytes a trial's epoch adds to the storage folder: its largest checkpoint (None: none yet)."""
    sizes = [sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file())
             for checkpoint in experiment.glob("trial_*/checkpoint_*")]
    return max(sizes) if sizes else None


class StorageGuard(tune.Callback):
    """Tune callback: raises MachineError when the storage folder fails (see the module)."""

    def __init__(self, experiment_path: str | Path, storage: str | Path):
        self.experiment_path, self.storage = str(experiment_path), str(storage)
        self._reset()

    def _reset(self) -> None:
        self._checked_at = 0.0
        self._staging: Path | None = None  # Tune's staging folder of the experiment, on this machine
        self._backed_up: dict[str, bytes] = {}

    def __getstate__(self):  # pickled with the experiment (tuner.pkl): no run-time state
        return {"experiment_path": self.experiment_path, "storage": self.storage}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self._reset()

    def get_state(self):
        """Tune calls this right after it saved its experiment state into its staging
        folder (and before uploading it): back that state up. Nothing to restore: None."""
        self.back_up_state()
        return None

    def on_step_end(self, iteration: int, trials, **info):
        if self._staging is None and trials:
            # A trial's staging folder (Trial.local_path) sits in the experiment's.
            self._staging = Path(trials[0].local_path).parent
        if time.monotonic() - self._checked_at >= CHECK_PERIOD_S:
            self._checked_at = time.monotonic()
            self.check()

    def on_trial_recover(self, iteration: int, trials, trial, **info):
        self._after_failure(trial)

    def on_trial_error(self, iteration: int, trials, trial, **info):
        self._after_failure(trial)

    def check(self) -> None:
        problem = storage_problem(self.experiment_path, self.storage)
        if problem is not None:
            raise problem

    def back_up_state(self) -> None:
        """Copy the state files Tune just saved (those changed since the last copy) into
        the backup folder, all or nothing; skipped when the folder is full or gone (the
        check then says so)."""
        if "://" in self.experiment_path or self._staging is None or not self._staging.is_dir():
            return
        experiment = Path(self.experiment_path)
        if not (experiment / RUN_RECORD).is_file():  # never re-create a vanished experiment folder
            return
        try:
            changed = {f.name: f.read_bytes() for f in self._staging.iterdir()
                       if f.is_file() and not f.name.startswith("tmp")}
            changed = {name: content for name, content in changed.items() if self._backed_up.get(name) != content}
            if changed:
                atomic.write_all({experiment / BACKUP_FOLDER / name: content for name, content in changed.items()})
                self._backed_up.update(changed)
        except OSError:  # MachineError included
            pass

    def _after_failure(self, trial) -> None:
        """A trial that failed writing its checkpoint: stop now, before Tune retries it."""
        self.check()
        failure = failures.last_failure(trial)
        if failure is not None and failure.kind == "disk_full":
            raise disk_full(self.storage, checkpoint_bytes(Path(self.experiment_path)), kept=KEPT)
        if failure is not None and failure.kind == "storage":
            raise storage_lost(self.storage, failure.why.removeprefix("the storage folder "), KEPT)


def repair_saved_state(experiment_path: str | Path) -> list[str]:
    """Before resuming: when a state file of Tune's in the experiment folder is missing or
    cut short (a full disk during its upload), put back the guard's copy of every state
    file that differs from it; the names put back ([] if none, or no backup). A folder
    whose state reads well is left as it is."""
    if "://" in str(experiment_path):
        return []
    experiment = Path(experiment_path)
    backup = experiment / BACKUP_FOLDER
    if not backup.is_dir():
        return []
    copies = {copy.name: copy.read_bytes() for copy in sorted(backup.iterdir()) if copy.is_file()}
    if all(_readable(experiment / name) for name in copies):
        return []
    plan = {experiment / name: content for name, content in copies.items()
            if not (experiment / name).is_file() or (experiment / name).read_bytes() != content}
    atomic.write_all(plan)
    return [path.name for path in plan]


def _readable(path: Path) -> bool:
    """Whether a state file is there and whole: JSON parses; a pickle's opcodes run to
    its end (read, not executed: nothing is imported or built)."""
    import json
    import pickletools

    try:
        content = path.read_bytes()
        if path.suffix == ".json":
            json.loads(content)
        elif path.suffix == ".pkl":
            for _ in pickletools.genops(content):
                pass
        return bool(content)
    except Exception:  # missing, cut short, or unreadable for any other reason
        return False
