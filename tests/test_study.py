"""The replicated study: ``scripts/study.sh`` / ``run_study``.

A tiny study (ffn and mtl-ffn on the tiny T2 and T3 sets, 2 replicates of 2 trials x 2
epochs, a real local Ray runtime) runs once for the module; the tests read what it wrote.
Then the same study is asked for a third replicate and interrupted (Ctrl-C, raised where
the study's own search function is called) after that replicate's first search, and run
again: it must redo nothing that was finished. The end-to-end ``scripts/study.sh --smoke``
on the shipped stand-ins is marked slow.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuning import statistics as st
from tuning.cli import main
from tuning.settings import TuneSettings, load_for_tuning
from tuning.study import across_replicates as across
from tuning.study import budget as budgets
from tuning.study import replicates as reps
from tuning.study import runner

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(samples=2, max_epochs=2, grace_period=1, folds=2, repeats=1, num_cpus=2)


def study(work: Path, data_dir: Path, replicates: int, **kwargs):
    return runner.run_study("ffn,mtl-ffn", "T2,T3", replicates=replicates, time_budget=None,
                            results_dir=work / "results", data_dir=str(data_dir), storage=str(work / "ray"),
                            log=lambda message: None, **TINY, **kwargs)


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, module_tiny_dataset_dir):
    work = tmp_path_factory.mktemp("study")
    return work, module_tiny_dataset_dir, study(work, module_tiny_dataset_dir, 2)


# ---------------------------------------------------------------------------------------------- the design
@pytest.mark.ray
def test_approaches_of_a_replicate_share_its_split_and_replicates_differ(tiny_study):
    work, data_dir, result = tiny_study
    records = [json.loads(p.read_text()) for p in sorted((work / "results" / reps.FOLDER).rglob("*.json"))]
    assert len(records) == 2 * 3  # 2 replicates x (ffn on T2, ffn on T3, mtl-ffn on T2+T3)
    seeds = {}
    for record in records:
        run = json.loads((Path(record["experiment"]) / "spikesort_run.json").read_text())
        assert run["settings"]["seed"] == record["seed"] == reps.replicate_seed(0, record["replicate"])
        seeds.setdefault(record["replicate"], set()).add(run["settings"]["seed"])
    assert seeds == {0: {0}, 1: {1000}}
    # The test rows each approach was scored on: the same within a replicate, not across.
    settings = TuneSettings(data_dir=str(data_dir), folds=2, repeats=1)
    (t2,), (t3,) = load_for_tuning("ffn", "T2,T3", settings)
    (both,) = load_for_tuning("mtl-ffn", "T2,T3", settings)
    for r in (0, 1):
        s = reps.replicate_settings(settings, r)
        single = reps.score_jobs([t2], s, runner.CURVE_FRACTIONS)
        multi = reps.score_jobs(both, s, runner.CURVE_FRACTIONS)
        for job_single, job_multi in zip(single, multi):
            assert np.array_equal(job_single.test[0], job_multi.test[0])
            assert np.array_equal(job_single.train[0], job_multi.train[0])  # curves: the same nested rows
    first, second = (reps.score_jobs([t2], reps.replicate_settings(settings, r), ())[0] for r in (0, 1))
    assert not np.array_equal(first.test[0], second.test[0])
    scores = result.scores
    assert set(scores["replicate"]) == {0, 1}
    n_test = scores[scores["fraction"] == 1.0].groupby(["replicate", "dataset"])["n_test"].nunique()
    assert (n_test == 1).all()


@pytest.mark.ray
def test_every_search_got_the_same_trials_and_epochs(tiny_study):
    _, _, result = tiny_study
    effort = result.effort
    assert len(effort) == 6
    assert set(effort["samples"]) == {TINY["samples"]} and set(effort["max_epochs"]) == {TINY["max_epochs"]}
    assert (effort["n_trials"] == TINY["samples"]).all() and not effort["unequal"].any()
    assert (effort["trial_epochs"] >= TINY["samples"]).all()  # every trial trained at least one epoch


@pytest.mark.ray
def test_the_report_leads_with_the_replicated_answer_in_honest_words(tiny_study):
    work, _, result = tiny_study
    text = result.report.read_text()
    assert text.index("## Answer") < text.index("## The paired differences") < text.index("## What was run")
    assert "Over 2 replicates" in text and "fewer than 3 replicates" in text
    assert "did not help" not in text
    assert set(result.pairs["verdict"]) <= set(st.REPLICATE_VERDICTS)
    assert set(zip(result.pairs["approach"], result.pairs["vs_approach"])) == {("mtl-ffn", "ffn")}
    assert "## For the configurations picked (secondary)" in text  # replicate 0 exported and compared per fold
    assert "## Every unit" in text and "- **T2, ffn**: unit recall" in text
    for name in ("replicate_scores", "replicate_pairs", "replicate_curves", "replicate_spread", "search_effort"):
        assert (work / "results" / "Study" / f"{name}.csv").is_file()
    assert (work / "results" / "Classic FFN PyTorch" / "Model" / "T2" / "bundle.json").is_file()
    run = json.loads((work / "results" / "Feature Based MTL FFN" / "Run Config" / "run_T2.json").read_text())
    assert "/replicate-00/" in str(run["experiment"])


@pytest.mark.ray
def test_an_interrupted_study_redoes_no_finished_search(tiny_study, monkeypatch):
    work, data_dir, _ = tiny_study
    finished = {p: p.stat().st_mtime_ns for p in (work / "results" / reps.FOLDER).rglob("*.json")}
    calls = []
    real = reps.run_search

    def interrupt_after_one(family, group, settings, *args, **kwargs):
        calls.append((kwargs["replicate"], family))
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while replicate 2's second search runs
        return real(family, group, settings, *args, **kwargs)

    monkeypatch.setattr(reps, "run_search", interrupt_after_one)
    with pytest.raises(KeyboardInterrupt):
        study(work, data_dir, 3, export=False)
    assert calls == [(2, "ffn"), (2, "ffn")]
    calls.clear()
    monkeypatch.setattr(reps, "run_search", lambda *a, **k: (calls.append((k["replicate"], a[0])), real(*a, **k))[1])
    result = study(work, data_dir, 3, export=False)
    assert calls == [(2, "ffn"), (2, "mtl-ffn")]  # replicate 2's first search was kept, replicates 0-1 untouched
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert result.replicates_done == 3 and set(result.scores["replicate"]) == {0, 1, 2}


# ---------------------------------------------------------------------------------------------- budget
def test_an_impossible_budget_is_refused_before_any_search_with_the_budget_that_fits(tmp_path, tiny_dataset_dir,
                                                                                    capsys):
    code = main(["study", "--families", "ffn,mtl-ffn", "--datasets", "T2,T3", "--data-dir", str(tiny_dataset_dir),
                 "--time-budget", "0.002", "--samples", "8", "--max-epochs", "4", "--folds", "2", "--repeats", "1",
                 "--results-dir", str(tmp_path / "r"), "--storage", str(tmp_path / "s")])
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "cannot fit 3 replicates" in err[0], err
    needed = float(err[0].split("give --time-budget ")[1].split()[0])
    assert needed > 0.002
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()  # no search, nothing written


def plan(budget_h, *, wanted=10, samples=16, fixed=False):
    costs = {"ffn": [0.1, 0.1], "mtl-ffn": [0.3]}
    effort = budgets.Effort(samples, 20, 2, concurrency=2)
    return budgets.plan_replicates(costs, effort, budget_s=None if budget_h is None else budget_h * 3600,
                                   wanted=wanted, samples_fixed=fixed, folds=5, repeats=3,
                                   curve_fractions={"ffn": (0.1, 0.25, 0.5), "mtl-ffn": (0.1, 0.25, 0.5)})


def test_the_plan_keeps_the_most_replicates_then_the_most_trials_that_fit():
    roomy = plan(100)
    assert (roomy.replicates, roomy.samples) == (10, 16) and roomy.total_s <= 100 * 3600
    at_8 = plan(None, samples=8)
    budget = roomy.export_s + 10 * (roomy.replicate_s + at_8.replicate_s) / 2  # between 10 x 8 and 10 x 16 trials
    fewer_trials = plan(budget / 3600)
    assert fewer_trials.replicates == 10 and 8 <= fewer_trials.samples < 16 and fewer_trials.total_s <= budget
    assert plan(None, samples=fewer_trials.samples + 1).replicate_s * 10 + roomy.export_s > budget  # the most
    assert "trials per search (not 16)" in fewer_trials.reason
    budget = at_8.export_s + 5.5 * at_8.replicate_s  # six replicates do not fit even at the floor
    fewer_replicates = plan(budget / 3600)
    assert fewer_replicates.replicates == 5 and "10 wanted" in fewer_replicates.reason
    assert fewer_replicates.total_s <= budget
    assert plan(None, samples=fewer_replicates.samples + 1).replicate_s * 5 + at_8.export_s > budget
    with pytest.raises(budgets.BudgetTooSmall) as refused:
        plan((roomy.export_s + 3 * roomy.replicate_s * 0.9) / 3600, fixed=True)  # --samples given: never shrunk
    assert refused.value.needed_hours * 3600 >= 3 * roomy.replicate_s
    assert plan((roomy.export_s + 3 * roomy.replicate_s * 0.9) / 3600).samples < 16  # not fixed: it shrinks
    assert plan(None, wanted=4).replicates == 4
    small = plan(1, samples=2)  # fewer trials than the floor asked for (a smoke run): kept, never raised
    assert small.samples == 2 and small.replicates == 10
    assert plan(1, wanted=2).replicates == 2  # two asked for, two planned


def test_the_progress_estimate_scales_the_cost_model_by_what_the_searches_took():
    roomy = plan(100)
    searches = [("ffn", "A2"), ("ffn", "A3"), ("mtl-ffn", "A2+A3")]
    predicted = runner.predicted_search_seconds(searches, roomy)
    assert predicted == roomy.per_search_s["ffn"] + roomy.per_search_s["mtl-ffn"]
    assert sum(predicted) == pytest.approx(roomy.replicate_s)
    assert predicted[2] > predicted[0]  # the multi-task search costs more per epoch
    # Two cheap searches ran, each twice as long as predicted: the rest of 3 replicates is the
    # prediction doubled, the costly multi-task searches counted at their own cost.
    left = budgets.seconds_left(predicted, 2, 9, ran_seconds=2 * (predicted[0] + predicted[1]),
                                ran_predicted=predicted[0] + predicted[1])
    assert left == pytest.approx(2 * (predicted[2] + 2 * sum(predicted)))
    # Without a cost model (no budget, so nothing calibrated): the mean search's time.
    uncalibrated = budgets.plan_replicates({}, budgets.Effort(16, 20, 2, 2), budget_s=None, wanted=3,
                                           samples_fixed=True, folds=5, repeats=3, curve_fractions={})
    flat = runner.predicted_search_seconds(searches, uncalibrated)
    assert flat == [1.0, 1.0, 1.0]
    assert budgets.seconds_left(flat, 2, 9, ran_seconds=60.0, ran_predicted=2.0) == pytest.approx(7 * 30.0)
    assert budgets.seconds_left(flat, 9, 9, ran_seconds=60.0, ran_predicted=2.0) == 0.0


def test_expected_epochs_under_asha():
    assert budgets.expected_epochs(4, 4) == 4
    # grace 4, rungs 4 and 12 then 36 < 40: 4 + 8/3 + 24/9 + 4/27 epochs, times the asynchronous factor
    assert budgets.expected_epochs(40, 4) == pytest.approx((4 + 8 / 3 + 24 / 9 + 4 / 27) * budgets.ASYNC_PROMOTION)


# ---------------------------------------------------------------------------------------------- statistics
def test_least_detectable_difference_matches_a_hand_computed_case():
    # R = 10 independent differences of sd 2 points, alpha 0.05, 80% power: the textbook
    # (t_{0.975,9} + t_{0.80,9}) * 2 / sqrt(10) = (2.2622 + 0.8834) * 0.6325 = 1.989 points;
    # the exact noncentral-t answer is a little above.
    delta = st.least_detectable_difference(2.0, 10, 0.0, 0.05)
    assert (2.2622 + 0.8834) * 2 / math.sqrt(10) == pytest.approx(1.9894, abs=1e-3)
    assert delta == pytest.approx(1.9894, rel=0.01)
    scale = 2 / math.sqrt(10)
    critical = stats.t.ppf(0.975, 9)
    power = stats.nct.sf(critical, 9, delta / scale) + stats.nct.cdf(-critical, 9, delta / scale)
    assert power == pytest.approx(0.80, abs=1e-6)
    # The correction for overlapping splits widens it: sqrt(1/10 + 0.2) / sqrt(1/10).
    assert st.least_detectable_difference(2.0, 10, 0.2, 0.05) == pytest.approx(delta * math.sqrt(3), rel=1e-6)
    assert math.isnan(st.least_detectable_difference(2.0, 1, 0.0, 0.05))


def test_replicate_test_interval_and_share():
    diffs = [1.0, 2.0, 0.5, 1.5, -0.2, 0.8, 1.1, 0.9, 1.3, 0.7]
    out = st.replicate_test(diffs, 850, 150)
    sd = np.std(diffs, ddof=1)
    half = stats.t.ppf(0.975, 9) * sd * math.sqrt(1 / 10 + 150 / 850)
    assert out["ci_low"] == pytest.approx(np.mean(diffs) - half) and out["ci_high"] == pytest.approx(np.mean(diffs) + half)
    assert out["share_won"] == 0.9 and out["n"] == 10


@pytest.mark.parametrize("mean, p, p_eq, words", [
    (2.0, 0.01, 0.9, st.BETTER), (-2.0, 0.01, 0.9, st.WORSE), (0.1, 0.6, 0.01, st.EQUIVALENT),
    (0.1, 0.6, 0.2, st.NOT_SHOWN), (3.0, 0.06, math.nan, st.NOT_SHOWN)])
def test_verdict_words_follow_the_tests(mean, p, p_eq, words):
    assert st.replicate_verdict(mean, p, p_eq) == words


def test_the_sentence_never_says_did_not_help():
    row = {"verdict": st.NOT_SHOWN, "mean_diff": -0.4, "ci_low": -3.1, "ci_high": 2.3, "p_adjusted": 0.8,
           "share_won": 0.4, "n": 10, "least_detectable": 3.6}
    text = st.verdict_sentence(row, "mtl-cnn", "cnn", 1.0)
    assert text.startswith("mtl-cnn not shown to differ from cnn: -0.40 points [-3.10, +2.30]")
    assert "detect 3.60 points with 80% power" in text and "did not help" not in text


def test_primary_pairs_are_fixed_by_the_families():
    assert across.primary_pairs(["ffn", "cnn", "mtl-ffn", "mtl-cnn"]) == [("mtl-ffn", "ffn"), ("mtl-cnn", "cnn")]
    assert across.primary_pairs(["cnn", "mtl-ffn"]) == []
    assert across.curve_pairs(["ffn", "mtl-ffn", "cnn"]) == [("mtl-ffn", "ffn")]


def test_pairs_are_holm_adjusted_and_unequal_effort_is_flagged():
    rows = []
    rng = np.random.default_rng(0)
    for r in range(8):
        for dataset, gain in (("D1", 0.05), ("D2", 0.0)):
            base = 0.7 + rng.normal(0, 0.01)
            for family, acc in (("ffn", base), ("mtl-ffn", base + gain + rng.normal(0, 0.002))):
                rows.append({"replicate": r, "family": family, "dataset": dataset, "fraction": 1.0, "accuracy": acc,
                             "n_train": 700, "n_val": 150, "n_test": 150})
    effort = pd.DataFrame([{"replicate": 3, "family": "mtl-ffn", "datasets": "D1+D2", "unequal": True}])
    pairs = across.compare_pairs(pd.DataFrame(rows), [("mtl-ffn", "ffn")], unequal=effort)
    d1, d2 = pairs.set_index("dataset").loc["D1"], pairs.set_index("dataset").loc["D2"]
    assert d1["verdict"] == st.BETTER and d1["p_adjusted"] == pytest.approx(min(1.0, 2 * d1["p_value"]), rel=1e-9) \
        or d1["p_adjusted"] >= d1["p_value"]
    assert d2["verdict"] in (st.EQUIVALENT, st.NOT_SHOWN) and d1["unequal_replicates"] == "3"


# ---------------------------------------------------------------------------------------------- input
@pytest.mark.parametrize("argv, text", [
    (["study", "--families", "ffn,transformer"], "--families"),
    (["study", "--time-budget", "-1"], "--time-budget"),
    (["study", "--rope", "-2"], "--rope"),
    (["study", "--datasets", "nope"], "unknown dataset"),
    (["study", "--replicates", "0"], "--replicates"),
])
def test_bad_study_input_is_one_error_line(argv, text, capsys, tmp_path):
    assert main([*argv, "--results-dir", str(tmp_path / "r"), "--storage", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and text in err[0]


def test_study_help_shows_each_default_once_and_has_the_searcher(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = capsys.readouterr().out
    assert "--searcher" in text and "(default: None)" not in text
    for line in text.splitlines():
        assert line.count("default") <= 1, line


def test_run_study_leaves_its_arguments_alone(tmp_path, tiny_dataset_dir):
    settings = TuneSettings(data_dir=str(tiny_dataset_dir), storage=str(tmp_path / "s"), samples=3)
    before = repr(settings)
    with pytest.raises(Exception):
        runner.run_study(["ffn", "nope"], "T2", settings, results_dir=tmp_path / "r")
    assert repr(settings) == before


def test_smoke_data_are_the_files_own_rows(tmp_path, tiny_dataset_dir):
    from tuning.data.readers import load_dataset

    settings = TuneSettings(data_dir=str(tiny_dataset_dir), storage=str(tmp_path / "s"), folds=2)
    folder, names = runner.smoke_data_dir(settings, "T2,T3")
    assert names == "T2,T3"
    copy = (folder / "T2.csv").read_text().splitlines()
    original = (tiny_dataset_dir / "T2.csv").read_text().splitlines()
    assert copy[0] == original[0]  # the header, then the file's own lines
    assert set(copy) <= set(original) and len(copy) == 1 + runner.SMOKE_ROWS_PER_CLASS * 2
    data = load_dataset(folder / "T2.csv", "label")
    assert list(np.bincount(data.y)) == [runner.SMOKE_ROWS_PER_CLASS] * 2


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_smoke_study_end_to_end_from_the_script(tmp_path):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    command = [str(ROOT / "scripts" / "study.sh"), "--smoke", "--families", "cnn,mtl-cnn,ft-cnn",
               "--results-dir", str(tmp_path / "results"), "--storage", str(tmp_path / "ray"), "--num-cpus", "2"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "results" / "report.md").read_text()
    assert "Over 2 replicates" in report
    for approach, versus in (("mtl-cnn", "cnn"), ("ft-cnn", "cnn"), ("ft-cnn", "mtl-cnn")):  # the primary pairs
        assert f"| A2 | {approach} | {versus} | 2 |" in report and f"| A3 | {approach} | {versus} | 2 |" in report
    assert "| A2 | ft-cnn | cnn | 50% |" in report  # its learning curve beside the single-task twin
    assert done.stderr.count("study: [") == 2 * 4  # one line per search: 2 replicates x (cnn x 2, mtl-cnn, ft-cnn)
