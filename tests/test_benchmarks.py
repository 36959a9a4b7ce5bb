"""The benchmarks' ``--quick`` forms, on the tiny datasets, so the scripts keep working.

They run in this process on one shared Ray runtime (the scripts start Ray only when none is
running) with 1 CPU, so that every experiment starts one trial worker process rather than
two (worker start-up, mostly importing torch, is most of a tiny run's time). They write
their sections into a temporary RESULTS.md, never the real one.
Nothing here asserts a timing or a benchmark's figures: only that each script runs and
writes what it should.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import (accuracy, common, gpu_trials_per_hour, noise_floor, predict_throughput, replicate_spread,
                        search_efficiency, study_budget, throughput, variants)

ROOT = Path(__file__).resolve().parents[1]


def _section(md: Path, name: str) -> str:
    text = md.read_text()
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    assert text.count(begin) == 1 and text.count(end) == 1, text
    return text[text.index(begin):text.index(end)]


BENCHMARK_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for path in [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("benchmarks/archive/*.py")]
    if path.name not in ("__init__.py", "common.py"))


@pytest.mark.parametrize("module", BENCHMARK_MODULES)
def test_each_benchmark_is_a_module_with_a_main_and_no_path_prologue(module):
    import importlib

    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert "sys.path" not in source, f"{module}: run it as python -m {module}, not by path"
    assert callable(importlib.import_module(module).main)
    assert f"python -m {module}" in source  # its usage line says how to run it


def test_the_recorded_command_names_the_module():
    assert common.command_line([str(ROOT / "benchmarks" / "archive" / "selection.py"), "--quick"]) == (
        "python -m benchmarks.archive.selection --quick")
    assert common.command_line([str(ROOT / "benchmarks" / "variants.py"), "--datasets", "A12,A21"]) == (
        "python -m benchmarks.variants --datasets A12,A21")


@pytest.mark.subprocess
def test_benchmarks_run_as_modules_from_the_repository_root():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the working folder
    for module in ("benchmarks.search_efficiency", "benchmarks.archive.selection"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and result.stdout.startswith("usage:"), result.stderr[-2000:]


def test_spearman_is_scipys_with_ties_averaged_and_nan_when_constant():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 30).astype(float), rng.normal(size=30)  # many ties in a
    assert common.spearman(list(a), list(b)) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert common.spearman([1, 2, 2, 3], [10, 20, 20, 30]) == pytest.approx(1.0)  # tied alike: still 1
    assert common.spearman([1, 2, 3], [4, 5, 4]) == pytest.approx(0.0)
    assert np.isnan(common.spearman([1, 1, 1], [1, 2, 3])) and np.isnan(common.spearman([1], [2]))


def test_replace_section_keeps_other_sections(tmp_path):
    md = tmp_path / "RESULTS.md"
    common.replace_section(md, "a", "first A")
    common.replace_section(md, "b", "only B")
    common.replace_section(md, "a", "second A")
    text = md.read_text()
    assert "second A" in text and "first A" not in text and "only B" in text
    assert text.index("second A") < text.index("only B")  # replaced in place, not moved


def test_ceiling_is_read_from_the_provenance_text():
    oracle, svm, source = accuracy.read_ceiling(str(ROOT / "data" / "README.md"))
    assert oracle == accuracy.CEILING and svm == accuracy.PROVENANCE_SVM
    assert source.endswith("README.md")


def test_search_efficiency_budget_share_and_paired_outcome():
    """--candidate-share gives the early-stopping methods that share of FIFO's epochs, and the
    paired outcome test (candidate minus random + FIFO per dataset and seed) reads the target."""
    import argparse

    args = search_efficiency.parse_args(["--samples", "16", "--max-epochs", "12", "--candidate-share", "0.333"])
    assert search_efficiency.method_budget("random + FIFO", args) == 192
    assert search_efficiency.method_budget("TPE + ASHA", args) == 64
    for bad in (["--candidate-share", "0"], ["--candidate-share", "1.5"],
                ["--budget", "trials", "--candidate-share", "0.5"]):
        with pytest.raises(SystemExit) as exit_info:
            search_efficiency.parse_args(bad)
        assert exit_info.value.code == 2

    def runs(diffs):  # baseline accuracies differ by pair, so only pairing gives these differences
        out = []
        for i, (dataset, seed) in enumerate([(d, s) for d in ("A4", "A12") for s in range(3)]):
            base = 0.30 + 0.1 * i
            out += [{"dataset": dataset, "seed": seed, "method": "random + FIFO", "full_acc": base},
                    {"dataset": dataset, "seed": seed, "method": "TPE + ASHA", "full_acc": base + diffs[i] / 100}]
        return out

    methods = ["TPE + ASHA", "random + FIFO"]
    close = [0.2, -0.1, 0.3, 0.0, 0.1, -0.2]
    rows, head = search_efficiency.paired_outcomes(runs(close), ["A4", "A12"], methods)
    assert head["n"] == 6 and head["mean"] == pytest.approx(np.mean(close))
    assert head["low"] < head["mean"] < head["high"] and head["low"] > -1
    assert [r[0] for r in rows] == ["A4", "A12", "all"] and rows[-1][-1] == "at least as good"
    share_third = argparse.Namespace(candidate_share=0.333)
    assert search_efficiency.paired_verdict(head, share_third).startswith("**Outcome target met**")
    # The same outcome with the full budget is not the target: it asks for a third of the epochs.
    assert "not met" in search_efficiency.paired_verdict(head, argparse.Namespace(candidate_share=1.0))
    worse = [-2.0, -1.5, -2.5, -1.0, -3.0, -2.0]
    rows, head = search_efficiency.paired_outcomes(runs(worse), ["A4", "A12"], methods)
    assert head["high"] < 0 and rows[-1][-1] == "not shown" and rows[-1][6] == "0 / 6"
    assert "not met" in search_efficiency.paired_verdict(head, share_third)


def test_search_efficiency_quick(module_tiny_dataset_dir, ray_1cpu, tmp_path):
    md = tmp_path / "RESULTS.md"
    raw = tmp_path / "raw.json"
    assert search_efficiency.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--datasets", "T2",
                                   "--results-md", str(md), "--raw", str(raw), "--both-rules"]) == 0
    section = _section(md, search_efficiency.SECTION)
    for method in search_efficiency.METHODS:
        assert f"| T2 | 0 | {method} |" in section  # one experiment each, one seed
        assert f"| T2 | {method} | 1 |" in section  # its picked configuration's full-split accuracy
    assert "| T2 | 0 | random + FIFO | 3 | 6 |" in section  # 3 full trials: the 6-epoch budget
    assert "TPE + ASHA / random + FIFO" in section and "- Machine: " in section and "- Command: " in section
    assert "| all | TPE + ASHA - random + FIFO | 1 |" in section  # the paired outcome, one pair
    assert raw.is_file()

    # The noise floor from that raw file alone (its searches are search_efficiency.run_one's,
    # tested above), then the same table again from its own raw file.
    floor_raw = tmp_path / "floor.json"
    assert noise_floor.main(["--quick", "--families", "", "--data-dir", str(module_tiny_dataset_dir),
                             "--datasets", "T2", "--add-raw", str(raw), "--raw", str(floor_raw),
                             "--results-md", str(md)]) == 0
    floor = _section(md, noise_floor.SECTION)
    (tpe,) = json.loads(floor_raw.read_text())["runs"]
    assert (tpe["family"], tpe["seed"], tpe["method"]) == ("cnn", 0, "TPE + ASHA")
    assert 0 <= tpe["full_acc"] <= 1 and 0 <= tpe["rule_before"]["full_acc"] <= 1
    if tpe["rule_before"]["picked_trial"] == tpe["picked_trial"]:  # a shared pick shares its rerun
        assert tpe["rule_before"]["full_acc"] == tpe["full_acc"]
    (row,) = [line for line in floor.splitlines() if line.startswith("| cnn | T2 | 1 |")]
    assert float(row.split("|")[4]) == pytest.approx(100 * tpe["full_acc"], abs=0.01)  # in percent
    assert search_efficiency.SECTION in md.read_text()  # the other section kept
    again = tmp_path / "again.md"
    assert noise_floor.main(["--from-raw", str(floor_raw), "--results-md", str(again)]) == 0
    assert _section(again, noise_floor.SECTION).split("| family |")[1] == floor.split("| family |")[1]


def test_throughput_quick(module_tiny_dataset_dir, ray_1cpu, tmp_path):
    md = tmp_path / "RESULTS.md"
    assert throughput.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--dataset", "T2",
                            "--results-md", str(md)]) == 0
    section = _section(md, throughput.SECTION)
    assert "ratio (whole epoch)" in section and "training steps" in section and "2 trials" in section


def test_accuracy_quick_runs_tunes_then_reads_them(module_tiny_dataset_dir, ray_1cpu, tmp_path):
    md = tmp_path / "RESULTS.md"
    results = tmp_path / "results"
    assert accuracy.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--results-dir", str(results),
                          "--results-md", str(md)]) == 0
    section = _section(md, accuracy.SECTION)
    assert "| CNN | MTL-CNN (multi-task) | LDA (same folds) | PCA+SVM (same folds) |" in section
    assert "| T2 | 2 | n/a |" in section and "| T3 | 2 | n/a |" in section  # 2 folds x 1 repeat, no ceiling
    # The default mode reads the tree the quick run left, without tuning again.
    md2 = tmp_path / "again.md"
    assert accuracy.main(["--results-dir", str(results), "--results-md", str(md2)]) == 0
    assert "| T2 | 2 |" in _section(md2, accuracy.SECTION)


def _margin_rows(means: dict, kinds: dict, folds: int = 10, noise: float = 0.5, seed: int = 0):
    """Per-fold rows of approaches with the given mean accuracy (%), on shared folds: a fold
    effect common to all plus a little noise of each approach's own."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    fold_effect = rng.normal(0, 2.0, folds)
    rows = []
    for approach, mean in means.items():
        own = rng.normal(0, noise, folds)
        for fold in range(folds):
            rows.append({"dataset": "D", "approach": approach, "kind": kinds[approach], "repeat": fold // 5,
                         "fold": fold % 5, "seed": fold // 5, "n_train": 800, "n_val": 100, "n_test": 225,
                         "accuracy": (mean + fold_effect[fold] + own[fold]) / 100})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("tuned_means,verdict", [
    ({"Classic CNN PyTorch": 45.0, "Classic FFN PyTorch": 41.0}, "above every reference"),
    ({"Classic CNN PyTorch": 40.1, "Classic FFN PyTorch": 39.5}, "not separated"),
    ({"Classic CNN PyTorch": 36.0, "Classic FFN PyTorch": 35.0}, "below a reference"),
])
def test_margin_over_the_references_is_tested_against_each_with_holm(tuned_means, verdict):
    kinds = {**{a: "single-task" for a in tuned_means}, "Reference PCA+SVM": "reference", "Reference LDA": "reference"}
    rows = _margin_rows({**tuned_means, "Reference PCA+SVM": 40.0, "Reference LDA": 38.0}, kinds)
    import pandas as pd

    # The search's validation scores favoured FFN: the second way of picking takes it, unadjusted.
    validation = pd.DataFrame({"approach": list(tuned_means), "dataset": "D", "objective": "accuracy",
                               "objective_value": [0.40, 0.41], "higher_is_better": True})
    by_mean, by_validation = accuracy.reference_margins(rows, validation)
    assert by_mean["picked_by"] == "highest mean" and by_mean["verdict"] == verdict
    assert by_mean["best"] == "Classic CNN PyTorch" and by_mean["reference"] == "Reference PCA+SVM"
    assert by_mean["n_candidates"] == 2 and by_mean["p_used"] >= by_mean["p"]
    assert by_mean["margin"] == pytest.approx(by_mean["best_accuracy"] - by_mean["reference_accuracy"])
    assert by_mean["low"] < by_mean["margin"] < by_mean["high"]
    assert by_validation["picked_by"] == "validation score" and by_validation["best"] == "Classic FFN PyTorch"
    assert by_validation["p_used"] == by_validation["p"] and by_validation["n_candidates"] == 1
    assert [m["picked_by"] for m in accuracy.reference_margins(rows)] == ["highest mean"]  # no scores: one way


