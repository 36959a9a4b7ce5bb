"""Why a trial failed, in words: read from the error file Tune writes in the trial folder.

Tune appends each failure of a trial to ``<trial folder>/error.txt`` (``Failure # N
(occurred at ...)`` and the error's text) before it retries the trial from its checkpoint
(``FailureConfig(max_failures)``) or gives up. The text tells the causes apart:

* ``memory_monitor``: Ray's memory monitor killed the trial's worker because the node's
  memory use passed its threshold (``RAY_memory_usage_threshold``, 0.95 by default); the
  text names the node's memory and each killed worker's;
* ``worker_died``: the worker process died from outside: ``kill -9``, the kernel's
  out-of-memory killer, a crash;
* ``disk_full`` / ``storage``: writing the checkpoint into the storage folder failed (no
  space; read-only or gone);
* ``exception``: the training code raised.

Reading the text, not the pickled exception, works for every failure (Tune pickles only
some) and for experiment folders of other days.
"""

from __future__ import annotations

import errno
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ERROR_FILE = "error.txt"
_BLOCK = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)\n", re.MULTILINE)
_NODE_MEMORY = re.compile(r"was ([\d.]+)GB used / ([\d.]+)GB limit")
_THRESHOLD = re.compile(r"threshold of \d+B \(([\d.]+)% of")
_WORKER_MEMORY = re.compile(r"pid=(\d+), actual memory used=([\d.]+)GB")
_PID = re.compile(r"^\s*pid: (\d+)$", re.MULTILINE)
_ERRNO = re.compile(r"\[Errno (\d+)\]")
_RAISED = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception|Interrupt)\b.*)$", re.MULTILINE)


@dataclass
class Failure:
    """One failure of a trial: ``kind`` (see the module docstring) and ``why``, a phrase
    for the console ("its worker process died ..."). Memory in GB as Ray reports it (None
    when not a memory-monitor kill): the node's use and limit, the monitor's threshold in
    percent, and what each killed worker used."""

    kind: str
    why: str
    node_used_gb: float | None = None
    node_limit_gb: float | None = None
    threshold_percent: float | None = None
    worker_gb: list[float] = field(default_factory=list)


def classify(text: str) -> Failure:
    """The :class:`Failure` that one failure's text (an ``error.txt`` block) describes."""
    if "running low on memory" in text or "OOM kill reason" in text or "OUT_OF_MEMORY" in text:
        node = _NODE_MEMORY.search(text)
        threshold = _THRESHOLD.search(text)
        workers = [float(gb) for _, gb in _WORKER_MEMORY.findall(text)]
        failure = Failure("memory_monitor", "", float(node.group(1)) if node else None,
                          float(node.group(2)) if node else None,
                          float(threshold.group(1)) if threshold else None, workers)
        failure.why = "Ray's memory monitor killed its worker: " + memory_note(failure)
        return failure
    codes = {int(code) for code in _ERRNO.findall(text)}
    if codes & {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}:
        return Failure("disk_full", "no space left in the storage folder for its checkpoint")
    if codes & {errno.EROFS, errno.ESTALE, errno.ENOTCONN}:
        code = min(codes & {errno.EROFS, errno.ESTALE, errno.ENOTCONN})
        return Failure("storage", f"the storage folder could not be written ({os.strerror(code)})")
    if "worker process has died" in text or "The actor died unexpectedly" in text:
        pid = _PID.search(text)
        return Failure("worker_died", f"its worker process{f' (PID {pid.group(1)})' if pid else ''} died: "
                                      "killed from outside (kill -9, the kernel's out-of-memory killer) or crashed")
    raised = _RAISED.findall(text)
    return Failure("exception", f"it raised {raised[-1][:200]}" if raised else "an error (see its error file)")


