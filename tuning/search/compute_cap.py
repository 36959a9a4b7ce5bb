"""The search's compute cap (``tune --max-mflop``): every network a search trains does at
most this much arithmetic per spike, so the bundle it leaves sorts fast enough for a lab's
recordings on the machine it runs on.

Why FLOPs and not a measured speed: a count is the same on every machine and every run (a
seeded search stays reproducible), costs milliseconds, and needs no timing inside a search
whose trials share the cores. How FLOPs turn into spikes a second on two cores, and what the
cap costs in accuracy: ``benchmarks/compute_cap.py`` (benchmarks/RESULTS.md, section
``compute_cap``); :data:`tuning.settings.DEFAULT_MAX_MFLOP` comes from there.

How it works: the searcher draws a configuration as before; a draw whose network is over the
cap is never trained. With ``tpe`` it is told to Optuna as an infeasible trial (a constraint
value above 0, which TPE ranks after every feasible one, so it learns where the cap lies)
and the trial slot goes to the next draw; ``random`` draws again the same way; ``bohb`` draws
again without telling BOHB. The search still trains ``--samples`` networks, all within the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import models
from models.flops import flops_per_spike
from tuning.errors import InputError

MAX_DRAWS = 1000
"""Draws for one trial before the search gives up (the feasibility check makes this unreachable
unless the sampler insists on the infeasible region)."""
FEASIBILITY_DRAWS = 200
"""Random configurations drawn before the search starts, to refuse a cap no network fits."""
CONSTRAINT = "mflop_over_cap"
"""Optuna constraint key: a network's MFLOP a spike minus the cap (feasible when <= 0)."""


@dataclass(frozen=True)
class ComputeCap:
    """The cap of one search: its family, the network input its datasets give, the limit."""

    family: str
    input_length: int
    class_counts: tuple[int, ...]
    n_channels: int
    max_mflop: float

    @classmethod
    def for_datasets(cls, family: str, datasets: Sequence, max_mflop: float | None) -> "ComputeCap | None":
        """The cap of a search over ``datasets`` (None: no cap). A multi-task network reads the
        longest dataset's length (the others are resampled to it, as in training)."""
        if max_mflop is None:
            return None
        return cls(family, max(d.length for d in datasets), tuple(d.n_classes for d in datasets),
                   datasets[0].n_channels, float(max_mflop))

    def mflop(self, config: dict) -> float:
        """MFLOP a spike of the network ``config`` builds; for a multi-task network, its most
        expensive head (each sorts one dataset's spikes)."""
        network = models.build_model(self.family, config, self.input_length, list(self.class_counts),
                                     self.n_channels)
        columns = self.n_channels * self.input_length
        return max(flops_per_spike(network, columns, task) for task in range(len(self.class_counts))) / 1e6

    def excess(self, config: dict) -> float:
        """MFLOP over the cap (<= 0: within it)."""
        return self.mflop(config) - self.max_mflop

    def describe(self) -> str:
        return f"{self.max_mflop:g} MFLOP a spike"


def check_feasible(family: str, groups: Sequence[Sequence], max_mflop: float | None, seed: int = 0) -> list[float]:
    """Refuse, before any search, a cap that no network of ``family``'s space fits on a group's
    input (one error line naming the data, the cheapest network drawn and the way out);
    return, per group, the share of :data:`FEASIBILITY_DRAWS` random configurations within it."""
    import search_spaces

    shares = []
    for datasets in groups:
        cap = ComputeCap.for_datasets(family, datasets, max_mflop)
        if cap is None:
            shares.append(1.0)
            continue
        configs = search_spaces.sample_configs(family, [d.name for d in datasets], FEASIBILITY_DRAWS, seed)
        costs = [cap.mflop(c) for c in configs]
        within = sum(c <= cap.max_mflop for c in costs)
        if within == 0:
            names = ", ".join(f"{d.name} ({d.path})" for d in datasets)
            raise InputError(
                f"{names}: no {family} network of the search space fits --max-mflop {cap.max_mflop:g} on "
                f"{cap.n_channels} channel(s) x {cap.input_length} samples (the cheapest of "
                f"{FEASIBILITY_DRAWS} drawn needs {min(costs):.3g} MFLOP a spike); raise --max-mflop, "
                "or give --max-mflop none for no cap")
        shares.append(within / len(costs))
    return shares
