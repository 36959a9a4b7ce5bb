"""What every benchmark shares: the machine's description, load sampling, Ray start-up,
tables, and writing one section of ``benchmarks/RESULTS.md``.

Each benchmark owns one section of RESULTS.md, delimited by
``<!-- BEGIN <name> -->`` / ``<!-- END <name> -->``; a new run replaces its own section
and leaves the others. The file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence

from tuning import atomic

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
OUT_DIR = ROOT / "benchmarks" / "out"  # git-ignored: Ray storage and raw measurements
HEADER = ("# Benchmark results\n\n"
          "Written by the scripts in `benchmarks/` (see `benchmarks/README.md`); each section is\n"
          "replaced by the next run of its script. Figures are from the machine named in each section.\n")


# ----------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def versions() -> str:
    import importlib.metadata as metadata

    parts = [f"python {platform.python_version()}"]
    for name in ("torch", "ray", "optuna", "scikit-learn"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def machine_line() -> str:
    ram = ram_gib()
    return (f"{os.cpu_count()} CPUs (nproc), {cpu_model()}, "
            f"{f'{ram:.0f} GiB RAM' if ram else 'RAM unknown'}; {versions()}")


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds in a daemon thread.

    The load average counts runnable processes: on a machine with N CPUs, a load above N
    means something else competed for the CPUs during the measurement.
    """

    def __init__(self, every: float = 5.0):
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        s = self.samples
        return f"mean {sum(s) / len(s):.1f}, min {min(s):.1f}, max {max(s):.1f} ({len(s)} samples)"

    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else float("nan")


@contextmanager
def ray_runtime(num_cpus: int):
    """A local Ray runtime with ``num_cpus`` CPUs, started through the project's
    ``tuning.search.ray_runtime.connect`` (``ray.init(num_cpus=...)``) unless this process is already
    connected; shut down only if started here."""
    import ray

    from tuning.search import ray_runtime

    started = ray_runtime.connect(None, num_cpus)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def trial_event_log():
    """A Tune callback that records the driver's view of an experiment, in
    ``time.monotonic()`` seconds: ``fit_start`` / ``fit_end``, each trial's ``starts`` and
    ``ends``, and ``results``, one per epoch as the driver receives it (trial, epoch,
    val_accuracy, train_seconds, time_this_iter_s). Ray is imported on use."""
    from ray import tune

    class TrialEventLog(tune.Callback):
        def __init__(self):
            self.fit_start = self.fit_end = None
            self.starts, self.ends, self.results = {}, {}, []

        def setup(self, **info):
            self.fit_start = time.monotonic()

        def on_trial_start(self, iteration, trials, trial, **info):
            self.starts.setdefault(trial.trial_id, time.monotonic())

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.results.append({"t": time.monotonic(), "trial": trial.trial_id,
                                 "epoch": int(result.get("training_iteration", 0)),
                                 **{key: float(result.get(key, float("nan")))
                                    for key in ("val_accuracy", "train_seconds", "time_this_iter_s")}})

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ends[trial.trial_id] = time.monotonic()

        on_trial_error = on_trial_complete

        def on_experiment_end(self, trials, **info):
            self.fit_end = time.monotonic()

    return TrialEventLog()


# ----------------------------------------------------------------------------- tables
def fmt(value, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    try:
        if value != value:  # NaN
            return "n/a"
    except TypeError:
        return str(value)
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value}{suffix}"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    rows = [[str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran a benchmark, as typed at the repository root:
    ``python -m benchmarks.x ARGS`` (``argv[0]`` is the module's file, as under ``-m``)."""
    argv = list(sys.argv if argv is None else argv)
    try:
        module = ".".join(Path(argv[0]).resolve().relative_to(ROOT).with_suffix("").parts)
    except ValueError:  # not a file of this repository
        return shlex.join(["python", str(argv[0]), *argv[1:]])
    return shlex.join(["python", "-m", module, *argv[1:]])


def provenance(command: str, load: LoadSampler | None, started: float) -> str:
    """The block that opens every section: machine, command, date, duration, load."""
    lines = [f"- Machine: {machine_line()}",
             f"- Command: `{command}`",
             f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(started))}; "
             f"ran {time.time() - started:.0f} s"]
    if load is not None:
        lines.append(f"- Load average (1 min) during the run: {load.summary()} on {os.cpu_count()} CPUs")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- statistics
def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (ties get their average
    rank, as ``scipy.stats.spearmanr`` gives them); NaN when either side is constant."""
    import numpy as np
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


# ----------------------------------------------------------------------------- RESULTS.md
def replace_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` between this benchmark's markers in ``path`` (replace or append)."""
    path = Path(path)
    text = path.read_text() if path.is_file() else HEADER
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic.write_text(path, text)


def write_section(args, name: str, body: str) -> None:
    """Replace section ``name`` of the run's results file (see :func:`results_target`) with
    ``body``; a run that writes no results (``--quick`` without ``--results-md``) skips it."""
    target = results_target(args)
    if target is None:
        return
    replace_section(target, name, body)
    print(f"wrote section '{name}' of {target}")


def script_command(script: str, argv: Sequence[str] | None) -> str:
    """The command that ran ``script`` with ``argv`` (None: this process's own arguments)."""
    return command_line(None if argv is None else [script, *argv])


def results_target(args) -> Path | None:
    """Where a run writes its section: ``--results-md`` if given; else RESULTS.md, except
    for ``--quick`` runs, which only print."""
    if args.results_md:
        return Path(args.results_md)
    return None if getattr(args, "quick", False) else RESULTS_MD