def test_non_inferiority_to_the_references_reads_the_lowest_interval_end():
    """Level with a reference: not above it, but shown not worse by more than a point; the
    highest-mean pick's intervals are widened for the choice among K, the validation pick's not."""
    import pandas as pd

    tuned = {"Classic CNN PyTorch": 40.1, "Classic FFN PyTorch": 40.0}
    kinds = {**{a: "single-task" for a in tuned}, "Reference PCA+SVM": "reference", "Reference LDA": "reference"}
    rows = _margin_rows({**tuned, "Reference PCA+SVM": 40.0, "Reference LDA": 38.0}, kinds, noise=0.2)
    validation = pd.DataFrame({"approach": list(tuned), "dataset": "D", "objective": "accuracy",
                               "objective_value": [0.41, 0.40], "higher_is_better": True})
    by_mean, by_validation = accuracy.reference_margins(rows, validation)
    assert by_mean["best"] == by_validation["best"] == "Classic CNN PyTorch"  # the same network, two ways
    for m in (by_mean, by_validation):
        assert m["verdict"] == "not separated" and m["noninferior"]
        assert -accuracy.NONINFERIORITY_MARGIN < m["worst_low"] < 0
    assert by_mean["worst_low"] < by_validation["worst_low"] == pytest.approx(by_validation["low"])
    below = accuracy.reference_margins(_margin_rows({**tuned, "Reference PCA+SVM": 42.0, "Reference LDA": 38.0},
                                                    kinds, noise=0.2))
    assert not below[0]["noninferior"] and below[0]["worst_low"] < -accuracy.NONINFERIORITY_MARGIN
    assert "not worse than any by more than 1 point on 0" in accuracy.margin_summary(below)


