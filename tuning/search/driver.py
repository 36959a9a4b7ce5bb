"""The tuning driver: validated data -> fixed split -> one Ray Tune experiment per group.

A group is one dataset for a single-task family, or every dataset at once for an ``mtl-*``
or ``ft-*`` family. Each experiment is a ``Tuner`` with the search algorithm and scheduler that
``--searcher`` names (tuning.search.searchers; default: seeded TPE over the family's define-by-run
space, told which trials ASHA stopped, and ASHA on epochs). The data go to the trials once,
through ``tune.with_parameters``. Each experiment folder also holds ``spikesort_run.json``,
which records everything an export needs to rebuild the same data and splits later.

From a notebook::

    from tuning.search.driver import run_tuning
    outcomes = run_tuning("cnn", "A12", samples=10, max_epochs=20)
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import optuna
import ray
from ray import tune

import search_spaces
from tuning.data.readers import Dataset
from tuning.data.splits import tuning_split
from tuning.errors import InputError
from tuning.metrics import metric_mode
from tuning.search import best_trial, compute_cap, console, failures, ray_runtime, searchers, storage_guard
from tuning.search.run_record import join_storage, read_run_record, was_exported, write_run_record
from tuning.search.trainable import train_trial
from tuning.settings import TuneSettings, load_for_tuning  # noqa: F401 (re-exported: the public API)
from tuning.training import TaskData


@dataclass
class ExperimentOutcome:
    """What one experiment found."""

    path: Path
    family: str
    datasets: list[str]
    complete: bool
    n_trials: int
    n_stopped_early: int
    n_errored: int
    best_trial_id: str | None = None
    best_epoch: int | None = None
    best_config: dict = field(default_factory=dict)
    best_metrics: dict = field(default_factory=dict)
    metric: str = ""                # the objective, as reported: "val_accuracy"
    log_path: Path | None = None    # the search's log file (see tuning.search.console)
    cpus_per_trial: float = 1.0
    trial_failures: failures.FailureSummary = field(default_factory=failures.FailureSummary)  # from error files
    max_mflop: float | None = None  # the compute cap the search kept every network within (None: none)
    redrawn: int | None = None      # draws over the cap, never trained (None: not known, e.g. after a resume)


def run_tuning(family: str, dataset: str = "all", settings: TuneSettings | None = None,
               **overrides) -> list[ExperimentOutcome]:
    """Tune ``family`` on ``dataset`` (a name, a CSV path, a comma list or ``all``).

    ``overrides`` are :class:`TuneSettings` fields, e.g. ``samples=10``.
    """
    settings = dataclasses.replace(settings or TuneSettings(), **overrides).effective()
    groups = load_for_tuning(family, dataset, settings)
    compute_cap.check_feasible(family, groups, settings.max_mflop, settings.seed)
    return run_groups(family, groups, settings)


def run_groups(family: str, groups: Sequence[Sequence[Dataset]], settings: TuneSettings) -> list[ExperimentOutcome]:
    """One experiment per group of validated datasets (see :func:`load_for_tuning`).

    An interrupted experiment (Ctrl-C) ends the whole run: the groups after it are not
    started, and the outcomes so far are returned (the last one not ``complete``).
    """
    started_ray = ray_runtime.connect(settings.address, settings.num_cpus, log_to_driver=settings.verbose >= 2)
    try:
        outcomes = []
        for group in groups:
            outcomes.append(run_experiment(family, group, settings))
            if not outcomes[-1].complete:
                break
        return outcomes
    finally:
        if started_ray:
            ray.shutdown()


def experiment_name(family: str, datasets: Sequence[Dataset]) -> str:
    return f"{family}-{'+'.join(d.name for d in datasets)}"


def run_experiment(family: str, datasets: Sequence[Dataset], settings: TuneSettings, *,
                   sampler: optuna.samplers.BaseSampler | None = None, scheduler=None,
                   search_alg=None, callbacks: Sequence[tune.Callback] = (), stop=None) -> ExperimentOutcome:
    """One Ray Tune experiment over ``datasets`` (one for single-task, several for MTL).

    ``sampler`` (default: the seeded sampler of ``settings.searcher``), ``scheduler``
    (default: the searcher's, ASHA on epochs for tpe/random), ``search_alg`` (a ready Tune
    search algorithm instead of :func:`make_searcher`'s), ``callbacks`` (Tune callbacks) and
    ``stop`` (a Tune stopper, e.g. an epoch budget) let a caller change the search itself,
    e.g. ``benchmarks/search_efficiency.py`` (random sampling, ``FIFOScheduler``); they apply
    to a new experiment, not to one continued with ``resume``.
    """
    storage = _absolute_storage(settings.storage)
    path = find_resumable(storage, family, datasets) if settings.resume else None
    if path is not None:
        settings = settings_for_resume(path, datasets, settings)
    trainable = make_trainable(family, datasets, settings)
    metric, mode = f"val_{settings.metric}", metric_mode(settings.metric)
    save_experiment_state_often()
    resuming = path is not None
    if resuming:
        print(f"Resuming {path}", flush=True)
        repaired = storage_guard.repair_saved_state(path)
        if repaired:
            print(f"Put back Tune's saved state from its copy ({', '.join(repaired)}): the folder's own was "
                  f"cut short or behind", flush=True)
    else:
        if settings.resume:
            print("Nothing to resume: starting a new experiment.", flush=True)
        name = f"{experiment_name(family, datasets)}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = join_storage(storage, name)
        if "://" not in path:
            Path(path).mkdir(parents=True, exist_ok=True)  # tune.log starts before the record
    log_path = console.log_path_for(path)
    output = output_callbacks(settings, metric, mode, log_path, path, storage)
    with console.search_output(log_path, settings.verbose):  # Optuna logs as its study is made
        if resuming:
            # Same wrapped trainable; unfinished and errored trials continue from their last
            # checkpoint (tuning.search.trainable loads it), finished ones stay as they are.
            tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)
            set_restored_output(tuner, settings, output)
        else:
            default_search, default_scheduler = make_searcher(family, datasets, settings, metric, mode,
                                                              sampler=sampler)
            search_alg, scheduler = search_alg or default_search, scheduler or default_scheduler
            slots = concurrent_trials(settings)
            write_run_record(path, family, datasets, settings,
                             search={**searchers.describe(search_alg, scheduler), "max_concurrent_trials": slots})
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=search_alg, scheduler=scheduler,
                    metric=metric, mode=mode, num_samples=settings.samples,
                    max_concurrent_trials=slots, time_budget_s=settings.time_budget_s,
                    reuse_actors=True, trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
                ),
                run_config=tune.RunConfig(
                    name=name, storage_path=storage, verbose=ray_verbosity(settings),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                    callbacks=[*output, *callbacks], stop=stop,
                ),
            )
        if settings.deterministic:
            seed_driver(settings.seed)
        try:
            grid, interrupted = fit_noticing_interrupt(tuner)
        except Exception as error:  # the storage folder full, read-only or gone: one line, not a traceback
            problem = storage_guard.storage_problem(path, storage, error)
            if problem is None:
                raise
            raise problem from error
    outcome = summarise(grid, path, family, [d.name for d in datasets], metric, mode, settings)
    if not resuming:  # a restored searcher is Tune's copy, not search_alg
        outcome.redrawn = getattr(search_alg, "redrawn", None)
    if interrupted:  # even when every trial had started: Tune marks the ones it cut off TERMINATED
        outcome.complete, outcome.n_stopped_early = False, 0
    outcome.metric, outcome.log_path = metric, log_path
    if settings.verbose:  # 0: the caller (the study) reports each search in a line of its own
        print_outcome(outcome, metric, scheduler_name(settings))
    return outcome


def fit_noticing_interrupt(tuner) -> tuple:
    """``tuner.fit()`` and whether Tune stopped it for a Ctrl-C (SIGINT or SIGUSR1).

    Tune swaps in its own SIGINT handler for the search; on the first signal it puts back
    the handler it found and ends the search normally, with the trials it cut off marked
    TERMINATED, like finished ones. So a handler of ours that is back in place after
    ``fit`` tells that the search was interrupted. (Tune installs no handler outside the
    main thread or with ``TUNE_DISABLE_SIGINT_HANDLER=1``: then a Ctrl-C raises
    KeyboardInterrupt out of ``fit``.)
    """
    if threading.current_thread() is not threading.main_thread() or \
            os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") != "0":
        return tuner.fit(), False
    previous = signal.getsignal(signal.SIGINT)

    def after_first_ctrl_c(signum, frame):  # a second Ctrl-C, while Tune is stopping
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, after_first_ctrl_c)
    try:
        grid = tuner.fit()
        return grid, signal.getsignal(signal.SIGINT) is after_first_ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def ray_verbosity(settings: TuneSettings) -> int:
    """Tune's ``verbose``: 1 for Ray's own tables and boxes (settings.verbose 2,
    ``--verbose``), else 0: silent, our console callback prints (settings.verbose 1)."""
    return 1 if settings.verbose >= 2 else 0


def output_callbacks(settings: TuneSettings, metric: str, mode: str, log_path, path, storage) -> list:
    """This run's own Tune callbacks: the storage guard (first: it stops the search before
    the console reports a retry that will not happen), and the quiet console unless
    ``--verbose`` or silent (see :mod:`tuning.search.console`)."""
    own = [storage_guard.StorageGuard(path, storage)]
    if settings.verbose == 1:
        own.append(console.ConsoleReporter(metric, mode, settings.samples, settings.max_epochs, log_path,
                                           scheduler=scheduler_name(settings)))
    return own


OWN_CALLBACKS = (console.ConsoleReporter, storage_guard.StorageGuard)


def set_restored_output(tuner, settings: TuneSettings, output: list) -> None:
    """Give a restored experiment this run's output settings and callbacks, not the pickled ones.

    ``Tuner.restore`` takes no ``RunConfig``: it brings back the one saved with the
    experiment (its verbosity, its callbacks, and, in folders written before the console
    became a callback, a ``ConsoleReporter`` as its progress reporter). The restored
    ``RunConfig`` is the Tuner's own (Ray 2.60: ``tuner._local_tuner``; absent for Ray
    Client, where the saved one stays).
    """
    local = getattr(tuner, "_local_tuner", None)
    if local is None:
        return
    run_config = local.get_run_config()
    run_config.verbose = ray_verbosity(settings)
    run_config.progress_reporter = None
    kept = [c for c in (run_config.callbacks or []) if not isinstance(c, OWN_CALLBACKS)]
    run_config.callbacks = [*output, *kept]


EXPERIMENT_STATE_PERIOD_S = "1"
"""Seconds between snapshots of Tune's experiment state (trial list, statuses, searcher).