def memory_note(failure: Failure, workers: bool = True) -> str:
    """The node's memory and (``workers``) the killed workers', as far as Ray's message gave them."""
    parts = []
    if failure.node_used_gb is not None:
        parts.append(f"the node used {failure.node_used_gb:g} of {failure.node_limit_gb:g} GB")
    if failure.threshold_percent is not None:
        parts.append(f"above the monitor's threshold of {failure.threshold_percent:g}%")
    if workers and failure.worker_gb:
        parts.append(f"a trial's worker used {max(failure.worker_gb):g} GB")
    return ", ".join(parts) or "the node ran low on memory"


def failures_in(error_file: str | Path | None) -> list[Failure]:
    """Every failure recorded in one trial's error file, oldest first ([] if none)."""
    try:
        text = Path(error_file).read_text(errors="replace") if error_file else ""
    except OSError:
        return []
    return [classify(block) for block in _BLOCK.split(text) if block.strip()]


def last_failure(trial) -> Failure | None:
    """The newest failure of a Tune ``Trial`` (None if its error file holds none)."""
    try:
        found = failures_in(trial.error_file)
    except AttributeError:  # a trial without storage (never started)
        return None
    return found[-1] if found else None


@dataclass
class FailureSummary:
    """The failures of an experiment's trials: how many of each kind, and the memory-monitor kills."""

    counts: Counter = field(default_factory=Counter)
    memory_kills: list[Failure] = field(default_factory=list)

    def lines(self, cpus_per_trial: float) -> list[str]:
        """The search summary's lines about failures ([] if there were none)."""
        if not self.counts:
            return []
        names = {"memory_monitor": "killed by Ray's memory monitor", "worker_died": "worker process died",
                 "disk_full": "storage full", "storage": "storage not writable", "exception": "raised an exception"}
        lines = ["Trial failures (each retried from its last checkpoint, up to the failure limit): "
                 + ", ".join(f"{n} {names.get(kind, kind)}" for kind, n in self.counts.most_common())]
        if self.memory_kills:
            lines.append(self.memory_line(cpus_per_trial))
        return lines

    def memory_line(self, cpus_per_trial: float) -> str:
        """What Ray's memory monitor did, the memory a trial used, and what to do."""
        node = next((f for f in reversed(self.memory_kills) if f.node_used_gb is not None), self.memory_kills[-1])
        workers = [gb for f in self.memory_kills for gb in f.worker_gb]
        per_trial = f"a trial's worker used up to {max(workers):g} GB" if workers else "a trial's memory unknown"
        return (f"Ray's memory monitor killed trial workers {len(self.memory_kills)} time(s): {per_trial}; "
                f"{memory_note(node, workers=False)}. Free memory on the node (other jobs) and continue with "
                f"--resume, or start a new search with fewer trials at once (--cpus-per-trial "
                f"{2 * cpus_per_trial:g} halves them)")

    def machine_error(self, experiment, cpus_per_trial: float):
        """For a search in which no trial scored: a :class:`tuning.errors.MachineError` when
        the machine killed its trials (memory monitor, killed workers), else None."""
        from tuning.errors import MachineError

        if self.memory_kills:
            return MachineError(f"{experiment}: no trial reported a score; {self.memory_line(cpus_per_trial)}",
                                remedy="free memory on the node")
        if self.counts["worker_died"]:
            return MachineError(f"{experiment}: no trial reported a score; their worker processes died "
                                f"{self.counts['worker_died']} time(s) (killed from outside, or out of memory)",
                                remedy="find what kills them (dmesg shows the kernel's out-of-memory killer)")
        return None


def summarise(trial_folders) -> FailureSummary:
    """The :class:`FailureSummary` of the trials in ``trial_folders`` (their error files)."""
    summary = FailureSummary()
    for folder in trial_folders:
        for failure in failures_in(Path(folder) / ERROR_FILE):
            summary.counts[failure.kind] += 1
            if failure.kind == "memory_monitor":
                summary.memory_kills.append(failure)
    return summary