def test_headroom_sets_the_room_below_the_ceiling_against_what_the_folds_detect():
    margins = [{"dataset": "A3", "picked_by": "highest mean", "reference": "Reference LDA",
                "reference_accuracy": 94.7, "low": -1.2, "high": 1.0, "floor": 0.9},
               {"dataset": "A3", "picked_by": "validation score", "reference": "Reference LDA",
                "reference_accuracy": 94.7, "low": -2.7, "high": -0.1, "floor": 1.1},
               {"dataset": "A4", "picked_by": "highest mean", "reference": "Reference LDA",
                "reference_accuracy": 73.6, "low": -1.0, "high": 1.6, "floor": 0.8},
               {"dataset": "A21", "picked_by": "highest mean", "reference": "Reference LDA",
                "reference_accuracy": 81.6, "low": 0.5, "high": 1.8, "floor": 0.4},
               {"dataset": "X", "picked_by": "highest mean", "reference": "Reference LDA",
                "reference_accuracy": 50.0, "low": 0.0, "high": 1.0, "floor": 0.3}]
    rows = accuracy.headroom_rows(margins, {"A3": 94.9, "A4": 74.7, "A21": 83.1})
    assert [r[0] for r in rows] == ["A3", "A4", "A21"]  # no ceiling for X
    a3, a4, a21 = rows
    assert a3[4:] == ["+0.20", "1.30", "1.10", "no"]  # the validation pick's interval: 1.3 wide each side
    assert a4[4:] == ["+1.10", "1.30", "0.80", "with more repeats"]
    assert a21[4:] == ["+1.50", "0.65", "0.40", "yes"]