Ray's default (``TUNE_GLOBAL_CHECKPOINT_S=auto``) snapshots at most every 10 s or more; a
driver killed in between loses the trials suggested since, and ``--resume`` suggests them
again under new ids and trains them from scratch. Trials here report every epoch, so the
state is small next to what one lost trial costs. Set ``TUNE_GLOBAL_CHECKPOINT_S`` in the
environment to choose another period (``auto`` for Ray's)."""

# The settings a search was started with that a resumed search must keep.
RESUME_KEEPS = ("samples", "max_epochs", "grace_period", "metric", "seed", "searcher", "deterministic", "max_mflop",
                "cpus_per_trial", "gpus_per_trial", "val_fraction", "test_fraction", "folds", "repeats",
                "max_failures")


def save_experiment_state_often() -> None:
    """Set how often Tune saves its experiment state, unless the user set it."""
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_STATE_PERIOD_S)
    # With per-epoch checkpoints and CheckpointConfig(num_to_keep), Tune also forces a
    # snapshot every num_to_keep checkpoints of a trial and warns when that is frequent;
    # frequent is what we want here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def settings_for_resume(path, datasets: Sequence[Dataset], settings: TuneSettings) -> TuneSettings:
    """The settings of the search at ``path``, with this run's connection options.

    A resumed search must train its trials as they started (epochs, seed, split, metric,
    resources), whatever this command line says; the data must be the data it saw.
    """
    record = read_run_record(path)
    recorded = record["settings"]
    changed = {k: (recorded[k], getattr(settings, k)) for k in RESUME_KEEPS
               if k in recorded and recorded[k] != getattr(settings, k)}
    if changed:
        print("Resuming with the experiment's own settings: " + ", ".join(
            f"{k}={old!r} (not {new!r})" for k, (old, new) in changed.items()), file=sys.stderr)
    for entry, dataset in zip(record["datasets"], datasets):
        if entry.get("columns") != dataset.columns:
            given = [f"--columns {c!r}" if c else "no --columns" for c in (entry.get("columns"), dataset.columns)]
            raise InputError(f"{dataset.path}: the search in {path} read its waveform columns with {given[0]}, "
                             f"this command with {given[1]}; resume with the search's own")
        if entry["rows"] != len(dataset.y) or entry["label_map"] != dataset.label_map():
            raise InputError(f"{dataset.path}: changed since the search in {path} was started "
                             f"({entry['rows']} rows then, {len(dataset.y)} now, or other labels); "
                             f"start a new search (without --resume)")
    kept = {k: recorded[k] for k in RESUME_KEEPS if k in recorded}
    kept.setdefault("max_mflop", None)  # recorded before the compute cap existed: searched without one
    return dataclasses.replace(settings, **kept)


