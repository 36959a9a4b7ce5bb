"""The search algorithms behind ``--searcher`` and the schedulers that go with them.

* ``tpe`` (default): seeded multivariate TPE over the family's define-by-run space, with
  ASHA on epochs. Ray's ``OptunaSearch`` tells the Optuna study that a trial ASHA stopped
  after 4 epochs is COMPLETE with its 4-epoch score, so TPE would learn mostly from
  truncated runs; :class:`StoppedAwareOptunaSearch` tells it PRUNED instead (with the
  per-epoch values), which TPE ranks below every finished trial, by how far it got.
* ``random``: seeded random sampling over the same space, the same ASHA.
* every searcher keeps the networks it trains within the compute cap (``--max-mflop``,
  :mod:`tuning.search.compute_cap`): a draw over it is drawn again, never trained (TPE is told
  it was infeasible).
* ``bohb``: Ray's ``TuneBOHB`` (hpbandster's model of the loss at each budget) with its own
  synchronous ``HyperBandForBOHB`` scheduler on epochs. BOHB needs a ConfigSpace; ours are
  define-by-run functions, so :func:`configspace_from_define_by_run` records the union of
  the distributions each function asks for, BOHB proposes a value for every one, and
  :class:`DefineByRunBOHB` runs the function on those values (``optuna.trial.FixedTrial``),
  so a config holds only the parameters that its own branch uses (no hand-copied space).

Ray's ASHA forgets its rungs when an experiment is restored (Tune saves the searcher's state,
not the scheduler's), so a resumed search would stop trials against empty rungs;
:class:`RestorableASHA` rebuilds them from the restored trials' recorded results.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from tuning.search.compute_cap import CONSTRAINT, MAX_DRAWS, ComputeCap
from tuning.settings import SEARCHERS  # noqa: F401 (the names, defined without Ray)

REDUCTION_FACTOR = 3


class StoppedAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells the study how each trial ended.

    A trial whose last result is before ``max_t`` (stopped by the scheduler) becomes PRUNED,
    with every epoch's value as an intermediate value; a trial that reached ``max_t``
    COMPLETE with its last value; an errored one FAIL. Everything else (suggestions, the
    per-epoch ``trial.report``, save/restore of the study) is Ray's.
    """

    def __init__(self, *args, max_t: int, cap: ComputeCap | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._max_t = max_t
        self._cap = cap
        self.redrawn = 0  # draws over the compute cap, told to the study as infeasible, never trained

    def suggest(self, trial_id: str):
        """Ray's suggestion, drawn again while its network is over the compute cap (each such
        draw ends in the study as an infeasible trial: TPE ranks it after every feasible one)."""
        cap = getattr(self, "_cap", None)  # None in a searcher pickled before the cap existed
        for _ in range(MAX_DRAWS):
            config = super().suggest(trial_id)
            if cap is None or not isinstance(config, dict):
                return config
            ot_trial = self._ot_trials[trial_id]
            excess = cap.excess(config)
            ot_trial.set_constraint(CONSTRAINT, excess)
            if excess <= 0:
                return config
            self._ot_study.tell(ot_trial, None, state=TrialState.PRUNED)
            del self._ot_trials[trial_id]  # the next super().suggest asks the study for a new trial
            self.redrawn += 1
        raise RuntimeError(f"{MAX_DRAWS} draws in a row were over the compute cap ({self._cap.describe()})")

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)  # Ray's warning path
        ot_trial = self._ot_trials[trial_id]
        value = result.get(self.metric) if result else None
        step = result.get(TRAINING_ITERATION) if result else None
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        if finite and step is not None and not error:
            # Tune skips on_trial_result for the result on which the scheduler stopped the
            # trial (ASHA stops at max_t too), so that epoch's value is reported here.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "already reported": after a resume
                ot_trial.report(value, step)
        if error:
            state, values = TrialState.FAIL, None
        elif finite and step is not None and step >= self._max_t:
            state, values = TrialState.COMPLETE, value
        else:
            state, values = TrialState.PRUNED, None
        try:
            self._ot_study.tell(ot_trial, values, state=state)
        except Exception as exc:  # as Ray does: a bad value must not stop the search
            warnings.warn(f"could not record trial {trial_id} in the Optuna study: {exc}")
        self._completed_trials.add(trial_id)