def test_margin_floor_is_what_unlimited_repeats_of_the_folds_could_detect():
    """The corrected half-width shrinks towards z * s * sqrt(n_test / n_train) as folds are
    added, never below: the floor the margins report."""
    from scipy.stats import norm

    kinds = {"Classic FFN PyTorch": "single-task", "Reference LDA": "reference"}
    few = accuracy.reference_margins(_margin_rows({"Classic FFN PyTorch": 41.0, "Reference LDA": 40.0}, kinds,
                                                  folds=10))[0]
    many = accuracy.reference_margins(_margin_rows({"Classic FFN PyTorch": 41.0, "Reference LDA": 40.0}, kinds,
                                                   folds=4000))[0]
    assert (few["high"] - few["low"]) / 2 > few["floor"] > 0
    # Own noise sd 0.5 on each side: the difference's sd is 0.5 * sqrt(2); n_test / n_train = 225 / 900.
    assert many["floor"] == pytest.approx(norm.ppf(0.975) * 0.5 * np.sqrt(2) * 0.5, rel=0.05)
    assert (many["high"] - many["low"]) / 2 == pytest.approx(many["floor"], rel=0.01)


@pytest.mark.parametrize("variant", variants.VARIANTS)
def test_each_variant_is_a_csv_the_loader_reads_as_intended(module_tiny_dataset_dir, tmp_path, variant):
    from tuning.data.readers import load_dataset

    original = load_dataset(module_tiny_dataset_dir / "T3.csv")
    path = variants.write_variant(original, variant, tmp_path, seed=0)
    assert path.name == f"T3-{variant}.csv"
    changed = load_dataset(path)
    counts = np.bincount(original.y)
    if variant == "r64":
        assert changed.X.shape == (len(original.y), 64) and np.array_equal(changed.y, original.y)
    elif variant == "relabelled":
        assert sorted(changed.class_names) == ["unit_a", "unit_b", "unit_c"]
        assert sorted(np.bincount(changed.y)) == sorted(counts)
        assert not np.array_equal(changed.X, original.X)  # rows shuffled
        assert sorted(map(tuple, np.round(changed.X, 2))) == sorted(map(tuple, np.round(original.X, 2)))
    elif variant == "label-first":
        assert changed.label_column == "track" and path.read_text().startswith("track,s0,")
        assert np.allclose(changed.X, original.X, atol=1e-4) and np.array_equal(changed.y, original.y)
    elif variant == "fewer":
        expected = np.maximum(variants.FEWER_MIN_PER_CLASS, np.round(variants.FEWER_FRACTION * counts))
        assert np.array_equal(np.bincount(changed.y), np.minimum(counts, expected))
    elif variant == "imbalanced":
        kept = np.bincount(changed.y, minlength=len(counts))
        ranks = np.argsort(np.argsort(-counts, kind="stable"), kind="stable")
        expected = np.maximum(variants.FEWER_MIN_PER_CLASS, np.round(variants.IMBALANCE_RATIO ** ranks * counts))
        assert np.array_equal(kept, np.minimum(counts, expected)) and kept.max() / kept.min() > counts.max() / counts.min()
    elif variant == "probe2":
        from tuning.data.preprocess import resample_to_length

        assert changed.X.shape == (len(original.y), variants.PROBE2_LENGTH) and np.array_equal(changed.y, original.y)
        shape_only = changed.X / variants.PROBE2_GAIN - resample_to_length(original.X, variants.PROBE2_LENGTH)
        offsets = shape_only.mean(axis=1)  # one baseline offset per spike, the same at every sample
        assert np.allclose(shape_only, offsets[:, None], atol=1e-2)
        expected_sd = variants.PROBE2_OFFSET * np.median(original.X.std(axis=0))
        assert 0.7 * expected_sd < offsets.std() < 1.3 * expected_sd
    else:
        assert changed.X.shape == original.X.shape and np.array_equal(changed.y, original.y)
        added = changed.X - original.X
        scale = variants.NOISE_FRACTION * np.median(original.X.std(axis=0))
        assert 0.8 * scale < added.std() < 1.2 * scale


