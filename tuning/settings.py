"""The options of a tuning run and the checks made on them before anything heavy loads.

Everything here imports quickly (no torch, no Ray), so that bad input ends in one error
line within a second, before Ray starts.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import models
from tuning.data.columns import check_pattern
from tuning.data.readers import Dataset, load_datasets
from tuning.errors import InputError
from tuning.metrics import METRICS
from tuning.data.splits import min_rows_per_class

COLUMNS_HELP = ("name template of the waveform columns, {t} = sample number, {c} = channel number "
                "(e.g. 'wave_{t}'); default: s0.., ch{c}_s{t} or another numbered pattern, found by rule; "
                "other columns but the label are metadata")
SEARCHERS = ("tpe", "random", "bohb")
"""``--searcher`` choices (built in tuning.search.searchers): TPE + ASHA, random + ASHA, BOHB with
its HyperBand scheduler."""
BOHB_MODULES = ("hpbandster", "ConfigSpace")  # the [bohb] extra
DEFAULT_MAX_MFLOP = 0.3
"""``tune``'s compute cap, MFLOP a spike (a multiply-add counts 2): every network the search trains
stays within it (tuning.search.compute_cap; benchmarks/compute_cap.py measured why 0.3)."""


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
    columns: str | None = None  # the waveform columns' name template (--columns); None: found by rule
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
    verbose: int = 1  # 0: quiet; 1: a line per trial and a progress line; 2: Ray's own output
    time_budget_s: float | None = None  # Tune's own limit on the search's wall time (None: none)
    max_mflop: float | None = DEFAULT_MAX_MFLOP  # compute cap, MFLOP a spike (None: none); tuning.search.compute_cap

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
        check_max_mflop(self.max_mflop)
        check_output_folder(self.storage, "--storage")
        if self.columns is not None:
            check_pattern(self.columns)


def check_output_folder(path: str | Path, option: str) -> None:
    """A folder the run will write into must be creatable and writable, checked before
    any tuning (a bad ``--results-dir`` used to fail after the whole search).

    Nothing is created here. URIs (``s3://...``) are left to Ray and pyarrow.
    """
    if "://" in str(path):
        return
    folder = Path(path).expanduser().absolute()
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent  # the nearest folder that exists: the run creates the rest
    where = f"{option} {path}"
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"is inside {existing}, which is a file"
        raise InputError(f"{where}: {what}, not a folder; give a folder to create or write into")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == folder else f"cannot be created: {existing} is not writable"
        raise InputError(f"{where}: {what}; give a folder you can write into")


def check_family(family: str) -> str:
    if family not in models.FAMILIES:
        raise InputError(f"unknown model family {family!r}; choose one of: {', '.join(models.FAMILIES)}")
    return family


def check_same_channels(family: str, datasets: list[Dataset]) -> None:
    """Multi-task rule: one shared trunk reads one channel layout, so every dataset needs the
    same channel count (lengths may differ: they are resampled). Mixed counts are refused
    rather than padded with silent channels, which would teach the trunk a fake probe."""
    counts = {d.name: d.n_channels for d in datasets}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} ({n} channel{'s' if n > 1 else ''}, {d.path})"
                           for (name, n), d in zip(counts.items(), datasets))
        raise InputError(
            f"{family} needs datasets with the same number of channels, got {listed}; re-import "
            "them with the same --channels, or tune each dataset with a single-task family"
        )


_REPORTED: set[Path] = set()  # datasets whose metadata columns this process has named already


def report_metadata_columns(datasets: list[Dataset]) -> None:
    """Name, once per dataset and process, the columns read as metadata rather than samples."""
    for dataset in datasets:
        if dataset.metadata_columns and dataset.path not in _REPORTED:
            _REPORTED.add(dataset.path)
            print(f"{dataset.name}: metadata columns {', '.join(dataset.metadata_columns)} are not waveform "
                  f"samples; skipped ({dataset.length} samples x {dataset.n_channels} channel(s) read)")


def load_for_tuning(family: str, dataset: str, settings: TuneSettings) -> list[list[Dataset]]:
    """Validate everything the user gave, before Ray starts; return the experiment groups."""
    check_family(family)
    settings.validate()
    names = [part.strip() for part in dataset.split(",")] if "," in dataset else dataset
    datasets = load_datasets(names, settings.data_dir, settings.label_column,
                             min_rows_per_class(settings.folds), columns=settings.columns)
    report_metadata_columns(datasets)
    if models.is_finetuned(family) and settings.max_epochs < 2:
        raise InputError(f"{family} trains two stages (multi-task, then fine-tuning) of at least one epoch "
                         f"each; --max-epochs must be at least 2, got {settings.max_epochs}")
    if models.is_multitask(family):
        if len(datasets) < 2:
            what = "fine-tunes per dataset a network trained on" if models.is_finetuned(family) else "trains one network on"
            raise InputError(f"{family} {what} several datasets; "
                             f"give 'all' or a comma-separated list of at least two, not {dataset!r}")
        check_same_channels(family, datasets)
        return [datasets]
    return [[d] for d in datasets]


def check_race(size: int) -> None:
    """``--race K``: 0 (none) or how many of the search's top configurations to race."""
    if size < 0:
        raise InputError(f"--race must be 0 (none) or the number of top configurations to race, got {size}")


def check_ensemble(size: int) -> None:
    """``--ensemble K``: 0 (none) or how many top configurations to average."""
    if size < 0:
        raise InputError(f"--ensemble must be 0 (none) or the number of configurations to average, got {size}")


def check_max_mflop(value: float | None) -> None:
    """``--max-mflop``: a positive number, or none."""
    if value is not None and not value > 0:
        raise InputError(f"--max-mflop must be a positive number of MFLOP a spike, or 'none' for no cap; got {value:g}")


def parse_max_mflop(text: str) -> float | None:
    """The ``--max-mflop`` argument: a number, or ``none``/``0`` for no cap."""
    if text.strip().lower() in ("none", "off", "0"):
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--max-mflop must be a number of MFLOP a spike, or 'none' for no cap; got {text!r}") from None