class RestorableASHA(ASHAScheduler):
    """ASHA whose rungs survive ``Tuner.restore``.

    Tune re-adds every trial of a restored experiment through ``on_trial_add``; a trial
    that already has results gets them replayed into its bracket's rungs (recorded, no
    decision), so the trials that continue are judged against the same rungs as in an
    uninterrupted run.
    """

    def on_trial_add(self, tune_controller, trial):
        super().on_trial_add(tune_controller, trial)
        if trial.last_result and TRAINING_ITERATION in trial.last_result:
            bracket = self._trial_info[trial.trial_id]
            for result in recorded_results(trial):
                if self._time_attr in result and isinstance(result.get(self._metric), (int, float)):
                    bracket.on_result(trial, result[self._time_attr], self._metric_op * result[self._metric])


def recorded_results(trial) -> list[dict]:
    """The results Tune's JSON logger wrote for ``trial`` (result.json), oldest first."""
    try:
        fs, path = trial.storage.storage_filesystem, Path(trial.storage.trial_fs_path, "result.json").as_posix()
        with fs.open_input_stream(path) as handle:
            text = handle.read().decode()
    except (OSError, AttributeError):
        return []
    results = []
    for line in text.splitlines():
        try:
            results.append(json.loads(line))
        except ValueError:  # a line cut off by a kill
            continue
    return results


# ---------------------------------------------------------------------------------------
# BOHB over a define-by-run space
# ---------------------------------------------------------------------------------------

EXPLORE_DRAWS = 500
"""Random runs of a space function used to find every parameter it can ask for. A branch
taken with probability p is missed with probability (1 - p)^500: for our rarest branches
(p = 1/4) about 1e-62."""


class _RecordingTrial:
    """Stands in for ``optuna.Trial``: draws uniformly (seeded) and records every distribution."""

    def __init__(self, rng: random.Random, found: dict):
        self.rng, self.found = rng, found

    def _record(self, name, distribution):
        known = self.found.setdefault(name, distribution)
        if known != distribution:
            raise ValueError(f"parameter {name!r} is asked with two distributions: {known} and {distribution}")

    def suggest_float(self, name, low, high, *, step=None, log=False):
        self._record(name, optuna.distributions.FloatDistribution(low, high, step=step, log=log))
        return self.rng.uniform(low, high)

    def suggest_int(self, name, low, high, *, step=1, log=False):
        self._record(name, optuna.distributions.IntDistribution(low, high, step=step, log=log))
        return self.rng.randint(low, high)

    def suggest_categorical(self, name, choices):
        self._record(name, optuna.distributions.CategoricalDistribution(list(choices)))
        return self.rng.choice(list(choices))


def space_distributions(define: Callable, draws: int = EXPLORE_DRAWS, seed: int = 0) -> dict:
    """Every parameter ``define`` can ask for, with its distribution (name -> distribution)."""
    rng, found = random.Random(seed), {}
    for _ in range(draws):
        define(_RecordingTrial(rng, found))
    return dict(sorted(found.items()))


def configspace_from_define_by_run(define: Callable, seed: int):
    """A flat ConfigSpace with every parameter of ``define`` (inactive ones are ignored when
    the config is realised by :func:`realise`)."""
    import ConfigSpace as CS

    space = CS.ConfigurationSpace(seed=seed)
    for name, dist in space_distributions(define).items():
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            space.add(CS.CategoricalHyperparameter(name, list(dist.choices)))
        elif isinstance(dist, optuna.distributions.IntDistribution):
            space.add(CS.UniformIntegerHyperparameter(name, dist.low, dist.high, log=dist.log))
        elif dist.step is None:
            space.add(CS.UniformFloatHyperparameter(name, dist.low, dist.high, log=dist.log))
        else:
            raise ValueError(f"{name}: stepped floats have no BOHB translation here")
    return space


def realise(define: Callable, values: dict) -> dict:
    """The config ``define`` makes from ``values``: the parameters its branch asks for, and
    its constants (e.g. ``family``)."""
    plain = {k: (v.item() if hasattr(v, "item") else v) for k, v in values.items()}  # numpy -> Python
    trial = optuna.trial.FixedTrial(plain)
    constants = define(trial) or {}
    return {**trial.params, **constants}