def test_variants_quick_tunes_each_variant_and_sets_it_against_the_peers(module_tiny_dataset_dir, ray_1cpu, tmp_path):
    md = tmp_path / "RESULTS.md"
    assert variants.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--datasets", "T2,T3",
                          "--variants", "label-first", "--families", "ffn", "--work-dir", str(tmp_path / "w"),
                          "--results-md", str(md)]) == 0
    section = _section(md, variants.SECTION)
    # Each objective tuned on the variant, scored in its own score against the best of four peers.
    for name in ("T2-label-first", "T3-label-first"):
        for objective in ("accuracy", "balanced accuracy"):
            (row,) = [line for line in section.splitlines() if line.startswith(f"| label-first | {name} | {objective} |")]
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert cells[3:5] == ["ffn", "ffn"]
            assert cells[6] in ("LDA", "PCA+SVM", "tuned SVM", "gradient boosting")
    assert (tmp_path / "w" / "label-first" / "data" / "T3-label-first.csv").is_file()  # a comma list of datasets
    assert (tmp_path / "w" / "label-first" / "results-balanced_accuracy").is_dir()
    assert "at or above the best peer (point estimate) on" in section


def test_accuracy_without_results_says_so(tmp_path, capsys):
    assert accuracy.main(["--results-dir", str(tmp_path / "none"), "--results-md", str(tmp_path / "R.md")]) == 2
    assert "results folder not found" in capsys.readouterr().err


