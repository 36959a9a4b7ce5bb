"""The search's compute cap (``tune --max-mflop``, issue 28): the count it limits, the searchers
that keep every trained network within it, the refusal of a cap nothing fits, and a real
search that honours it."""

from __future__ import annotations

import json
import random

import optuna
import pytest

import models
import search_spaces
from models.flops import flops_per_spike
from tuning.errors import InputError
from tuning.search import searchers
from tuning.search.compute_cap import CONSTRAINT, ComputeCap, check_feasible
from tuning.settings import DEFAULT_MAX_MFLOP, TuneSettings, check_max_mflop, parse_max_mflop


def cnn_cap(max_mflop: float) -> ComputeCap:
    return ComputeCap("cnn", 48, (6,), 1, max_mflop)


def test_cap_counts_the_network_the_config_builds():
    config = search_spaces.sample_configs("cnn", ["A12"], 1, seed=3)[0]
    network = models.build_model("cnn", config, 48, [6], 1)
    assert cnn_cap(1.0).mflop(config) == pytest.approx(flops_per_spike(network, 48) / 1e6)
    # Multi-task: the most expensive head (a 6-class head costs more than a 2-class one).
    mtl = ComputeCap("mtl-ffn", 48, (2, 6), 1, 1.0)
    config = {"ffn_n_layers": 1, "ffn_units_l0": 16}
    network = models.build_model("mtl-ffn", config, 48, [2, 6], 1)
    assert mtl.mflop(config) * 1e6 == pytest.approx(flops_per_spike(network, 48, 1))
    assert flops_per_spike(network, 48, 1) > flops_per_spike(network, 48, 0)
    # Several channels multiply the input the trunk reads.
    assert ComputeCap("ffn", 48, (3,), 4, 1.0).mflop(config) > ComputeCap("ffn", 48, (3,), 1, 1.0).mflop(config)


def fake_search(searcher: str, cap: ComputeCap, n: int, seed: int = 0) -> tuple[object, list[float], list[int]]:
    """``n`` suggestions of ``searcher`` over the cnn space, each completed with a made-up score
    that grows with the network's cost (the pull toward the cap a real search feels). Returns
    the searcher, each trained network's MFLOP and the redraws behind each suggestion."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search, _ = searchers.make_search(searcher, search_spaces.get_space("cnn", ["A12"]), seed=seed, samples=n,
                                      max_epochs=4, grace_period=1, metric="val_accuracy", mode="max", cap=cap)
    search.set_max_concurrency(1)  # as Tune sets it on one CPU: each trial ends before the next is asked for
    rng, costs, redraws = random.Random(seed), [], []
    for i in range(n):
        before = search.redrawn
        config = search.suggest(f"t{i}")
        assert config is not None, f"t{i}: no suggestion with nothing running"  # a redraw must not hold a slot
        costs.append(cap.mflop(config))
        redraws.append(search.redrawn - before)
        search.on_trial_complete(f"t{i}", {"val_accuracy": min(1.0, costs[-1] + 0.05 * rng.random()),
                                           "training_iteration": 4})
    return search, costs, redraws


@pytest.mark.parametrize("searcher", ["tpe", "random"])
def test_searchers_train_only_networks_within_the_cap(searcher):
    cap = cnn_cap(0.2)  # about half the cnn space on 48 samples is above it
    search, costs, redraws = fake_search(searcher, cap, 30)
    assert max(costs) <= 0.2 and search.redrawn == sum(redraws) > 0
    trials = search._ot_study.get_trials(deepcopy=False)
    over = [t for t in trials if t.constraints.get(CONSTRAINT, 0) > 0]
    # Every draw over the cap is in the study as an infeasible trial (TPE ranks those after every
    # feasible one) and never reached Ray; every trained one is feasible and COMPLETE.
    assert len(over) == search.redrawn and all(t.state == optuna.trial.TrialState.PRUNED for t in over)
    feasible = [t for t in trials if t not in over]
    assert len(feasible) == 30 and all(t.state == optuna.trial.TrialState.COMPLETE for t in feasible)
    assert all(t.constraints[CONSTRAINT] <= 0 for t in feasible)


def test_without_a_cap_the_search_is_unchanged():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = search_spaces.get_space("cnn", ["A12"])
    configs = []
    for cap in (None, cnn_cap(1e9)):  # a cap nothing reaches draws exactly what no cap draws
        search, _ = searchers.make_search("tpe", space, seed=4, samples=12, max_epochs=4, grace_period=1,
                                          metric="val_accuracy", mode="max", cap=cap)
        configs.append([search.suggest(f"t{i}") for i in range(12)])
    assert configs[0] == configs[1]


def test_bohb_redraws_over_the_cap():
    pytest.importorskip("hpbandster")
    search, costs, _ = fake_search("bohb", cnn_cap(0.2), 12)
    assert max(costs) <= 0.2 and search.redrawn > 0


def test_a_cap_nothing_fits_is_refused_with_the_data_and_the_way_out(tiny_dataset_dir):
    from tuning.settings import load_for_tuning

    settings = TuneSettings(data_dir=str(tiny_dataset_dir), folds=2)
    groups = load_for_tuning("lstm", "T3", settings)
    with pytest.raises(InputError) as caught:
        check_feasible("lstm", groups, 1e-6)
    message = str(caught.value)
    assert "T3" in message and str(groups[0][0].path) in message and "--max-mflop none" in message
    share, = check_feasible("lstm", groups, 1e3)
    assert share == 1.0
    share, = check_feasible("cnn", groups, 0.05)
    assert 0 < share < 1


def test_max_mflop_argument_and_defaults():
    assert parse_max_mflop("0.25") == 0.25 and parse_max_mflop("none") is None and parse_max_mflop("0") is None
    with pytest.raises(InputError, match="--max-mflop"):
        parse_max_mflop("fast")
    with pytest.raises(InputError, match="--max-mflop"):
        check_max_mflop(-1.0)
    assert TuneSettings().max_mflop == DEFAULT_MAX_MFLOP
    from tuning.study.runner import study_settings

    assert study_settings(None, {}, smoke=False)[0].max_mflop is None  # the study compares accuracy, uncapped


@pytest.mark.ray
def test_a_real_search_trains_only_networks_within_the_cap(ray_2cpu, module_tiny_dataset_dir, tmp_path, capsys):
    from tuning.search.driver import run_tuning

    settings = TuneSettings(data_dir=str(module_tiny_dataset_dir), folds=2)
    from tuning.settings import load_for_tuning

    dataset = load_for_tuning("cnn", "T2", settings)[0][0]
    cap = ComputeCap.for_datasets("cnn", [dataset], 0.05)
    outcome, = run_tuning("cnn", "T2", data_dir=str(module_tiny_dataset_dir), storage=str(tmp_path / "rr"),
                          samples=6, max_epochs=2, grace_period=1, max_mflop=0.05)
    assert outcome.complete and outcome.n_trials == 6 and outcome.max_mflop == 0.05
    configs = [json.loads((folder / "params.json").read_text()) for folder in outcome.path.glob("trial_*")]
    assert len(configs) == 6 and all(cap.mflop(c) <= 0.05 for c in configs)
    assert outcome.redrawn is not None and outcome.redrawn >= 0
    record = json.loads((outcome.path / "spikesort_run.json").read_text())
    assert record["settings"]["max_mflop"] == 0.05
    assert "Every network within the compute cap of 0.05 MFLOP a spike" in capsys.readouterr().out
