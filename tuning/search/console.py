"""What a search prints: one line per ended trial, a progress line, and a log file.

Ray Tune's own output (a configuration box and a result box for every trial, and every
worker's log lines, some arriving after the search has ended) runs to thousands of lines
in a 48-trial search. By default (``TuneSettings.verbose == 1``) a search instead:

* passes :class:`ConsoleReporter`, a ``tune.Callback`` (Tune's public interface for
  following a run, whatever output engine Tune uses), among its callbacks and runs Tune at
  ``verbose=0``. The reporter prints one line when a trial ends (id, epochs, its best score,
  stopped early by ASHA or run to the end, or errored), one when Tune retries a failed trial
  (and why: the worker was killed, Ray's memory monitor, the disk; :mod:`.failures`), and a
  progress line (trials done / running / total, best so far, elapsed, an estimate of the
  rest). On a terminal the progress line is redrawn in place (carriage return); elsewhere
  (a file, a pipe, a cluster job's log) it is a plain line every minute at first, then
  every tenth of the time elapsed, so a long search still prints only a few dozen;
* sends Tune's and Optuna's log records (``ray.tune``, ``ray.train``, ``ray.air``,
  ``optuna`` loggers) and a table of the trials (every few minutes and at the end) to
  ``tune.log`` in the experiment folder (:func:`search_output`);
* runs with Ray started as ``log_to_driver=False`` (:func:`tuning.search.ray_runtime.connect`):
  workers' output stays in Ray's session logs, named at the top of ``tune.log``, so
  nothing from a worker reaches the console, during or after the search.

At ``verbose=0`` Tune's legacy output engine prints nothing at all, so :func:`search_output`
selects it (``RAY_AIR_NEW_OUTPUT=0``) while the search runs; the console does not depend on
it. Should a Tune release drop that engine (the variable then does nothing), its new engine
at ``verbose=0`` still prints its experiment box and path at the start and a block per
failed trial; the console's own lines stay as they are (tested with the new engine).

``verbose=2`` (``--verbose``) gives Ray's own output back (its new engine, tables and
boxes, and worker output on the console), without this reporter; ``verbose=0`` prints
nothing during the search.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ray import tune

from tuning.search import failures

LOG_NAME = "tune.log"
TUNE_LOGGERS = ("ray.tune", "ray.train", "ray.air", "optuna")
ENDED = ("TERMINATED", "ERROR")
TTY_REDRAW_S = 1.0        # a terminal's progress line is redrawn at most this often
PLAIN_FIRST_PERIOD_S = 60.0  # without a terminal: a progress line every minute, then
PLAIN_PERIOD_FRACTION = 0.1  # ... every tenth of the time elapsed
TABLE_PERIOD_S = 300.0    # the trial table in the log file
QUIET_ENGINE = "0"
"""``RAY_AIR_NEW_OUTPUT`` while a quiet search runs: Tune's legacy engine, silent at
``verbose=0``. None leaves the variable alone (tests run the console under the new engine)."""


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def estimate_left_s(elapsed_s: float, epochs_this_run: int, ended_epochs: list[int],
                    running_epochs: list[int], n_total: int) -> float | None:
    """Seconds until the search ends, from its epoch rate so far; None before any estimate.

    A trial that has not ended is expected to train as many epochs as the trials that
    ended did on average (ASHA stops most of them early), at the rate of epochs per
    second of this run. Returns None until a trial has ended and an epoch was trained.
    """
    if not ended_epochs or epochs_this_run <= 0 or elapsed_s <= 0:
        return None
    per_trial = sum(ended_epochs) / len(ended_epochs)
    not_started = max(0, n_total - len(ended_epochs) - len(running_epochs))
    remaining = not_started * per_trial + sum(max(0.0, per_trial - e) for e in running_epochs)
    return remaining / (epochs_this_run / elapsed_s)


def progress_text(n_ended: int, n_running: int, n_total: int, best: str | None,
                  elapsed_s: float, left_s: float | None) -> str:
    parts = [f"{n_ended}/{n_total} trials done, {n_running} running"]
    parts.append(f"best {best}" if best else "no score yet")
    timing = f"{format_duration(elapsed_s)} elapsed"
    if n_ended < n_total and left_s is not None:
        timing += f", ~{format_duration(left_s)} left"
    parts.append(timing)
    return " | ".join(parts)


class ConsoleReporter(tune.Callback):
    """Tune callback: trial-end and retry lines, a progress line, a trial table in the log.

    ``metric``/``mode``: the objective (``val_accuracy``, ``max``); ``total``: trials the
    search asks for; ``max_epochs``: a trial that trained fewer was stopped early by the
    scheduler; ``log_path``: the log file (None: none). ``stream`` (default: standard
    output at the time of printing) and ``tty`` (default: whether it is a terminal) are
    for tests. Tune pickles its callbacks with the experiment (``tuner.pkl``), so the
    stream is never stored in the pickled state. Experiment folders written before this
    class became a callback hold a ``CLIReporter`` subclass of the same name (as
    ``tuning.console.ConsoleReporter``): it unpickles into this class and is replaced
    on ``--resume`` (:func:`tuning.search.driver.set_restored_output`).
    """

    def __init__(self, metric: str, mode: str, total: int, max_epochs: int,
                 log_path: str | Path | None = None, *, stream=None, tty: bool | None = None,
                 scheduler: str = "ASHA"):
        self.objective, self.objective_mode = metric, mode
        self.total, self.max_epochs, self.scheduler = total, max_epochs, scheduler
        self.log_path = str(log_path) if log_path else None
        self._stream, self._tty = stream, tty
        self._reset()

    def _reset(self) -> None:
        self._ended: set[str] = set()
        self._started_at: float | None = None
        self._epochs_at_start = 0
        self._last_check = 0.0
        self._next_plain_at = 0.0
        self._last_table_at = 0.0
        self._line_open = False

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_stream"] = None
        return state

    # -- Tune's interface -------------------------------------------------------------

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self._reset()

    def on_step_end(self, iteration: int, trials, **info):
        if time.monotonic() - self._last_check >= TTY_REDRAW_S:
            self.report(trials, done=False)

    def on_trial_complete(self, iteration: int, trials, trial, **info):
        self._trial_ended(trials, trial, errored=False)

    def on_trial_error(self, iteration: int, trials, trial, **info):
        self._trial_ended(trials, trial, errored=True)

    def on_trial_recover(self, iteration: int, trials, trial, **info):
        """Tune restarts a failed trial from its checkpoint (``FailureConfig``): say why."""
        self._start(trials)
        failure = failures.last_failure(trial)
        why = failure.why if failure else "unknown"
        self._emit(f"trial {trial.trial_id} failed after {plural(epochs_of(trial), 'epoch')} "
                   f"(failure {failures_of(trial)}); Tune restarts it from its last checkpoint. "
                   f"Cause: {why} (details: {error_file(trial)})")

    def on_experiment_end(self, trials, **info):
        self.report(trials, done=True)

    # -- What is printed ----------------------------------------------------------------

    def _start(self, trials) -> None:
        """On the first call of a run: note what a resumed search had already done."""
        if self._started_at is not None:
            return
        now = time.monotonic()
        self._started_at = now
        self._epochs_at_start = sum(epochs_of(t) for t in trials)
        finished = [t for t in trials if t.status in ENDED]
        self._ended.update(t.trial_id for t in finished)
        self._next_plain_at = now + PLAIN_FIRST_PERIOD_S
        self._last_table_at = now
        if finished:
            self._emit(f"{len(finished)} of {self.total} trials had already ended before this run")

    def _trial_ended(self, trials, trial, errored: bool) -> None:
        self._start(trials)
        if trial.trial_id in self._ended:
            return
        self._ended.add(trial.trial_id)
        self._emit(self.trial_line(trial, errored))
        self.report(trials, done=False)

    def report(self, trials, done: bool) -> None:
        """The progress line (and, now and then, the trial table in the log)."""
        self._start(trials)
        now = time.monotonic()
        self._last_check = now
        line = self.progress_line(trials, now)
        if self.tty:  # cut to the terminal's width: a wrapped line cannot be redrawn
            self._write(f"\r{line[:shutil.get_terminal_size().columns - 1]}\033[K")
            self._line_open = True
            if done:
                self._write("\n")
                self._line_open = False
                self._log(line)
        elif done or now >= self._next_plain_at:
            self._emit(line)
            elapsed = now - self._started_at
            self._next_plain_at = now + max(PLAIN_FIRST_PERIOD_S, PLAIN_PERIOD_FRACTION * elapsed)
        if self.log_path and (done or now - self._last_table_at >= TABLE_PERIOD_S):
            self._last_table_at = now
            self._log(self.trial_table(trials))

    def trial_line(self, trial, errored: bool = False) -> str:
        epochs = epochs_of(trial)
        prefix = f"[{len(self._ended)}/{self.total}] trial {trial.trial_id}"
        if errored or trial.status == "ERROR":
            failure = failures.last_failure(trial)
            cause = f": {failure.why}" if failure else ""
            return f"{prefix} errored after {plural(epochs, 'epoch')}{cause} (details: {error_file(trial)})"
        best = self.best_of(trial)
        score = f"best {self.objective} {best:.4f}" if best is not None else f"no {self.objective}"
        if epochs == 0:  # cut off by a time budget or Ctrl-C before its first report
            how = "ended before its first epoch"
        else:
            how = f"stopped early by {self.scheduler}" if epochs < self.max_epochs else "ran to the end"
        return f"{prefix}: {plural(epochs, 'epoch')}, {score}, {how}"

    def progress_line(self, trials, now: float) -> str:
        # Ended: what Tune reported as ended (a search stopped by Ctrl-C or a failure marks
        # the trials it cut off TERMINATED too, without reporting them).
        ended = [t for t in trials if t.trial_id in self._ended]
        running = [t for t in trials if t.status == "RUNNING" and t.trial_id not in self._ended]
        scores = [s for s in (self.best_of(t) for t in trials) if s is not None]
        best = None
        if scores:
            best = f"{self.objective} {(max if self.objective_mode == 'max' else min)(scores):.4f}"
        elapsed = now - (self._started_at or now)
        epochs_now = sum(epochs_of(t) for t in trials)
        left = estimate_left_s(elapsed, epochs_now - self._epochs_at_start,
                               [epochs_of(t) for t in ended], [epochs_of(t) for t in running], self.total)
        return progress_text(len(ended), len(running), self.total, best, elapsed, left)

    def trial_table(self, trials) -> str:
        """Every trial on a line (status, epochs, best score, configuration), for the log."""
        statuses: dict[str, int] = {}
        for trial in trials:
            statuses[trial.status] = statuses.get(trial.status, 0) + 1
        counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        lines = [f"Number of trials: {len(trials)}/{self.total} ({counts})"]
        for trial in sorted(trials, key=lambda t: t.trial_id):
            best = self.best_of(trial)
            score = f"{best:.4f}" if best is not None else "-"
            config = " ".join(f"{k}={v}" for k, v in sorted(trial.config.items()))
            lines.append(f"  {trial.trial_id} {trial.status:<10} {epochs_of(trial):>4} epochs "
                         f"{self.objective} {score:>7}  {config}")
        return "\n".join(lines)

    def best_of(self, trial) -> float | None:
        summary = trial.metric_analysis.get(self.objective)
        return None if not summary else float(summary[self.objective_mode])

    # -- Output -----------------------------------------------------------------------

    @property
    def stream(self):
        return self._stream or sys.stdout

    @property
    def tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _emit(self, line: str) -> None:
        """A line of its own, above a terminal's progress line."""
        self._write(("\r\033[K" if self._line_open else "") + line + "\n")
        self._line_open = False
        self._log(line)

    def _log(self, text: str) -> None:
        if not self.log_path:
            return
        try:
            with open(self.log_path, "a") as handle:
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        except OSError:
            pass  # a full or vanished storage folder: the console line stands; the guard reports it


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def failures_of(trial) -> int:
    return int(trial.run_metadata.num_failures or 0)


