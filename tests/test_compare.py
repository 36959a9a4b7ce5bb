"""tuning.study.comparison on synthetic result trees written in the exporter's exact schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuning.study import comparison as cmp
from tuning.cli import build_parser
from tuning.export import references
from tuning.errors import InputError

CNN = ("Classic CNN PyTorch", "Classic_CNN", "cnn")
FFN = ("Classic FFN PyTorch", "Classic_FFN", "ffn")
MTL_CNN = ("Feature Based MTL CNN", "Feature_based_MTL_CNN", "mtl-cnn")
MTL_FFN = ("Feature Based MTL FFN", "Feature_based_MTL", "mtl-ffn")


def individual_columns(n_classes):
    return (["dataset", "approach", "family", "repeat", "fold", "seed", "n_train", "n_val", "n_test",
             "accuracy", "balanced_accuracy", "macro_f1", *[f"recall_class_{k}" for k in range(n_classes)],
             "epochs", "best_epoch", "train_seconds", "n_parameters", "node_id", "experiment"])


def write_approach(results, approach, dataset, accuracy, *, folds=5, repeats=3, seed=0, n_classes=2,
                   n_test=None, n_train=400, n_val=70, confusion=True):
    """Write one approach's Individual Dataset Results CSV (and a confusion matrix CSV).

    ``approach`` is (folder, prefix, family); ``accuracy`` one fraction per fold in
    (repeat, fold) order; ``n_test`` a scalar or one value per fold.
    """
    folder, prefix, family = approach
    accuracy = np.asarray(accuracy, dtype=float)
    assert accuracy.size == folds * repeats
    n_test = np.broadcast_to(np.asarray(120 if n_test is None else n_test), accuracy.shape)
    rows = []
    for i, (r, f) in enumerate((r, f) for r in range(repeats) for f in range(folds)):
        acc = float(accuracy[i])
        rows.append({
            "dataset": dataset, "approach": folder, "family": family, "repeat": r, "fold": f, "seed": seed + r,
            "n_train": n_train, "n_val": n_val, "n_test": int(n_test[i]),
            "accuracy": acc, "balanced_accuracy": acc - 0.01, "macro_f1": acc - 0.02,
            **{f"recall_class_{k}": acc for k in range(n_classes)},
            "epochs": 30, "best_epoch": 22, "train_seconds": 1.5, "n_parameters": 1234,
            "node_id": "node-1", "experiment": f"/tmp/ray/{family}",
        })
    base = Path(results) / folder / "Individual Dataset Results"
    base.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=individual_columns(n_classes)).to_csv(
        base / f"{prefix}_full_split_metrics_{dataset}.csv", index=False)
    if confusion:
        total = int(n_test.sum())
        hit = int(round(total * accuracy.mean() / n_classes))
        miss = total // n_classes - hit
        cm = np.full((n_classes, n_classes), miss // max(1, n_classes - 1)) + np.diag([hit - miss] * n_classes)
        frame = pd.DataFrame(cm, columns=[f"pred_{k}" for k in range(n_classes)])
        frame.insert(0, "true_class", range(n_classes))
        frame.to_csv(base / f"{prefix}_confusion_matrix_{dataset}.csv", index=False)
    return base


def fold_scores(offset=0.0, noise=0.005, seed=0, base_seed=100, n=15, level=0.80):
    """Per-fold accuracies: a fold difficulty shared by every approach (the pairing) + own noise."""
    shared = level + np.random.default_rng(base_seed).normal(0.0, 0.02, n)
    return np.clip(shared + offset + np.random.default_rng(seed).normal(0.0, noise, n), 0.0, 1.0)


def args_for(results, *extra):
    return build_parser().parse_args(["compare", "--results-dir", str(results), *extra])


def row_of(table, dataset, approach):
    part = table[(table["dataset"] == dataset) & (table["approach"] == approach)]
    assert len(part) == 1
    return part.iloc[0]


def pair_test(tests, dataset, approach, comparison="primary", score="accuracy"):
    part = tests[(tests["dataset"] == dataset) & (tests["approach"] == approach)
                 & (tests["comparison"] == comparison) & (tests["score"] == score)]
    assert len(part) == 1, part
    return part.iloc[0]


def write_validation(results, approach, dataset, value, objective="val_accuracy"):
    """A Best Performance Results file recording the search's validation score."""
    folder, prefix, family = approach
    base = Path(results) / folder / "Best Performance Results"
    base.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}_full_split_metrics_best_config.csv" if family.startswith("mtl-") else f"{prefix}_best_performers.csv"
    path = base / name
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    row = pd.DataFrame([{"dataset": dataset, "approach": folder, "family": family, "objective": objective,
                         "objective_value": value, "best_epoch": 3, "trial_id": "t1"}])
    pd.concat([old[old["dataset"] != dataset] if len(old) else old, row]).to_csv(path, index=False)