def test_gpu_benchmark_skips_without_cuda(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the benchmark would really run")
    md = tmp_path / "RESULTS.md"
    assert gpu_trials_per_hour.main(["--quick", "--results-md", str(md)]) == 0
    assert "skipped: no CUDA device" in capsys.readouterr().out
    assert not md.exists()


@pytest.mark.subprocess
def test_loader_quick(tmp_path):
    from benchmarks import loader

    md = tmp_path / "RESULTS.md"
    assert loader.main(["--quick", "--rows", "2000", "--samples", "8", "--out-dir", str(tmp_path / "out"),
                        "--results-md", str(md)]) == 0
    section = _section(md, loader.SECTION)
    assert "2,000 spikes x 8 samples" in section and "- Machine: " in section and "- Command: " in section
    assert "| bare |" in section and "| load_dataset |" in section and "load_dataset / bare pandas.read_csv" in section
    assert (tmp_path / "out" / "loader_2000x8.csv").is_file()
    before = md.read_text(), common.RESULTS_MD.read_text()
    assert loader.main(["--quick", "--rows", "2000", "--samples", "8", "--out-dir", str(tmp_path / "out")]) == 0
    assert (md.read_text(), common.RESULTS_MD.read_text()) == before  # --quick alone: prints only


@pytest.mark.subprocess
def test_predict_throughput_quick(module_tiny_dataset_dir, tmp_path):
    md = tmp_path / "RESULTS.md"
    assert predict_throughput.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--dataset", "T2",
                                    "--spikes", "3000", "--variant-spikes", "3000", "--cli-spikes", "500",
                                    "--results-md", str(md)]) == 0
    section = _section(md, predict_throughput.SECTION)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in section.splitlines() if line.startswith("| ")}
    assert rows["torch"][0] == rows["onnx"][0] == "3,000" and rows["onnx"][5] == "100.00%"
    assert rows["torch"][-1] == rows["onnx"][-1] == "kept (default)"
    for variant in set(predict_throughput.QUICK_PATHS) - set(predict_throughput.KEPT):
        assert rows[variant][0] == "3,000" and rows[variant][-1] != "kept (default)"
    (cli,) = [name for name in rows if name.startswith("`predict` command")]
    assert rows[cli][0] == "500" and "in-memory rate" in rows[cli][-1]
    assert "MFLOP a spike" in section and "- **Fastest kept path: " in section and "- Machine: " in section