def make_trainable(family: str, datasets: Sequence[Dataset], settings: TuneSettings):
    """The trial function with its data bound once and its resources declared."""
    tasks = [TaskData.from_rows(d, split.train, split.val)
             for d, split in ((d, tuning_split(d.y, settings.seed, settings.val_fraction,
                                               settings.test_fraction)) for d in datasets)]
    bound = tune.with_parameters(train_trial, family=family, tasks=tasks, max_epochs=settings.max_epochs,
                                 seed=settings.seed, metric=settings.metric,
                                 cpus_per_trial=settings.cpus_per_trial, deterministic=settings.deterministic)
    return tune.with_resources(bound, {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial})


def make_searcher(family: str, datasets: Sequence[Dataset], settings: TuneSettings,
                  metric: str, mode: str, sampler: optuna.samplers.BaseSampler | None = None):
    """(search algorithm, scheduler) of ``settings.searcher`` over the family's define-by-run
    space (``sampler``, if given, replaces the seeded TPE / random sampler); see tuning.search.searchers."""
    space = search_spaces.get_space(family, [d.name for d in datasets])
    return searchers.make_search(settings.searcher, space, seed=settings.seed, samples=settings.samples,
                                 max_epochs=settings.max_epochs, grace_period=settings.grace_period,
                                 metric=metric, mode=mode, sampler=sampler,
                                 cap=compute_cap.ComputeCap.for_datasets(family, datasets, settings.max_mflop))