# --------------------------------------------------------------------------- verdicts
def test_true_five_point_gain_is_better_after_holm_and_mirror_is_worse(tmp_path):
    write_approach(tmp_path, CNN, "A2", fold_scores(seed=1))
    write_approach(tmp_path, MTL_CNN, "A2", fold_scores(offset=+0.05, seed=2))
    write_approach(tmp_path, CNN, "A4", fold_scores(seed=3, level=0.75))
    write_approach(tmp_path, MTL_CNN, "A4", fold_scores(offset=-0.05, seed=4, level=0.75))
    rows = cmp.load_approaches(tmp_path)
    assert set(rows["kind"]) == {"single-task", "multi-task"}
    assert rows.loc[rows["approach"] == MTL_CNN[0], "multitask"].all()
    assert not rows.loc[rows["approach"] == CNN[0], "multitask"].any()

    summary, tests, _ = cmp.compare(rows)
    up, down = pair_test(tests, "A2", MTL_CNN[0]), pair_test(tests, "A4", MTL_CNN[0])
    assert up["vs_approach"] == CNN[0] and up["verdict"] == "better"
    assert up["mean_diff"] == pytest.approx(5.0, abs=0.5)  # percentage points
    assert up["p_value"] < 0.001 and up["t"] > 0 and up["p_better"] > 0.99
    # Holm over the two primary tests: the smaller p doubled, the larger kept (then the running max).
    ps = sorted([up["p_value"], down["p_value"]])
    assert sorted([up["p_adjusted"], down["p_adjusted"]]) == pytest.approx([2 * ps[0], max(2 * ps[0], ps[1])])
    assert up["diff_ci_low"] > 0 and down["diff_ci_high"] < 0
    assert down["verdict"] == "worse" and down["mean_diff"] == pytest.approx(-5.0, abs=0.5) and down["t"] < 0
    assert row_of(summary, "A2", CNN[0])["accuracy_mean"] == pytest.approx(0.80, abs=0.02)  # fraction
    assert len(tests) == 2  # no validation scores: no exploratory tests


def test_identical_approaches_with_small_noise_are_practically_equivalent(tmp_path):
    write_approach(tmp_path, CNN, "A3", fold_scores(seed=11, noise=0.002))
    write_approach(tmp_path, MTL_CNN, "A3", fold_scores(seed=12, noise=0.002))
    _, tests, _ = cmp.compare(cmp.load_approaches(tmp_path))
    r = pair_test(tests, "A3", MTL_CNN[0])
    assert r["verdict"] == "practically equivalent" and r["p_equivalent"] >= 0.95
    assert abs(r["mean_diff"]) < 0.5
    # A ROPE far narrower than the noise cannot call them equivalent: then "no detectable difference".
    _, tests, _ = cmp.compare(cmp.load_approaches(tmp_path), rope=0.01)
    assert pair_test(tests, "A3", MTL_CNN[0])["verdict"] == "no detectable difference"


def test_noisy_equal_approaches_show_no_detectable_difference(tmp_path):
    write_approach(tmp_path, CNN, "A3", fold_scores(seed=11, noise=0.01))
    write_approach(tmp_path, MTL_CNN, "A3", fold_scores(seed=12, noise=0.01))
    _, tests, _ = cmp.compare(cmp.load_approaches(tmp_path))
    r = pair_test(tests, "A3", MTL_CNN[0])
    assert r["verdict"] == "no detectable difference"  # too noisy to claim either way
    assert r["p_adjusted"] >= 0.05 and r["p_equivalent"] < 0.95 and abs(r["mean_diff"]) < 1.0