def epochs_of(trial) -> int:
    return int(trial.last_result.get("training_iteration", 0) or 0)


def error_file(trial) -> str:
    try:
        folder = trial.path
    except AttributeError:  # a trial without storage (never started)
        return "no error file"
    name = trial.run_metadata.error_filename
    return str(Path(folder, name)) if name else str(folder)


def log_path_for(experiment_path: str) -> Path:
    """``tune.log`` inside a local experiment folder; for cloud storage, a local file
    named after the experiment in the temp folder (the summary names it either way)."""
    if "://" in str(experiment_path):
        import tempfile
        folder = Path(tempfile.gettempdir()) / "spikesort-tune" / Path(str(experiment_path)).name
        folder.mkdir(parents=True, exist_ok=True)
        return folder / LOG_NAME
    return Path(experiment_path) / LOG_NAME


@contextmanager
def search_output(log_path: Path, verbose: int):
    """While a search runs: Tune's log records go to ``log_path``, not the console, and
    (below ``verbose=2``) Tune runs its silent engine (:data:`QUIET_ENGINE`). A log file
    that cannot be written (a full or vanished storage folder) loses lines silently: the
    storage guard (:mod:`.storage_guard`) reports the folder, in one line."""
    log_path = Path(log_path)
    with open(log_path, "a") as handle:
        handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} search started "
                     f"(pid {os.getpid()}); Ray workers' output: {ray_logs_folder()}\n")
    handler = QuietFileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in TUNE_LOGGERS]
    saved = [(logger, logger.propagate, list(logger.handlers)) for logger in loggers]
    saved_engine = os.environ.get("RAY_AIR_NEW_OUTPUT")
    quiet = verbose < 2
    for logger in loggers:
        if quiet:  # only the file: not Ray's console handler (on "ray"), nor Optuna's own
            logger.handlers = [handler]
            logger.propagate = False
        else:
            logger.addHandler(handler)
    engine = quiet and QUIET_ENGINE is not None
    if engine:
        os.environ["RAY_AIR_NEW_OUTPUT"] = QUIET_ENGINE
    try:
        yield
    finally:
        for logger, propagate, handlers in saved:
            logger.handlers = handlers
            logger.propagate = propagate
        if engine:
            if saved_engine is None:
                os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
            else:
                os.environ["RAY_AIR_NEW_OUTPUT"] = saved_engine
        try:
            handler.close()
        except OSError:
            pass


class QuietFileHandler(logging.FileHandler):
    """A log file that drops what it cannot write (no "--- Logging error ---" traceback
    on the console when the storage folder is full or gone)."""

    def handleError(self, record):
        pass


def ray_logs_folder() -> str:
    """Where this Ray session keeps its processes' logs (workers' stdout and stderr)."""
    try:
        import ray._private.worker as worker
        return worker._global_node.get_logs_dir_path()
    except Exception:  # not connected, or a private API that moved: say where to look
        return "the Ray session's logs folder (<ray temp dir>/session_latest/logs)"