def test_study_budget_quick_scores_both_budgets_on_the_same_split(module_tiny_dataset_dir, ray_1cpu, tmp_path):
    md = tmp_path / "RESULTS.md"
    assert study_budget.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--datasets", "T2",
                              "--seeds", "0", "--num-cpus", "1", "--results-md", str(md)]) == 0
    section = _section(md, study_budget.SECTION)
    (row,) = [line for line in section.splitlines() if line.startswith("| ffn | T2 | 1 |")]
    study_acc, default_acc, difference = (cell.strip() for cell in row.split("|")[4:7])
    assert float(difference.split()[0]) == pytest.approx(float(study_acc) - float(default_acc), abs=0.02)


def test_finetune_cost_quick_times_every_variant_against_the_mtl_trial(module_tiny_dataset_dir, tmp_path):
    from benchmarks import finetune_cost

    md = tmp_path / "RESULTS.md"
    assert finetune_cost.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--results-md", str(md)]) == 0
    section = _section(md, f"{finetune_cost.SECTION}-ffn")
    rows = {line.split("|")[1].strip(): line.split("|")[2:5] for line in section.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in finetune_cost.VARIANTS}
    assert list(rows) == list(finetune_cost.VARIANTS)
    assert all(float(seconds) > 0 for seconds, _, _ in rows.values())
    assert float(rows["mtl trial"][2]) == 1.0  # against itself
    assert "T2, T3" in section and "- Machine: " in section



def test_replicate_spread_quick_keeps_each_label_and_shows_both(module_tiny_dataset_dir, ray_1cpu, tmp_path):
    md, runs = tmp_path / "RESULTS.md", tmp_path / "runs"
    common_args = ["--quick", "--data-dir", str(module_tiny_dataset_dir), "--datasets", "T2,T3",
                   "--runs-dir", str(runs), "--num-cpus", "1"]
    assert replicate_spread.main([*common_args, "--label", "before", "--results-md", str(md)]) == 0
    # A second kept run, labelled "after": a copy of the first (one study run is enough to test
    # that every kept label is shown side by side; a second would double the test's time).
    before = json.loads((runs / "before" / replicate_spread.RUN_FILE).read_text())
    (runs / "after").mkdir()
    (runs / "after" / replicate_spread.RUN_FILE).write_text(json.dumps(
        {**before, "label": "after", "date": before["date"] + " (copy)"}))
    assert replicate_spread.main(["--render", "--runs-dir", str(runs), "--results-md", str(md)]) == 0
    section = _section(md, replicate_spread.SECTION)
    assert "before: mean / sd / min-max | after: mean / sd / min-max" in section
    for dataset in ("T2", "T3"):
        for family in ("ffn", "mtl-ffn"):
            (row,) = [line for line in section.splitlines() if line.startswith(f"| {dataset} | {family} |")]
            assert row.count("**") == 4  # an sd for each label
    run = json.loads((runs / "after" / replicate_spread.RUN_FILE).read_text())
    assert run["replicates"] == 2 and {p["replicate"] for p in run["mtl_picks"]} == {0, 1}
    for pick in run["mtl_picks"]:  # the mean the pick was chosen by is the mean of its datasets' scores
        assert pick["objective"] == pytest.approx(np.mean(list(pick["val"].values())), abs=0.05)
    trials = run["mtl_trials"]  # every multi-task trial, its score the mean of its datasets' window means
    assert trials and {t["replicate"] for t in trials} == {0, 1}
    for trial in trials:
        assert trial["score"] == pytest.approx(np.mean(list(trial["val"].values())), abs=1e-6)
        assert trial["batch_norm"] in (True, False) and trial["worst_gap"] is not None
    rows = [line for line in section.split("Multi-task trials, **after**")[1].splitlines()
            if line.startswith("| batch_norm | True |")]  # no row when no trial had batch norm
    assert sum(int(row.split("|")[3]) for row in rows) == sum(t["batch_norm"] for t in trials)
    # Rendering again from the kept runs gives the same section without training.
    again = tmp_path / "again.md"
    assert replicate_spread.main(["--render", "--runs-dir", str(runs), "--results-md", str(again)]) == 0
    assert _section(again, replicate_spread.SECTION) == section