def test_primary_pairs_by_trunk_and_exploratory_by_validation_score(tmp_path):
    # FFN has the higher mean on the tested folds, but CNN's search recorded the better
    # validation score: the exploratory comparison must use CNN (chosen before the test folds).
    write_approach(tmp_path, FFN, "A12", fold_scores(seed=1, level=0.38))
    write_approach(tmp_path, CNN, "A12", fold_scores(seed=2, level=0.33))
    write_approach(tmp_path, MTL_FFN, "A12", fold_scores(seed=3, level=0.35))
    write_approach(tmp_path, MTL_CNN, "A12", fold_scores(seed=4, level=0.40), n_classes=2)
    write_validation(tmp_path, FFN, "A12", 0.36)
    write_validation(tmp_path, CNN, "A12", 0.41)
    summary, tests, notes = cmp.compare(cmp.load_approaches(tmp_path), cmp.tree_rows.load_validation_scores(tmp_path),
                                        metric="macro_f1")
    assert pair_test(tests, "A12", MTL_FFN[0])["vs_approach"] == FFN[0]
    assert pair_test(tests, "A12", MTL_CNN[0])["vs_approach"] == CNN[0]
    for mtl in (MTL_FFN[0], MTL_CNN[0]):
        for score in ("accuracy", "macro_f1"):
            assert pair_test(tests, "A12", mtl, "exploratory", score)["vs_approach"] == CNN[0]
    assert pair_test(tests, "A12", MTL_CNN[0])["verdict"] == "better"
    assert list(summary["kind"]) == ["single-task", "single-task", "multi-task", "multi-task"]
    assert row_of(summary, "A12", CNN[0])["validation_value"] == pytest.approx(0.41)
    # Holm families: primary accuracy (2 tests) adjusted apart from the exploratory ones.
    primary = tests[(tests["comparison"] == "primary") & (tests["score"] == "accuracy")]
    assert len(primary) == 2 and (primary["p_adjusted"] >= primary["p_value"]).all()


def test_a_loss_objective_picks_the_lowest_validation_loss(tmp_path):
    write_approach(tmp_path, FFN, "A2", fold_scores(seed=1))
    write_approach(tmp_path, CNN, "A2", fold_scores(seed=2))
    write_approach(tmp_path, MTL_CNN, "A2", fold_scores(seed=3))
    write_validation(tmp_path, FFN, "A2", 0.30, objective="val_loss")
    write_validation(tmp_path, CNN, "A2", 0.50, objective="val_loss")
    _, tests, _ = cmp.compare(cmp.load_approaches(tmp_path), cmp.tree_rows.load_validation_scores(tmp_path))
    assert pair_test(tests, "A2", MTL_CNN[0], "exploratory")["vs_approach"] == FFN[0]


def test_multitask_detected_by_family_prefix(tmp_path):
    write_approach(tmp_path, ("My Shared Net", "My_Shared", "mtl-lstm"), "A2", fold_scores(seed=5))
    write_approach(tmp_path, CNN, "A2", fold_scores(seed=6))
    rows = cmp.load_approaches(tmp_path)
    assert rows.loc[rows["approach"] == "My Shared Net", "multitask"].all()


# --------------------------------------------------------------------------- pairing
def test_pairing_refuses_different_fold_counts(tmp_path):
    write_approach(tmp_path, CNN, "A2", fold_scores(seed=1))
    write_approach(tmp_path, MTL_CNN, "A2", fold_scores(seed=2, n=3), folds=3, repeats=1)
    rows = cmp.load_approaches(tmp_path)
    with pytest.raises(InputError) as err:
        cmp.pair_rows(rows[rows["approach"] == MTL_CNN[0]], rows[rows["approach"] == CNN[0]])
    msg = str(err.value)
    assert "\n" not in msg
    for part in (MTL_CNN[0], CNN[0], "A2", "--folds 5 --repeats 3", "--folds 3 --repeats 1", "re-export"):
        assert part in msg
    with pytest.raises(InputError, match="--folds 3 --repeats 1"):  # the CLI path refuses too
        cmp.run(args_for(tmp_path, "--no-references"))