def seed_driver(seed: int) -> None:
    """Seed the driver's global generators (hpbandster's BOHB and Ray's ASHA draw from numpy's)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)


def concurrent_trials(settings: TuneSettings) -> int:
    """As many trials at once as the cluster's CPUs (and GPUs, if asked for) allow; one at a
    time with ``deterministic`` (see docs/reproducibility.md: what a deterministic run reproduces)."""
    if settings.deterministic:
        return 1
    limit = ray_runtime.available("CPU") / settings.cpus_per_trial
    if settings.gpus_per_trial > 0:
        limit = min(limit, ray_runtime.available("GPU") / settings.gpus_per_trial)
    return max(1, math.floor(limit + 1e-9))


def summarise(grid, path, family, dataset_names, metric, mode, settings) -> ExperimentOutcome:
    epochs_run = [r.metrics.get("training_iteration", 0) for r in grid]
    errored = grid.num_errors
    # Complete: every trial the search asked for has ended: run to its end (or ASHA's), or
    # failed for good after its retries (a config that always crashes must not block the
    # export). After Ctrl-C Tune returns the trials so far, some still pending or running.
    complete = len(grid) >= settings.samples and grid.num_terminated + grid.num_errors == len(grid)
    outcome = ExperimentOutcome(
        path=Path(str(path)), family=family, datasets=list(dataset_names),
        complete=complete, n_trials=len(grid), n_errored=errored,
        # In an interrupted search a short trial was cut off, not stopped by ASHA.
        n_stopped_early=sum(1 for n in epochs_run if 0 < n < settings.max_epochs) if complete else 0,
    )
    if "://" not in str(path):  # why trials failed, from their error files (Tune's, in each trial folder)
        outcome.trial_failures = failures.summarise(Path(path).glob("trial_*"))
    outcome.cpus_per_trial = settings.cpus_per_trial
    outcome.max_mflop = settings.max_mflop
    # The export's rule (tuning.search.best_trial), so the summary names the trial it will rerun.
    results = {r.metrics.get("trial_id"): r for r in grid if r.metrics and r.metrics.get("trial_id")}
    pick = best_trial.pick_best({t: r.metrics_dataframe for t, r in results.items()}, metric, mode)
    if pick is None:
        return outcome
    outcome.best_epoch = pick.epoch
    # Averaged as the score is (the export records these, also when handed this outcome).
    outcome.best_metrics = {k: float(v) for k, v in pick.means.items() if k.startswith("val_")}
    outcome.best_trial_id = pick.trial_id
    outcome.best_config = dict(results[pick.trial_id].config)
    return outcome


def scheduler_name(settings: TuneSettings) -> str:
    """The early-stopping scheduler of ``settings.searcher``, as the console names it."""
    return "HyperBand" if settings.searcher == "bohb" else "ASHA"


def print_outcome(outcome: ExperimentOutcome, metric: str, scheduler: str = "ASHA") -> None:
    print()
    # A search cut short (time budget, Ctrl-C) cannot tell the scheduler's stops from its own cut.
    stops = (f"{outcome.n_stopped_early} stopped early by {scheduler}" if outcome.complete
             else "cut short before every trial ended")
    print(f"== {outcome.family} on {', '.join(outcome.datasets)}: {outcome.n_trials} trials, "
          f"{stops}, {outcome.n_errored} errored")
    if outcome.max_mflop is not None:
        redrawn = "" if outcome.redrawn is None else f" ({outcome.redrawn} draws over it redrawn, never trained)"
        print(f"Every network within the compute cap of {outcome.max_mflop:g} MFLOP a spike{redrawn}")
    for line in outcome.trial_failures.lines(outcome.cpus_per_trial):
        print(line)
    if outcome.best_config:
        print(f"Best trial {outcome.best_trial_id} at epoch {outcome.best_epoch} "
              f"({best_trial.SCORE_NOTE}): "
              + ", ".join(f"{k}={v:.4f}" for k, v in sorted(outcome.best_metrics.items()) if "/" not in k))
        print("Best configuration:")
        for key, value in sorted(outcome.best_config.items()):
            print(f"  {key}: {value}")
    print(f"Experiment folder: {outcome.path}")
    if outcome.log_path is not None:
        print(f"Log: {outcome.log_path}")
    print(f"TensorBoard: tensorboard --logdir {shlex.quote(str(outcome.path))}")
    sys.stdout.flush()


def find_resumable(storage: str, family: str, datasets: Sequence[Dataset]) -> str | None:
    """The newest experiment of the same family and datasets that Tune can restore and
    that was not exported yet: an interrupted search, or a finished one whose export was
    interrupted (or skipped with ``--no-export``)."""
    prefix = experiment_name(family, datasets) + "-"
    if "://" in storage:
        import pyarrow.fs
        fs, root = pyarrow.fs.FileSystem.from_uri(storage)
        names = [Path(info.path).name for info in fs.get_file_info(pyarrow.fs.FileSelector(root))]
    else:
        names = [p.name for p in Path(storage).glob(prefix + "*") if p.is_dir()]
    for name in sorted((n for n in names if n.startswith(prefix)), reverse=True):
        candidate = join_storage(storage, name)
        if tune.Tuner.can_restore(candidate) and not was_exported(candidate):
            return candidate
    return None


def _absolute_storage(storage: str) -> str:
    # Ray requires an absolute storage_path; URIs (s3://, gs://, ...) pass through.
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())