def _bohb_search_class():
    from ray.tune.search.bohb import TuneBOHB

    class DefineByRunBOHB(TuneBOHB):
        """``TuneBOHB`` over a define-by-run space: BOHB models the full vector, the trial
        gets the config its branch uses."""

        def __init__(self, define: Callable, *, metric: str, mode: str, seed: int, cap: ComputeCap | None = None):
            self._define = define
            self._cap = cap
            self.redrawn = 0  # draws over the compute cap, drawn again (BOHB is not told)
            super().__init__(space=configspace_from_define_by_run(define, seed), metric=metric, mode=mode,
                             seed=seed)

        def suggest(self, trial_id: str):
            for _ in range(MAX_DRAWS):
                config = super().suggest(trial_id)
                if config is None:
                    return None
                config = realise(self._define, config)
                if self._cap is None or self._cap.excess(config) <= 0:
                    return config
                # Forget the draw: TuneBOHB counts it as a running trial, and a phantom one would
                # hold the concurrency limit (and the search) forever.
                self.running.discard(trial_id)
                self.trial_to_params.pop(trial_id, None)
                self.redrawn += 1
            raise RuntimeError(f"{MAX_DRAWS} draws in a row were over the compute cap ({self._cap.describe()})")

    return DefineByRunBOHB


def make_search(searcher: str, define: Callable, *, seed: int, samples: int, max_epochs: int,
                grace_period: int, metric: str, mode: str, sampler: optuna.samplers.BaseSampler | None = None,
                cap: ComputeCap | None = None):
    """(search algorithm, scheduler) for ``--searcher``; ``sampler`` replaces the Optuna
    sampler of ``tpe``/``random`` (the benchmark's hook); ``cap``: the compute cap
    (:mod:`tuning.search.compute_cap`), None for none."""
    if searcher == "bohb":
        from ray.tune.schedulers import HyperBandForBOHB

        search = _bohb_search_class()(define, metric=metric, mode=mode, seed=seed, cap=cap)
        return search, HyperBandForBOHB(time_attr=TRAINING_ITERATION, max_t=max_epochs,
                                        reduction_factor=REDUCTION_FACTOR)
    if sampler is None:
        sampler = optuna_sampler(searcher, seed, samples)
    search = StoppedAwareOptunaSearch(space=define, metric=metric, mode=mode, sampler=sampler, max_t=max_epochs,
                                      cap=cap)
    return search, asha(max_epochs, grace_period)


def asha(max_epochs: int, grace_period: int) -> RestorableASHA:
    return RestorableASHA(time_attr=TRAINING_ITERATION, max_t=max_epochs, grace_period=grace_period,
                          reduction_factor=REDUCTION_FACTOR)


def optuna_sampler(searcher: str, seed: int, samples: int) -> optuna.samplers.BaseSampler:
    """Seeded TPE or random sampling.

    ``constant_liar`` keeps parallel trials from being suggested the same point while
    earlier ones are still running; ``group`` lets multivariate TPE handle the conditional
    (per-layer) parameters.
    """
    if searcher == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                          n_startup_trials=max(4, min(10, samples // 3)))


def describe(search, scheduler) -> dict:
    """The searcher's and scheduler's settings, for the run record."""
    info = {"search_algorithm": type(search).__name__, "scheduler": type(scheduler).__name__}
    sampler = getattr(search, "_sampler", None)
    if sampler is not None:
        info["sampler"] = type(sampler).__name__
        info["sampler_settings"] = {k.lstrip("_"): v for k, v in vars(sampler).items()
                                    if isinstance(v, (bool, int, float, str, type(None)))}
    info["scheduler_settings"] = {k.lstrip("_"): v for k, v in vars(scheduler).items()
                                  if isinstance(v, (bool, int, float, str, type(None)))}
    return info


def load_study(experiment_dir) -> tuple[optuna.Study, dict[str, int]]:
    """The Optuna study an experiment's searcher saved (tpe/random), and Tune trial id ->
    Optuna trial number. For inspection: ``optuna.visualization`` takes the study."""
    import pickle

    states = sorted(Path(experiment_dir).glob("searcher-state-*.pkl"))
    if not states:
        raise FileNotFoundError(f"{experiment_dir}: no searcher-state-*.pkl (not a Tune experiment folder?)")
    with open(states[-1], "rb") as handle:
        state = pickle.load(handle)
    if "_ot_study" not in state:
        raise ValueError(f"{experiment_dir}: its searcher is not an Optuna search")
    return state["_ot_study"], {tid: t.number for tid, t in state["_ot_trials"].items()}
