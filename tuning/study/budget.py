"""The study's time budget, fixed before any search starts.

A replicated study compares approaches fairly only if every search gets the same effort
(trials and epoch limit). So a time budget never cuts a search: it fixes, up front, the
number of replicates R and the trials per search, from the measured cost of each family.

**Cost model.** One replicate runs, for every approach, its searches (one per dataset for a
single-task family, one over all datasets for a multi-task one) and then one training of
each pick on the replicate's split (plus one per learning-curve fraction). Its seconds:

* a search: ``samples x (expected_epochs(max_epochs, grace) x (seconds_per_epoch +
  TRIAL_EPOCH_OVERHEAD_S) + TRIAL_START_S) / concurrency + SEARCH_OVERHEAD_S`` (a trial's
  epoch also reports to Tune and writes a checkpoint; a trial starts a Ray actor; Tune
  starts and stops the experiment);
* its scoring: ``(1 + sum(fractions)) x SCORE_EPOCH_SHARE x max_epochs x seconds_per_epoch``
  (early stopping ends most reruns before max_epochs; trainings on a fraction of the rows
  cost that fraction), the runs of one pick side by side on the CPUs, plus
  ``SCORE_OVERHEAD_S`` (Ray tasks started, the data handed over);

``seconds_per_epoch`` of a family is one epoch over its datasets' training rows,
measured (:func:`calibrate`: a few seeded configurations of the family's own space
trained for two epochs in this process, one thread, as a trial runs) or taken from an
earlier run's records (:func:`measured_from_records`). ``expected_epochs`` is what ASHA
leaves a trial on average (:func:`expected_epochs`). The model is rough; the report
prints its prediction beside what each replicate took.

**The plan** (:func:`plan_replicates`): the most replicates, up to the wanted R (default
10) and at least :data:`MIN_REPLICATES`, that fit; for that R the most trials per search
that fit (never fewer than :data:`MIN_SAMPLES`, never changed when ``--samples`` was given).
Replicates come first because they carry the answer's power; a smaller search costs each
approach alike. A budget that fits not even :data:`MIN_REPLICATES` is refused, with the
budget that would fit.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Mapping, Sequence

MIN_REPLICATES = 3
MIN_SAMPLES = 8
REDUCTION_FACTOR = 3           # ASHA's, as tuning.search.searchers sets it
SEARCH_OVERHEAD_S = 12.0       # Tune's start and stop of one experiment, measured on 2 CPUs (8-15 s)
TRIAL_START_S = 1.5            # a trial's actor start and data hand-over
TRIAL_EPOCH_OVERHEAD_S = 0.15  # a trial's report and checkpoint each epoch
SCORE_OVERHEAD_S = 6.0         # a pick's scoring tasks: start and data hand-over (6-14 s seen on 2 CPUs)
SCORE_EPOCH_SHARE = 0.7        # share of max_epochs a rerun with early stopping trains, on average
ASYNC_PROMOTION = 1.3          # asynchronous ASHA promotes early trials more than 1/rf: seen 1.2-1.4x
EXPORT_RUNS_OVERHEAD = 2       # the export's one-split rerun and final model beside the k x r folds


def expected_epochs(max_epochs: int, grace_period: int, reduction_factor: int = REDUCTION_FACTOR) -> float:
    """Mean epochs per trial under ASHA: every trial trains ``grace_period`` epochs; a share
    ``1/rf`` of them reaches each next rung (``grace x rf^k``), and trials past the last
    rung run to ``max_epochs``; times :data:`ASYNC_PROMOTION` for asynchronous promotion."""
    if grace_period >= max_epochs:
        return float(max_epochs)
    rungs = [grace_period]
    while rungs[-1] * reduction_factor < max_epochs:
        rungs.append(rungs[-1] * reduction_factor)
    edges = rungs + [max_epochs]
    epochs = float(grace_period)
    for k in range(1, len(edges)):
        epochs += (edges[k] - edges[k - 1]) / reduction_factor ** k
    return min(float(max_epochs), epochs * ASYNC_PROMOTION)


@dataclasses.dataclass(frozen=True)
class Effort:
    """What every search of a study gets, and how many run side by side."""

    samples: int
    max_epochs: int
    grace_period: int
    concurrency: float  # trials at once: CPUs / CPUs per trial


def search_seconds(seconds_per_epoch: float, effort: Effort) -> float:
    epochs = expected_epochs(effort.max_epochs, effort.grace_period)
    per_trial = epochs * (seconds_per_epoch + TRIAL_EPOCH_OVERHEAD_S) + TRIAL_START_S
    return effort.samples * per_trial / max(1.0, effort.concurrency) + SEARCH_OVERHEAD_S


def score_seconds(seconds_per_epoch: float, effort: Effort, fractions: Sequence[float]) -> float:
    runs = 1.0 + sum(fractions)
    side_by_side = max(1.0, min(effort.concurrency, 1 + len(fractions)))
    return runs * SCORE_EPOCH_SHARE * effort.max_epochs * seconds_per_epoch / side_by_side + SCORE_OVERHEAD_S


def per_search_seconds(costs: Mapping[str, Sequence[float]], effort: Effort,
                       curve_fractions: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """Seconds of each search of one replicate, its pick's scoring included. ``costs``:
    family -> seconds per epoch of each of its searches (one per dataset, or one for a
    multi-task family); the result keeps that order."""
    return {family: [search_seconds(c, effort) + score_seconds(c, effort, curve_fractions.get(family, ()))
                     for c in per_search]
            for family, per_search in costs.items()}


def seconds_left(predicted: Sequence[float], position: int, total: int, ran_seconds: float,
                 ran_predicted: float) -> float:
    """The study's progress estimate: seconds of searches ``position`` .. ``total - 1`` (the
    replicates' searches in the order they run; search ``k`` is ``predicted[k % len(predicted)]``),
    their predictions scaled by what the searches run so far took against theirs. Equal
    predictions make it the plain mean of the searches run so far; the cost model's make an
    estimate that does not jump when the first costly family starts."""
    if not predicted or ran_predicted <= 0:
        return 0.0
    remaining = sum(predicted[k % len(predicted)] for k in range(position, total))
    return remaining * ran_seconds / ran_predicted


def export_seconds(costs: Mapping[str, Sequence[float]], effort: Effort, folds: int, repeats: int) -> float:
    """The one export of the lab's results tree (replicate 0): k x r reruns plus the
    one-split rerun and the final model of every search, on the CPUs side by side."""
    runs = folds * repeats + EXPORT_RUNS_OVERHEAD
    return sum(runs * SCORE_EPOCH_SHARE * effort.max_epochs * c / max(1.0, effort.concurrency)
               for per_search in costs.values() for c in per_search)


@dataclasses.dataclass(frozen=True)
class Plan:
    replicates: int
    samples: int
    replicate_s: float           # predicted seconds of one replicate
    export_s: float              # predicted seconds of the export
    per_family_s: dict           # one replicate's seconds per family
    reason: str                  # how R and the samples were chosen, in words
    per_search_s: dict = dataclasses.field(default_factory=dict)  # family -> each search's seconds (empty: none)

    @property
    def total_s(self) -> float:
        return self.replicates * self.replicate_s + self.export_s


class BudgetTooSmall(ValueError):
    """The budget cannot fit :data:`MIN_REPLICATES` replicates; ``needed_hours`` would."""

    def __init__(self, message: str, needed_hours: float):
        super().__init__(message)
        self.needed_hours = needed_hours


def plan_replicates(costs: Mapping[str, Sequence[float]], effort: Effort, *, budget_s: float | None,
                    wanted: int, samples_fixed: bool, folds: int, repeats: int,
                    curve_fractions: Mapping[str, Sequence[float]]) -> Plan:
    """R and the trials per search for ``budget_s`` (None: ``wanted`` replicates at
    ``effort``). Raises :class:`BudgetTooSmall` when not even :data:`MIN_REPLICATES` fit."""

    def predict(samples: int) -> tuple[float, float, dict, dict]:
        e = dataclasses.replace(effort, samples=samples)
        per_search = per_search_seconds(costs, e, curve_fractions)
        per_family = {family: sum(seconds) for family, seconds in per_search.items()}
        return sum(per_family.values()), export_seconds(costs, e, folds, repeats), per_family, per_search

    one, export, per_family, per_search = predict(effort.samples)
    if budget_s is None:
        return Plan(wanted, effort.samples, one, export, per_family, f"{wanted} replicates as asked (no time budget)",
                    per_search)
    floor = effort.samples if samples_fixed else min(MIN_SAMPLES, effort.samples)  # a smoke run asks for 2
    sample_options = range(effort.samples, floor - 1, -1)
    fewest = min(MIN_REPLICATES, wanted)  # fewer than 3 only when fewer were asked for (a smoke run)
    for replicates in range(wanted, fewest - 1, -1):  # most replicates first, then most trials
        for samples in sample_options:
            one_s, export_s, per, per_search = predict(samples)
            if export_s + replicates * one_s <= budget_s:
                changed = [f"{replicates} replicates ({wanted} wanted)" if replicates < wanted else "",
                           f"{samples} trials per search (not {effort.samples})" if samples < effort.samples else ""]
                reason = " and ".join(c for c in changed if c)
                return Plan(replicates, samples, one_s, export_s, per,
                            f"the budget fits {reason}" if reason else
                            f"{replicates} replicates of {samples} trials fit the budget", per_search)
    one_s, export_s, _, _ = predict(floor)
    needed = (export_s + MIN_REPLICATES * one_s) / 3600.0
    raise BudgetTooSmall(
        f"--time-budget {budget_s / 3600:g} h cannot fit {MIN_REPLICATES} replicates of this study with {floor} "
        f"trials per search (one replicate: about {one_s / 60:.0f} min, the export {export_s / 60:.0f} min, "
        f"as measured now); give --time-budget {math.ceil(needed * 10) / 10:g} or more, or fewer --families "
        f"or --datasets", needed)


def calibrate(family: str, groups: Sequence[Sequence], *, seed: int, val_fraction: float, test_fraction: float,
              configs: int = 2, epochs: int = 2) -> list[float]:
    """Seconds per epoch of each of ``family``'s searches (one per group of datasets):
    ``configs`` seeded configurations of its space trained ``epochs`` epochs on the
    group's training rows in this process, one thread (as a trial with one CPU), mean of
    the epochs after the first (the first pays for setting up)."""
    import torch

    import search_spaces
    from tuning.data.splits import tuning_split
    from tuning.training import TaskData, fit

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = []
    try:
        for group in groups:
            tasks = [TaskData.from_rows(d, s.train, s.val) for d, s in
                     ((d, tuning_split(d.y, seed, val_fraction, test_fraction)) for d in group)]
            seconds = []
            for config in search_spaces.sample_configs(family, [d.name for d in group], configs, seed):
                stamps = []
                fit(family, config, tasks, max_epochs=epochs, seed=seed, metric="accuracy",
                    on_epoch=lambda *_: stamps.append(time.perf_counter()))
                seconds += list(_diffs(stamps))
            out.append(float(sum(seconds) / len(seconds)) if seconds else 0.0)
    finally:
        torch.set_num_threads(threads)
    return out


def _diffs(stamps: Sequence[float]):
    return (b - a for a, b in zip(stamps, stamps[1:]))