def test_racing_quick_races_each_search_and_scores_both_picks_on_the_same_folds(module_tiny_dataset_dir, ray_1cpu,
                                                                                 tmp_path):
    from benchmarks import racing as racing_benchmark

    md, raw = tmp_path / "RESULTS.md", tmp_path / "racing.json"
    assert racing_benchmark.main(["--quick", "--family", "ffn", "--data-dir", str(module_tiny_dataset_dir),
                                  "--datasets", "T3", "--raw", str(raw), "--results-md", str(md)]) == 0
    runs = json.loads(raw.read_text())["runs"]
    assert [(r["dataset"], r["seed"]) for r in runs] == [("T3", 0), ("T3", 1)]
    for run in runs:
        assert 1 <= run["winner_rank"] <= 2 and len(run["race_scores"]) == len(run["search_scores"]) <= 2
        assert run["race_scores"][run["winner_rank"] - 1] == max(run["race_scores"])
        if run["winner_rank"] == 1:  # the same configuration: one rerun serves both
            assert run["race_pick"] == run["search_pick"]
    section = _section(md, racing_benchmark.SECTION)
    assert "| T3 | 2 |" in section and "| all | 2 |" in section and "**Decision:" in section


def test_compute_cap_quick_times_networks_and_scores_a_capped_and_an_uncapped_pick(module_tiny_dataset_dir,
                                                                                     ray_1cpu, tmp_path):
    from benchmarks import compute_cap as compute_cap_benchmark
    from tuning.settings import DEFAULT_MAX_MFLOP

    md, raw = tmp_path / "RESULTS.md", tmp_path / "cap.json"
    assert compute_cap_benchmark.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--datasets", "T3",
                                       "--raw", str(raw), "--results-md", str(md)]) == 0
    saved = json.loads(raw.read_text())
    assert sorted({s["family"] for s in saved["speeds"]}) == ["cnn", "ffn", "lstm"] and len(saved["speeds"]) == 12
    assert all(s["mflop"] > 0 and s["torch"] > 0 and s["onnx"] > 0 for s in saved["speeds"])
    run, = saved["runs"]
    assert (run["dataset"], run["seed"]) == ("T3", 0)
    assert run["capped"]["mflop"] <= DEFAULT_MAX_MFLOP and run["capped"]["redrawn"] >= 0
    if run["capped"]["config"] == run["uncapped"]["config"]:  # one rerun serves both picks
        assert run["capped"]["scores"] == run["uncapped"]["scores"]
    section = _section(md, compute_cap_benchmark.SECTION)
    assert "| T3 | 1 |" in section and "MFLOP a spike" in section
    # Two saved runs analysed together: the searches of both, no training.
    again = tmp_path / "again.md"
    assert compute_cap_benchmark.main(["--from-raw", f"{raw},{raw}", "--data-dir", str(module_tiny_dataset_dir),
                                       "--datasets", "T3", "--results-md", str(again)]) == 0
    assert "| T3 | 2 |" in _section(again, compute_cap_benchmark.SECTION)
