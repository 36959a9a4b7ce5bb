"""Ray Tune's trainable: one trial is one :func:`tuning.training.fit` that reports and
checkpoints every epoch, and continues from its last checkpoint when Tune restarts it
(after a crash, or on ``--resume``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

import ray
import torch
from ray import tune

from tuning.training import TaskData, fit

CHECKPOINT_FILE = "state.pt"
FAULT_ENV = "SPIKESORT_TUNE_FAULT_ONCE"
"""Fault injection for tests: ``"<epoch>:<marker file>"`` makes the first trial that
reaches that epoch raise once (the marker file records that it happened)."""
HOLD_ENV = "SPIKESORT_TUNE_HOLD_AT"
"""Interruption tests: ``"<epoch>:<folder>"`` makes every trial, once it has reported and
checkpointed that epoch, write ``<folder>/<trial_id>.held`` (the epoch, its Ray node id and
its worker's PID) and wait until ``<folder>/release`` exists. A test can then interrupt the driver at a known
point (trials half-way, their checkpoints on disk) instead of racing a timer."""
HOLD_ONLY_ENV = "SPIKESORT_TUNE_HOLD_ONLY"
"""With ``HOLD_ENV``: hold only the trials of experiments whose name contains this text
(e.g. ``ffn-T3-``: the second dataset of a run over several)."""


def trial_device() -> str:
    """CUDA when Ray gave this worker a GPU, else the CPU."""
    return "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


def torch_threads(cpus: float) -> int:
    """Threads = CPUs given to the trial; more would oversubscribe the parallel trials."""
    return max(1, int(cpus))


def train_trial(config: dict, *, family: str, tasks: Sequence[TaskData], max_epochs: int,
                seed: int, metric: str, cpus_per_trial: float, deterministic: bool = False) -> None:
    """Ray Tune function trainable; data and settings arrive through ``tune.with_parameters``."""
    torch.set_num_threads(torch_threads(cpus_per_trial))
    if deterministic:  # warn_only: an op without a deterministic kernel warns instead of failing the trial
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what cuBLAS needs to be deterministic
        torch.use_deterministic_algorithms(True, warn_only=True)
    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume_state = torch.load(Path(folder) / CHECKPOINT_FILE, weights_only=True,
                                      map_location="cpu")

    node_id = ray.get_runtime_context().get_node_id()  # tells local nodes apart (same IP)

    def report(epoch: int, metrics: dict, state) -> None:
        metrics = {**metrics, "node_id": node_id}
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state(), os.path.join(folder, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        _maybe_inject_fault(epoch)
        _maybe_hold(epoch)

    fit(family, config, tasks, max_epochs=max_epochs, seed=seed, metric=metric,
        device=trial_device(), on_epoch=report, resume_state=resume_state)


def _maybe_inject_fault(epoch: int) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    at_epoch, marker = spec.split(":", 1)
    if epoch == int(at_epoch):
        try:  # exclusive create: exactly one trial in the experiment fails, exactly once
            with open(marker, "x") as handle:
                handle.write(f"{tune.get_context().get_trial_id()} {epoch}\n")
        except FileExistsError:
            return
        raise RuntimeError(f"injected fault after epoch {epoch} ({FAULT_ENV})")


def _maybe_hold(epoch: int) -> None:
    spec = os.environ.get(HOLD_ENV)
    if not spec:
        return
    at_epoch, folder = spec.split(":", 1)
    if epoch != int(at_epoch):
        return
    if os.environ.get(HOLD_ONLY_ENV, "") not in tune.get_context().get_experiment_name():
        return
    folder = Path(folder)
    node_id = ray.get_runtime_context().get_node_id()
    (folder / f"{tune.get_context().get_trial_id()}.held").write_text(f"{epoch} {node_id} {os.getpid()}\n")
    while not (folder / "release").exists():
        time.sleep(0.2)
