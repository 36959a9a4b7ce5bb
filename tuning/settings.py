"""The options of a tuning run and the checks made on them before anything heavy loads.

Everything here imports quickly (no torch, no Ray), so that bad input ends in one error
line within a second, before Ray starts.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass

import models
from tuning.data import Dataset, load_datasets
from tuning.errors import InputError
from tuning.metrics import METRICS
from tuning.splits import min_rows_per_class

SEARCHERS = ("tpe", "random", "bohb")
"""``--searcher`` choices (built in tuning.searchers): TPE + ASHA, random + ASHA, BOHB with
its HyperBand scheduler."""
BOHB_MODULES = ("hpbandster", "ConfigSpace")  # the [bohb] extra


@dataclass
class TuneSettings:
    """Every option of a tuning run; the CLI flags map one to one onto these fields."""

    samples: int = 48
    max_epochs: int = 40
    grace_period: int = 4
    metric: str = "accuracy"
    seed: int = 0
    searcher: str = "tpe"
    deterministic: bool = False
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    data_dir: str = "data"
    label_column: str | None = None
    storage: str = "ray_results"
    address: str | None = None
    num_cpus: int | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    folds: int = 5
    repeats: int = 3
    smoke: bool = False
    resume: bool = False
    max_failures: int = 2
    verbose: int = 1

    def effective(self) -> "TuneSettings":
        """The settings after ``smoke`` shrinks the run to about a minute."""
        if not self.smoke:
            return self
        return dataclasses.replace(self, samples=min(self.samples, 4), max_epochs=min(self.max_epochs, 4),
                                   grace_period=1, folds=min(self.folds, 3), repeats=1)

    def validate(self) -> None:
        if self.metric not in METRICS:
            raise InputError(f"--metric {self.metric!r} is not one of: {', '.join(METRICS)}")
        for name in ("samples", "max_epochs", "grace_period", "folds", "repeats"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.grace_period > self.max_epochs:
            raise InputError(f"--grace-period ({self.grace_period}) cannot exceed --max-epochs ({self.max_epochs})")
        if self.folds < 2:
            raise InputError(f"--folds must be at least 2, got {self.folds}")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise InputError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        if self.searcher not in SEARCHERS:
            raise InputError(f"--searcher {self.searcher!r} is not one of: {', '.join(SEARCHERS)}")
        missing = [m for m in BOHB_MODULES if importlib.util.find_spec(m) is None] if self.searcher == "bohb" else []
        if missing:
            raise InputError(f"--searcher bohb needs {' and '.join(missing)}: "
                             f"pip install -e \".[bohb]\" (pinned versions in setup.cfg)")



def check_family(family: str) -> str:
    if family not in models.FAMILIES:
        raise InputError(f"unknown model family {family!r}; choose one of: {', '.join(models.FAMILIES)}")
    return family


def load_for_tuning(family: str, dataset: str, settings: TuneSettings) -> list[list[Dataset]]:
    """Validate everything the user gave, before Ray starts; return the experiment groups."""
    check_family(family)
    settings.validate()
    names = [part.strip() for part in dataset.split(",")] if "," in dataset else dataset
    datasets = load_datasets(names, settings.data_dir, settings.label_column,
                             min_rows_per_class(settings.folds))
    if models.is_multitask(family):
        if len(datasets) < 2:
            raise InputError(f"{family} trains one network on several datasets; "
                             f"give 'all' or a comma-separated list of at least two, not {dataset!r}")
        return [datasets]
    return [[d] for d in datasets]
