"""Optuna define-by-run search spaces, one module per model family.

``get_space(family, task_names)`` returns the callable that Ray's ``OptunaSearch`` takes
as its space: called with a trial, it suggests the tuned values (their names are the
config keys) and returns the constants ({"family": ...}) to merge into the config.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from types import ModuleType
from typing import Callable, Sequence

import optuna

from models import AUTO, AUTO_CHOICES, FAMILIES, is_finetuned, is_multitask, multitask_twin, trunk_family

from . import common

__all__ = ["FAMILIES", "get_space", "sample_configs", "space_module", "space_source"]


def space_module(family: str) -> ModuleType:
    """The module defining ``family``'s space ("mtl-cnn" -> search_spaces.mtl_cnn)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{family.replace('-', '_')}")


def get_space(family: str, task_names: Sequence[str]) -> Callable[[optuna.Trial], dict]:
    """``trial -> constants`` for ``family``; a functools.partial of a module-level
    function, so it pickles (Ray ships the searcher to other processes)."""
    module = space_module(family)
    if is_multitask(family):
        task_names = common.check_task_names(task_names)
    return functools.partial(module.define, task_names=tuple(task_names))


def space_source(family: str) -> str:
    """Source text that defines ``family``'s space, for the run's record.

    The family's module, the mtl-* module an ft-* family reuses, the trunk module an mtl-*
    family reuses (every trunk's for "auto"), and common.py, each under a header line naming
    the file.
    """
    names = [family, *([multitask_twin(family)] if is_finetuned(family) else []),
             *(AUTO_CHOICES if family == AUTO else [trunk_family(family)])]
    modules = list(dict.fromkeys(space_module(name) for name in names))
    modules.append(common)
    parts = []
    for module in modules:
        name = module.__name__.replace(".", "/") + ".py"
        parts.append(f"# ==== {name} ====\n{inspect.getsource(module)}")
    return "\n".join(parts)


def sample_configs(family: str, task_names: Sequence[str], n: int, seed: int) -> list[dict]:
    """``n`` configurations of ``family``'s space drawn at random (seeded), each as a trial
    gets it (suggested values plus the space's constants): for timing and test sweeps."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space = get_space(family, task_names)
    configs = []
    for _ in range(n):
        trial = study.ask()
        constants = space(trial) or {}  # suggests the parameters first
        configs.append({**trial.params, **constants})
    return configs
