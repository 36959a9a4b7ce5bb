"""``scripts/study.sh``: the whole question in one command.

The end-to-end test runs ``scripts/study.sh --smoke`` on the shipped stand-ins (its default:
the first two datasets, 30 rows per class, 2 trials x 2 epochs, 2x1 folds, all six
families, comparison, learning curves at 25% and 100%, report), then runs it again and
checks that every experiment is skipped. It is marked slow: nine Tune experiments with
their exports take minutes on a loaded 2-CPU machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuning.study import runner
from tuning.cli import main
from tuning.settings import TuneSettings

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("ffn", "cnn", "lstm", "mtl-ffn", "mtl-cnn", "mtl-lstm")


def run_study(work: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    command = [str(ROOT / "scripts" / "study.sh"), "--smoke", "--results-dir", str(work / "results"),
               "--storage", str(work / "ray_results"), "--num-cpus", "2", *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    work = tmp_path_factory.mktemp("study")
    start = time.time()
    first = run_study(work)
    first_seconds = time.time() - start
    second = run_study(work)
    return work, first, second, first_seconds


@pytest.mark.slow
@pytest.mark.subprocess
def test_smoke_study_end_to_end(smoke_study):
    work, first, _, seconds = smoke_study
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = work / "results"
    print(f"smoke study: {seconds:.0f} s")
    for family in FAMILIES:
        assert f"study: {family} on " in first.stderr
    # Every approach exported, the comparison written, the curves computed, one report.
    approaches = {p.name for p in results.iterdir() if (p / "Individual Dataset Results").is_dir()}
    assert {"Classic FFN PyTorch", "Classic CNN PyTorch", "Classic LSTM PyTorch", "Feature Based MTL FFN",
            "Feature Based MTL CNN", "Feature Based MTL LSTM"} <= approaches
    tests = pd.read_csv(results / "comparison_tests.csv", dtype={"dataset": str})
    primary = tests[tests["comparison"] == "primary"]
    assert len(primary) == 6  # 3 MTL families x 2 datasets, each vs its same-trunk twin
    assert set(zip(primary["approach"].str[-4:].str.strip(), primary["vs_approach"].str.split().str[1])) <= {
        ("FFN", "FFN"), ("CNN", "CNN"), ("LSTM", "LSTM")}
    curves = pd.read_csv(results / "Learning Curves" / "learning_curves.csv", dtype={"dataset": str})
    assert set(curves["fraction"]) == {0.25, 1.0}
    assert set(curves["dataset"]) == {"A2", "A3"}
    points = pd.read_csv(results / "Learning Curves" / "learning_curve_points.csv", dtype={"dataset": str})
    assert set(zip(points["dataset"], points["kind"])) == {(d, k) for d in ("A2", "A3")
                                                           for k in ("single-task", "multi-task")}
    for dataset, part in points.groupby("dataset"):
        for _, approach in part.groupby("approach"):
            spikes = approach.sort_values("fraction")["training_spikes"].to_list()
            assert spikes[0] < spikes[-1]
    report = (results / "report.md").read_text()
    assert report.index("## Answer") < report.index("| dataset |") < report.index("## How it was computed")
    for image in ("comparison.png", "learning_curves.png", "confusion_matrices.png"):
        assert f"]({image})" in report and (results / image).read_bytes()[:4] == b"\x89PNG"
    assert "Holm" in report and "practically equivalent" in report and "one-split" in report
    assert first.stdout.count("| ran |") == 9  # the first run's report (printed); the rerun's reuses them


@pytest.mark.slow
@pytest.mark.subprocess
def test_smoke_study_rerun_skips_what_is_up_to_date(smoke_study):
    work, first, second, _ = smoke_study
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert second.stderr.count("exported results match the data and settings; skipped") == 9
    assert "learning curve of" in second.stderr and "up to date; skipped" in second.stderr
    assert "Trial status" not in second.stdout  # no search ran
    report = (work / "results" / "report.md").read_text()
    assert report.count("| reused |") == 9


# --------------------------------------------------------------------------- fast checks
@pytest.mark.parametrize("argv, text", [
    (["study", "--families", "ffn,transformer"], "--families"),
    (["study", "--time-budget", "-1"], "--time-budget"),
    (["study", "--rope", "-2"], "--rope"),
    (["study", "--datasets", "nope"], "unknown dataset"),
    (["study", "--search-repeats", "0"], "--search-repeats"),
])
def test_bad_study_input_is_one_error_line(argv, text, capsys, tmp_path):
    assert main([*argv, "--results-dir", str(tmp_path / "r"), "--storage", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and text in err[0]


def test_the_full_study_runs_three_searches_of_each_by_default_the_smoke_run_one():
    import argparse
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    assert runner.search_repeats(parser.parse_args([])) == 3
    assert runner.search_repeats(parser.parse_args(["--smoke"])) == 1
    assert runner.search_repeats(parser.parse_args(["--smoke", "--search-repeats", "2"])) == 2


def test_time_budget_sets_aside_the_exports_and_the_curves():
    assert runner.StudyClock.for_budget(time.time(), None).search_budget(["ffn"]) is None
    clock = runner.StudyClock.for_budget(time.time(), 1000 / 3600)
    usable = 1000 * (1 - runner.CURVE_SHARE)
    # Nothing exported yet: each export is priced as long as its search.
    assert clock.search_budget(["ffn"] * 4) == pytest.approx(usable / (4 * (1 + runner.EXPORT_RATIO_GUESS)), rel=0.01)
    # ffn's exports took 30 s on average: each ffn export left is charged that, cnn's still the guess.
    clock.add("ffn", 20.0)
    clock.add("ffn", 40.0)
    assert clock.expected_export("ffn") == pytest.approx(30.0) and clock.expected_export("cnn") is None
    assert clock.search_budget(["ffn", "ffn", "cnn"]) == pytest.approx(
        (usable - 60.0) / (3 + runner.EXPORT_RATIO_GUESS), rel=0.01)
    assert clock.overrun(["ffn", "cnn"]) == 0.0
    # An export that alone outlasts what is left: the floor, and the overrun it implies.
    clock.add("mtl-lstm", 2000.0)
    assert clock.search_budget(["mtl-lstm", "ffn"]) == runner.MIN_SEARCH_S
    assert clock.overrun(["mtl-lstm", "ffn"]) == pytest.approx(2000 + 30 + 2 * runner.MIN_SEARCH_S - usable, abs=2)


def test_the_report_says_where_the_time_went():
    records = [{"status": "ran", "seconds": 300.0, "search_seconds": 120.0},
               {"status": "reused", "seconds": 999.0, "search_seconds": 1.0},
               {"status": "ran", "seconds": 60.0, "search_seconds": 60.0}]
    assert runner.phase_line(records, 90.0) == ("- Time in this run: searches 3.0 min, exports 3.0 min "
                                               "(2 experiments), learning curves 1.5 min.")


def test_records_match_only_the_same_data_and_settings(tmp_path, tiny_dataset_dir):
    from tuning.settings import load_for_tuning

    settings = TuneSettings(data_dir=str(tiny_dataset_dir), folds=2, repeats=1)
    group = load_for_tuning("cnn", "T2", settings)[0]
    results = tmp_path / "results"
    record = {"experiment": "cnn-T2-1", "fingerprint": runner.fingerprint("cnn", group, settings)}
    path = runner.record_path(results, "cnn", group)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    run_config = results / "Classic CNN PyTorch" / "Run Config" / "run_T2.json"
    run_config.parent.mkdir(parents=True)
    run_config.write_text(json.dumps({"experiment": "/somewhere/cnn-T2-1"}))
    assert runner.up_to_date(results, "cnn", group, settings) is not None
    assert runner.up_to_date(results, "cnn", group, TuneSettings(data_dir=str(tiny_dataset_dir), folds=3)) is None
    assert runner.up_to_date(results, "cnn", group, settings, ensemble=3) is None  # now with an ensemble
    assert runner.up_to_date(results, "cnn", group, settings, ensemble=1) is not None  # 1: none
    run_config.write_text(json.dumps({"experiment": "/somewhere/cnn-T2-2"}))  # re-exported from another search
    assert runner.up_to_date(results, "cnn", group, settings) is None
    run_config.write_text(json.dumps({"experiment": "/somewhere/cnn-T2-1"}))
    data = Path(group[0].path)
    data.write_text(data.read_text() + data.read_text().splitlines()[-1] + "\n")  # the data changed
    group = load_for_tuning("cnn", "T2", settings)[0]
    assert runner.up_to_date(results, "cnn", group, settings) is None


def test_search_repeats_get_their_own_seeds_and_trees(tmp_path):
    trees = runner.repeat_trees(tmp_path / "results", 7, 3)
    assert trees == [(7, tmp_path / "results"), (1007, tmp_path / "results" / "Search Repeats" / "seed-1007"),
                     (2007, tmp_path / "results" / "Search Repeats" / "seed-2007")]


def test_across_searches_interval_and_verdict_counts():
    from tuning.study import comparison

    def run(diff, verdict, acc):
        tests = pd.DataFrame([{"dataset": "A2", "comparison": "primary", "score": "accuracy",
                               "approach": "Feature Based MTL FFN", "vs_approach": "Classic FFN PyTorch",
                               "mean_diff": diff, "verdict": verdict}])
        summary = pd.DataFrame([{"dataset": "A2", "approach": "Classic FFN PyTorch", "kind": "single-task",
                                 "accuracy_mean": acc}])
        return {"tests": tests, "summary": summary}

    diffs, spread = comparison.across_searches([run(1.0, "better", 0.70), run(-0.5, "no detectable difference", 0.72),
                                                run(0.4, "practically equivalent", 0.74)])
    r = diffs.iloc[0]
    values = np.array([1.0, -0.5, 0.4])
    half = 4.302652729911275 * values.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert r["mean_diff"] == pytest.approx(values.mean()) and r["sd_diff"] == pytest.approx(values.std(ddof=1))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((values.mean() - half, values.mean() + half))
    assert (r["n_better"], r["n_practically_equivalent"], r["n_no_detectable_difference"], r["n_worse"]) == (1, 1, 1, 0)
    s = spread.iloc[0]
    assert s["accuracy_sd"] == pytest.approx(0.02) and (s["accuracy_min"], s["accuracy_max"]) == (0.70, 0.74)
    # The search-level test: one-sample t over the 3 differences (scipy's), alone in its Holm family.
    from scipy import stats as sps
    assert r["p_value"] == pytest.approx(sps.ttest_1samp(values, 0.0).pvalue) == pytest.approx(r["p_adjusted"])
    assert r["verdict"] == "no detectable difference"
    # Searches that agree: a steady +3 points is "better"; a steady +-0.1 is "practically equivalent"
    # (two one-sided tests inside the 1-point ROPE); Holm counts both pairs.
    runs = [{"tests": pd.concat([run(3.0 + e, "better", 0.7)["tests"],
                                 run(0.1 * e, "no detectable difference", 0.7)["tests"].assign(dataset="A3")]),
             "summary": run(0, "better", 0.7)["summary"]} for e in (-0.1, 0.0, 0.1)]
    diffs, _ = comparison.across_searches(runs)
    assert diffs.set_index("dataset")["verdict"].to_dict() == {"A2": "better", "A3": "practically equivalent"}
    p_holm = diffs.set_index("dataset")["p_adjusted"]
    assert p_holm["A2"] == pytest.approx(2 * sps.ttest_1samp([2.9, 3.0, 3.1], 0.0).pvalue)


def test_study_report_shows_the_spread_across_searches():
    from tuning.study import comparison

    tests = pd.DataFrame([{"dataset": "A2", "comparison": "primary", "score": "accuracy", "approach": "Feature Based MTL FFN",
                           "vs_approach": "Classic FFN PyTorch", "selected_by": "same trunk (ffn)", "n_pairs": 15,
                           "mean_diff": 0.2, "diff_ci_low": -0.5, "diff_ci_high": 0.9, "t": 0.5, "p_value": 0.6,
                           "p_adjusted": 0.6, "p_better": 0.01, "p_equivalent": 0.98, "p_worse": 0.01,
                           "verdict": "practically equivalent"}], columns=comparison.TEST_COLUMNS)
    summary = pd.DataFrame([{"dataset": "A2", "approach": a, "kind": k, "accuracy_mean": 0.9, "accuracy_ci_low": 0.88,
                             "accuracy_ci_high": 0.92, "one_split_accuracy": 0.91}
                            for a, k in (("Classic FFN PyTorch", "single-task"), ("Feature Based MTL FFN", "multi-task"))])
    run = {"tests": tests, "summary": summary, "order": list(summary["approach"])}
    across = comparison.across_searches([run, run, run])
    points, curve_tests = comparison.compare_curves(pd.DataFrame())
    text = comparison.render_study_report(run, points, curve_tests, experiments=["| x |"], settings_lines=["- s"],
                                          alpha=0.05, rope=1.0, threshold=0.95, notes=[], across=across)
    assert text.index("## Answer") < text.index("Across independent searches") < text.index("## How it was computed")
    answer = text[text.index("## Answer"):text.index("## Accuracy")]
    # The answer over searches comes first, then the first search's own verdicts.
    assert answer.index("Over the 3 searches") < answer.index("In the first search alone")
    assert "In 1 of the 1 pairs every single search gave the same verdict" in answer
    # Three identical +0.2 differences: no spread, inside the ROPE (p, at an sd of 0 or of rounding
    # noise, is not asserted).
    row = [line for line in text.splitlines()
           if line.startswith("| A2 | Feature Based MTL FFN | Classic FFN PyTorch | +0.20 [+0.20, +0.20] | 0.00 |")]
    assert len(row) == 1 and row[0].endswith("| **practically equivalent** | 0/3 | 3/3 | 0/3 | 0/3 |")


def test_a_single_task_family_gets_one_curve_per_dataset():
    # The study's run of ffn vs mtl-ffn on five datasets drew ffn's curve on A2 only: its
    # five experiments had been handed to one curve, which read the first.
    chosen = {"ffn": ["A2", "A3"], "mtl-ffn": ["A2", "A3"], "cnn": ["A4"]}
    assert runner.curve_groups(chosen) == [("ffn", ["A2"]), ("ffn", ["A3"]), ("mtl-ffn", ["A2", "A3"]),
                                          ("cnn", ["A4"])]
    from tuning.study.learning_curves import compute_curve
    with pytest.raises(ValueError, match="one dataset"):
        compute_curve("unused", "ffn", ["A2", "A3"])


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