def test_pairing_refuses_different_seeds_and_test_sizes(tmp_path):
    write_approach(tmp_path, CNN, "A2", fold_scores(seed=1))
    write_approach(tmp_path, MTL_CNN, "A2", fold_scores(seed=2), seed=7)
    rows = cmp.load_approaches(tmp_path)
    a, b = rows[rows["approach"] == MTL_CNN[0]], rows[rows["approach"] == CNN[0]]
    with pytest.raises(InputError, match=r"--seed 7 vs --seed 0"):
        cmp.pair_rows(a, b)

    write_approach(tmp_path, MTL_CNN, "A2", fold_scores(seed=2), n_test=[121] + [120] * 14)
    rows = cmp.load_approaches(tmp_path)
    a = rows[rows["approach"] == MTL_CNN[0]]
    with pytest.raises(InputError, match=r"repeat 0 fold 0 scored 121 rows .* but 120"):
        cmp.pair_rows(a, b)


def test_pair_rows_joins_on_folds(tmp_path):
    write_approach(tmp_path, CNN, "A2", fold_scores(seed=1))
    write_approach(tmp_path, MTL_CNN, "A2", fold_scores(seed=2))
    write_approach(tmp_path, MTL_CNN, "A3", fold_scores(seed=3))  # only on one side: left out
    rows = cmp.load_approaches(tmp_path)
    paired = cmp.pair_rows(rows[rows["approach"] == MTL_CNN[0]], rows[rows["approach"] == CNN[0]])
    assert len(paired) == 15 and set(paired["dataset"]) == {"A2"}
    assert {"accuracy_a", "accuracy_b", "seed_a", "seed_b"} <= set(paired.columns)
    assert list(zip(paired["repeat"], paired["fold"])) == [(r, f) for r in range(3) for f in range(5)]


# --------------------------------------------------------------------------- run / outputs
def test_run_writes_outputs_with_expected_columns(tmp_path, capsys):
    results = tmp_path / "results"
    for ds, level in (("A2", 0.97), ("A12", 0.33)):
        write_approach(results, CNN, ds, fold_scores(seed=1, level=level))
        write_approach(results, FFN, ds, fold_scores(seed=2, level=level - 0.01))
        write_approach(results, MTL_CNN, ds, fold_scores(seed=3, level=level, offset=0.02))
    assert cmp.run(args_for(results, "--no-references", "--metric", "balanced_accuracy")) == 0
    out = capsys.readouterr().out
    for name in ("comparison.csv", "comparison_tests.csv", "comparison.md", "comparison.png",
                 "confusion_matrices.png"):
        path = results / name
        assert path.is_file() and path.stat().st_size > 0
        assert f"wrote {path}" in out
    for png in ("comparison.png", "confusion_matrices.png"):
        assert (results / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(results.glob(".*.tmp"))  # no temporary leftovers

    table = pd.read_csv(results / "comparison.csv", dtype={"dataset": str})
    assert list(table.columns) == cmp.SUMMARY_COLUMNS
    assert list(table["dataset"]) == ["A2"] * 3 + ["A12"] * 3  # natural order
    assert set(table["kind"]) == {"single-task", "multi-task"}
    assert (table["n_folds"] == 15).all()
    # The corrected interval is wider than the plain t-interval of the same folds.
    from tuning.statistics import mean_ci
    cnn = pd.read_csv(results / "Classic CNN PyTorch" / "Individual Dataset Results" / "Classic_CNN_full_split_metrics_A2.csv")
    _, low, high = mean_ci(cnn["accuracy"])
    r = row_of(table, "A2", CNN[0])
    assert r["accuracy_ci_low"] < low and r["accuracy_ci_high"] > high

    tests = pd.read_csv(results / "comparison_tests.csv", dtype={"dataset": str})
    assert list(tests.columns) == cmp.TEST_COLUMNS
    assert set(tests["score"]) == {"accuracy", "balanced_accuracy"} and set(tests["comparison"]) == {"primary"}
    assert (tests["verdict"] == "better").all() and (tests["vs_approach"] == CNN[0]).all()

    md = (results / "comparison.md").read_text()
    assert "| dataset | Classic CNN PyTorch | Classic FFN PyTorch | Feature Based MTL CNN |" in md
    assert "| A2 | 97." in md and "Nadeau & Bengio" in md and "Holm" in md and "Corani & Benavoli" in md
    assert md.index("Across the 2 primary comparisons") < md.index("| dataset |")  # the answer first
    assert "2 better" in md and "one-split" in md
    assert "balanced_accuracy" in md
    assert md in out  # the markdown is printed


def test_missing_multitask_is_reported_and_rest_compared(tmp_path, capsys):
    write_approach(tmp_path, CNN, "A2", fold_scores(seed=1))
    write_approach(tmp_path, FFN, "A2", fold_scores(seed=2))
    write_approach(tmp_path, FFN, "A3", fold_scores(seed=3))
    assert cmp.run(args_for(tmp_path, "--no-references")) == 0
    out = capsys.readouterr().out
    md = (tmp_path / "comparison.md").read_text()
    for text in (md, out):
        assert "No multi-task results yet" in text
        assert "Feature Based MTL CNN" in text and "Classic LSTM PyTorch" in text  # named as missing
        assert "A3: no results yet from Classic CNN PyTorch" in text
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert len(table) == 3 and table["accuracy_mean"].notna().all()
    assert pd.read_csv(tmp_path / "comparison_tests.csv").empty


def test_missing_single_task_is_reported(tmp_path, capsys):
    write_approach(tmp_path, MTL_CNN, "A2", fold_scores(seed=1))
    assert cmp.run(args_for(tmp_path, "--no-references")) == 0
    assert "No single-task results yet" in capsys.readouterr().out


def test_nothing_to_compare_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no results to compare"):
        cmp.run(args_for(tmp_path))
    with pytest.raises(InputError, match="not found"):
        cmp.run(args_for(tmp_path / "nope"))


def test_bad_results_file_is_an_input_error(tmp_path):
    base = write_approach(tmp_path, CNN, "A2", fold_scores(seed=1))
    path = base / "Classic_CNN_full_split_metrics_A2.csv"
    pd.read_csv(path).drop(columns=["n_test"]).to_csv(path, index=False)
    with pytest.raises(InputError, match="missing column.*n_test"):
        cmp.load_approaches(tmp_path)


def test_alpha_controls_the_verdict(tmp_path):
    write_approach(tmp_path, CNN, "A2", fold_scores(seed=1, noise=0.01))
    write_approach(tmp_path, MTL_CNN, "A2", fold_scores(seed=2, noise=0.01, offset=0.006))
    rows = cmp.load_approaches(tmp_path)

    def verdict(**kw):
        return pair_test(cmp.compare(rows, **kw)[1], "A2", MTL_CNN[0])

    p = verdict()["p_adjusted"]  # one primary test: Holm leaves it as it is
    assert 0 < p < 1 and p == pytest.approx(verdict()["p_value"])
    assert verdict(alpha=min(0.999, p * 1.01 + 1e-9))["verdict"] == "better"
    assert verdict(alpha=p * 0.99)["verdict"] == "no detectable difference"


def test_bad_options_are_input_errors(tmp_path):
    write_approach(tmp_path, CNN, "A2", fold_scores(seed=1))
    for flag, value, text in (("--rope", "-1", "--rope"), ("--threshold", "0.3", "--threshold"),
                              ("--alpha", "1.5", "--alpha")):
        with pytest.raises(InputError, match=text):
            cmp.run(args_for(tmp_path, flag, value))


# --------------------------------------------------------------------------- references
def write_tiny_dataset(path, rows_per_class=50, length=48, seed=0):
    """2 separable classes: troughs of different depth and timing, plus small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    lines = [",".join([f"s{i}" for i in range(length)] + ["label"])]
    for c in (0, 1):
        template = -(60 + 40 * c) * np.exp(-0.5 * ((t - 14 - 6 * c) / 2.0) ** 2)
        for _ in range(rows_per_class):
            wave = template + rng.normal(0, 4, length)
            lines.append(",".join(f"{v:.2f}" for v in wave) + f",{c}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_run_config(results, approach, dataset, data_path, folds=5, repeats=3, seed=0):
    folder = Path(results) / approach[0] / "Run Config"
    folder.mkdir(parents=True, exist_ok=True)
    config = {"dataset": dataset, "path": str(Path(data_path).resolve()), "label_column": "label",
              "folds": folds, "repeats": repeats, "seed": seed, "inner_val_fraction": 0.15, "family": approach[2]}
    (folder / f"run_{dataset}.json").write_text(json.dumps(config))


def write_matching_approach(results, approach, dataset, data_path, scores, folds=5, repeats=3, seed=0):
    """Approach rows whose n_test / n_train / seed come from the real folds of the data."""
    from tuning.data.readers import load_dataset
    from tuning.data.splits import cv_folds

    data = load_dataset(data_path, "label")
    fl = cv_folds(data.y, folds, repeats, seed, 0.15)
    write_approach(results, approach, dataset, scores, folds=folds, repeats=repeats, seed=seed,
                   n_test=[len(f.test) for f in fl], n_train=len(fl[0].train), n_val=len(fl[0].val))
    write_run_config(results, approach, dataset, data_path, folds, repeats, seed)


def test_reference_rows_on_the_same_folds_and_cached(tmp_path, monkeypatch, capsys):
    data_path = write_tiny_dataset(tmp_path / "data" / "T2.csv")
    results = tmp_path / "results"
    write_matching_approach(results, CNN, "T2", data_path, fold_scores(seed=1, level=0.9))
    write_matching_approach(results, MTL_CNN, "T2", data_path, fold_scores(seed=2, level=0.9))

    assert cmp.run(args_for(results)) == 0
    table = pd.read_csv(results / "comparison.csv")
    refs = table[table["kind"] == "reference"]
    assert set(refs["approach"]) == {"Reference PCA+SVM", "Reference LDA", "Reference tuned SVM"}
    assert (refs["n_folds"] == 15).all() and (refs["accuracy_mean"] > 0.95).all()
    # The multi-task row is still tested against the single-task network, not a reference.
    tests = pd.read_csv(results / "comparison_tests.csv")
    assert set(tests["vs_approach"]) == {CNN[0]}

    cache = results / "References" / "Individual Dataset Results" / "References_full_split_metrics_T2.csv"
    cached = pd.read_csv(cache)
    assert list(cached.columns) == individual_columns(2)
    assert set(cached["family"]) == {"reference"} and len(cached) == 45
    assert (results / "References" / "Run Config" / "run_T2.json").is_file()
    assert "| T2 |" in (results / "comparison.md").read_text()
    capsys.readouterr()

    # Second run: served from the cache, nothing refitted.
    def boom(*a, **k):
        raise AssertionError("reference models were refitted although the cache is valid")

    monkeypatch.setattr(references, "reference_rows", boom)
    assert cmp.run(args_for(results)) == 0
    assert "computing reference rows" not in capsys.readouterr().err
    monkeypatch.undo()

    # Re-exported with other folds: the cache is stale and recomputed on the new folds.
    write_matching_approach(results, CNN, "T2", data_path, fold_scores(seed=1, n=3, level=0.9), folds=3, repeats=1)
    write_matching_approach(results, MTL_CNN, "T2", data_path, fold_scores(seed=2, n=3, level=0.9), folds=3, repeats=1)
    assert cmp.run(args_for(results)) == 0
    assert "computing reference rows for T2" in capsys.readouterr().err
    cached = pd.read_csv(cache)
    assert len(cached) == 9 and set(cached["repeat"]) == {0}
    assert json.loads((results / "References" / "Run Config" / "run_T2.json").read_text())["folds"] == 3


def test_references_skipped_with_a_note_when_data_is_gone(tmp_path, capsys):
    data_path = write_tiny_dataset(tmp_path / "data" / "T2.csv")
    results = tmp_path / "results"
    write_matching_approach(results, CNN, "T2", data_path, fold_scores(seed=1, level=0.9))
    data_path.unlink()
    assert cmp.run(args_for(results)) == 0
    out = capsys.readouterr().out
    assert "T2: no reference rows" in out and "not readable" in out
    assert "reference" not in set(pd.read_csv(results / "comparison.csv")["kind"])


def test_no_references_flag_skips_them(tmp_path):
    data_path = write_tiny_dataset(tmp_path / "data" / "T2.csv")
    results = tmp_path / "results"
    write_matching_approach(results, CNN, "T2", data_path, fold_scores(seed=1, level=0.9))
    assert cmp.run(args_for(results, "--no-references")) == 0
    assert not (results / "References").exists()
