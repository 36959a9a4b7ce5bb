"""The export (issue 3): reruns of the best configuration and the lab's results tree.

One small search per tiny dataset (ffn on T2 and T3, two trials of two epochs, in a
module-owned Ray runtime with 2 CPUs) is shared by the module; each test exports it into
its own results folder (2 folds x 2 repeats unless a test says otherwise).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import search_spaces
from tuning.export import results_tree as tree
from tuning.data.readers import load_dataset
from tuning.search.driver import run_tuning
from tuning.errors import InputError
from tuning.export.exporter import INNER_VAL_FRACTION, export_experiment
from tuning.export.reruns import FULL_SPLIT, ONE_SPLIT, plan_jobs
from tuning.data.splits import cv_folds

FOLDS, REPEATS = 2, 2
APPROACH, PREFIX = "Classic FFN PyTorch", "Classic_FFN"
ROWS = {"T2": 120, "T3": 180}
CLASSES = {"T2": 2, "T3": 3}


# --------------------------------------------------------------------------------------
# Shared search and exports
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def experiments(ray_2cpu, module_tiny_dataset_dir, tmp_path_factory) -> dict[str, Path]:
    """One finished ffn search per dataset (T2, T3): dataset name -> experiment folder."""
    storage = tmp_path_factory.mktemp("export_search") / "ray_results"
    outcomes = run_tuning("ffn", "T2,T3", data_dir=str(module_tiny_dataset_dir), storage=str(storage),
                          samples=2, max_epochs=2, grace_period=1, folds=FOLDS, repeats=1, verbose=0)
    assert [o.datasets for o in outcomes] == [["T2"], ["T3"]]
    assert all(o.complete and o.best_config for o in outcomes)
    return {o.datasets[0]: o.path for o in outcomes}


@pytest.fixture(scope="module")
def exported(experiments, tmp_path_factory):
    """T2 exported, then T3, into one results folder; returns (results_dir, summaries)."""
    results = tmp_path_factory.mktemp("export_base") / "results"
    summaries = {name: export_experiment(experiments[name], results, folds=FOLDS, repeats=REPEATS,
                                         progress=False)
                 for name in ("T2", "T3")}
    return results, summaries


@pytest.fixture
def results_copy(exported, tmp_path) -> Path:
    """A private copy of the shared T2+T3 results tree, for tests that change it."""
    target = tmp_path / "results"
    shutil.copytree(exported[0], target)
    return target


def tree_state(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (the exports' lock file aside)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != tree.LOCK_NAME}


def leftovers(root: Path) -> list[str]:
    """Temporary files (hidden names or *.tmp) anywhere under ``root``; the exports' lock
    file in the root is not one."""
    return [str(p) for p in root.rglob("*")
            if (p.name.startswith(".") or p.name.endswith(".tmp")) and p != root / tree.LOCK_NAME]


def paths(results: Path) -> dict[str, Path]:
    root = results / APPROACH
    return {
        "best": root / "Best Performance Results" / f"{PREFIX}_best_performers.csv",
        "system": root / "Full Split Results" / f"{PREFIX}_full_split_metrics_system.csv",
        "one": root / "Full Split Results" / f"{PREFIX}_one_split_metrics_system.csv",
        "individual": root / "Individual Dataset Results",
        "run_config": root / "Run Config",
    }


def as_text(path: Path) -> pd.DataFrame:
    """A CSV with every cell as its text, so comparisons are exact."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------------------
# Schema of every file
# --------------------------------------------------------------------------------------


def test_results_tree_has_exactly_the_lab_files(exported):
    results, _ = exported
    expected = {f"{APPROACH}/Best Performance Results/{PREFIX}_best_performers.csv",
                f"{APPROACH}/Full Split Results/{PREFIX}_full_split_metrics_system.csv",
                f"{APPROACH}/Full Split Results/{PREFIX}_one_split_metrics_system.csv",
                f"{APPROACH}/Full Split Results/{PREFIX}_reference_margins.csv",
                f"{APPROACH}/Run Config/search_space_ffn.py",
                f"{APPROACH}/Run Config/command.txt"}
    for name in ("T2", "T3"):
        expected |= {f"{APPROACH}/Individual Dataset Results/{PREFIX}_full_split_metrics_{name}.csv",
                     f"{APPROACH}/Individual Dataset Results/{PREFIX}_confusion_matrix_{name}.csv",
                     f"{APPROACH}/Individual Dataset Results/{PREFIX}_confusion_matrix_{name}.png",
                     f"{APPROACH}/Run Config/run_{name}.json",
                     f"{APPROACH}/Run Config/folds_{name}.csv",
                     f"References/Individual Dataset Results/References_full_split_metrics_{name}.csv",
                     f"References/Run Config/run_{name}.json",
                     *(f"{APPROACH}/Model/{name}/{file}" for file in ("bundle.json", "weights.pt", "model.onnx"))}
    assert set(tree_state(results)) == expected
    assert leftovers(results) == []


@pytest.mark.parametrize("name", ["T2", "T3"])
def test_individual_dataset_file_schema(exported, name):
    results, _ = exported
    frame = pd.read_csv(paths(results)["individual"] / f"{PREFIX}_full_split_metrics_{name}.csv",
                        dtype={"node_id": str})
    assert list(frame.columns) == tree.individual_columns(CLASSES[name])
    assert len(frame) == FOLDS * REPEATS
    assert sorted(zip(frame["repeat"], frame["fold"])) == [(r, f) for r in range(REPEATS) for f in range(FOLDS)]
    assert (frame["dataset"] == name).all() and (frame["approach"] == APPROACH).all()
    assert (frame["family"] == "ffn").all()
    # Every row scored once per repeat; train + inner validation + scored fold = all rows.
    assert (frame.groupby("repeat")["n_test"].sum() == ROWS[name]).all()
    assert (frame["n_train"] + frame["n_val"] + frame["n_test"] == ROWS[name]).all()
    for score in (*tree.SCORES, *[f"recall_class_{k}" for k in range(CLASSES[name])]):
        assert frame[score].between(0, 1).all(), score
    assert (frame["epochs"] >= frame["best_epoch"]).all() and (frame["best_epoch"] >= 1).all()
    assert (frame["n_parameters"] > 0).all()


@pytest.mark.parametrize("name", ["T2", "T3"])
def test_confusion_matrix_files(exported, name):
    results, _ = exported
    stem = paths(results)["individual"] / f"{PREFIX}_confusion_matrix_{name}"
    frame = pd.read_csv(stem.with_suffix(".csv"))
    k = CLASSES[name]
    assert list(frame.columns) == ["true_class", *[f"pred_{j}" for j in range(k)]]
    assert frame["true_class"].tolist() == list(range(k))
    counts = frame.drop(columns="true_class").to_numpy()
    assert counts.sum() == ROWS[name] * REPEATS  # summed over folds and repeats
    assert (counts.sum(axis=1) == ROWS[name] // k * REPEATS).all()  # balanced tiny data
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_system_files_schema(exported):
    results, _ = exported
    system = pd.read_csv(paths(results)["system"])
    expected = ["dataset", "approach", "n_runs"]
    for score in tree.SCORES:
        expected += [f"{score}_mean", f"{score}_std", f"{score}_ci95_low", f"{score}_ci95_high"]
    expected += ["epochs_mean", "train_seconds_mean"]
    assert list(system.columns) == expected
    assert system["dataset"].tolist() == ["T2", "T3", tree.OVERALL]
    assert system["n_runs"].tolist() == [FOLDS * REPEATS] * 3
    for score in tree.SCORES:
        assert (system[f"{score}_ci95_low"] <= system[f"{score}_mean"] + 1e-9).all()
        assert (system[f"{score}_mean"] <= system[f"{score}_ci95_high"] + 1e-9).all()
    # The system's per-fold score is the mean over datasets of that fold's score.
    folds = {name: pd.read_csv(paths(results)["individual"] / f"{PREFIX}_full_split_metrics_{name}.csv")
             for name in ("T2", "T3")}
    per_fold = sum(f.set_index(["repeat", "fold"])["accuracy"] for f in folds.values()) / 2
    overall = system.set_index("dataset").loc[tree.OVERALL]
    assert overall["accuracy_mean"] == pytest.approx(per_fold.mean(), abs=1e-5)

    one = pd.read_csv(paths(results)["one"])
    k_max = max(CLASSES.values())
    assert list(one.columns) == [c for c in tree.individual_columns(k_max) if c not in ("repeat", "fold")]
    assert one["dataset"].tolist() == ["T2", "T3", tree.OVERALL]
    by_name = one.set_index("dataset")
    for score in tree.SCORES:
        assert by_name.loc[tree.OVERALL, score] == pytest.approx(by_name.loc[["T2", "T3"], score].mean(), abs=1e-5)
    # The one split scores the tuning split's test part: 15% of each class.
    assert by_name.loc["T2", "n_test"] == 18 and by_name.loc["T3", "n_test"] == 27
    assert np.isnan(by_name.loc["T2", "recall_class_2"])  # T2 has two classes


def test_best_performers_hold_every_hyperparameter(exported):
    results, summaries = exported
    best = pd.read_csv(paths(results)["best"], dtype={"trial_id": str})
    leading = ["dataset", "approach", "family", "objective", "objective_value", "best_epoch", "trial_id",
               "n_trials", "search_complete", "experiment", "full_split_accuracy_mean",
               "full_split_balanced_accuracy_mean", "full_split_macro_f1_mean"]
    assert list(best.columns[:len(leading)]) == leading
    # Then every hyperparameter of either dataset's config, sorted, whatever the export order.
    hyper = set().union(*(s.best.config for s in summaries.values())) - {"family"}
    assert list(best.columns[len(leading):]) == sorted(hyper)
    assert best["dataset"].tolist() == ["T2", "T3"]
    system = pd.read_csv(paths(results)["system"]).set_index("dataset")
    for _, row in best.iterrows():
        summary = summaries[row["dataset"]]
        config = summary.best.config
        assert row["family"] == config["family"] == "ffn"
        assert row["objective"] == "val_accuracy"
        assert row["trial_id"] == summary.best.trial_id and row["n_trials"] == 2
        assert row["objective_value"] == pytest.approx(summary.best.value, abs=1e-5)
        assert row["full_split_accuracy_mean"] == pytest.approx(system.loc[row["dataset"], "accuracy_mean"])
        for key, value in config.items():
            assert key in best.columns, f"hyperparameter {key} has no column"
            if isinstance(value, bool) or isinstance(value, str):
                assert str(row[key]) == str(value), key
            else:
                assert float(row[key]) == pytest.approx(float(value), rel=1e-5), key
        # Per-layer widths beyond this config's depth are empty for this dataset.
        for layer in range(int(config["ffn_n_layers"]), 4):
            if f"ffn_units_l{layer}" in best.columns:
                assert pd.isna(row[f"ffn_units_l{layer}"])


def test_run_config_files(exported, experiments, module_tiny_dataset_dir):
    results, summaries = exported
    folder = paths(results)["run_config"]
    assert (folder / "search_space_ffn.py").read_text() == search_spaces.space_source("ffn")
    command = (folder / "command.txt").read_text().splitlines()
    assert [line.split(":", 1)[0] for line in command] == ["search", "export"]
    for name in ("T2", "T3"):
        run = json.loads((folder / f"run_{name}.json").read_text())
        dataset = load_dataset(module_tiny_dataset_dir / f"{name}.csv")
        assert run["dataset"] == name
        assert run["label_map"] == dataset.label_map()
        assert (run["folds"], run["repeats"], run["seed"]) == (FOLDS, REPEATS, 0)
        assert run["inner_val_fraction"] == INNER_VAL_FRACTION
        assert run["experiment"] == str(experiments[name])
        assert run["best_trial"]["trial_id"] == summaries[name].best.trial_id
        assert run["best_trial"]["config"] == json.loads(json.dumps(summaries[name].best.config))
        assert {"search", "export"} <= set(run["versions"])

        folds = pd.read_csv(folder / f"folds_{name}.csv")
        assert list(folds.columns) == ["row", *[f"repeat{r}_fold" for r in range(REPEATS)]]
        assert folds["row"].tolist() == list(range(ROWS[name]))
        # The same folds the reruns scored: each row's fold holds it as a test row.
        for fold in cv_folds(dataset.y, FOLDS, REPEATS, 0, INNER_VAL_FRACTION):
            assert (folds.loc[fold.test, f"repeat{fold.repeat}_fold"] == fold.fold).all()


# --------------------------------------------------------------------------------------
# Merging exports of different datasets
# --------------------------------------------------------------------------------------


def test_reexport_replaces_only_that_datasets_rows(results_copy, experiments):
    p = paths(results_copy)
    before = {key: as_text(p[key]) for key in ("system", "one", "best")}
    t3_files = {path: path.read_bytes() for path in p["individual"].glob("*T3*")}
    t3_files[p["run_config"] / "run_T3.json"] = (p["run_config"] / "run_T3.json").read_bytes()
    t3_files[p["run_config"] / "folds_T3.csv"] = (p["run_config"] / "folds_T3.csv").read_bytes()

    # A different number of repeats makes T2's new rows distinguishable from its old ones.
    export_experiment(experiments["T2"], results_copy, folds=FOLDS, repeats=1, progress=False)

    for path, content in t3_files.items():
        assert path.read_bytes() == content, f"{path.name} changed"
    t2 = pd.read_csv(p["individual"] / f"{PREFIX}_full_split_metrics_T2.csv")
    assert len(t2) == FOLDS and set(t2["repeat"]) == {0}
    for key in ("system", "one", "best"):
        after = as_text(p[key])
        assert after["dataset"].tolist() == before[key]["dataset"].tolist(), key
        old_t3 = before[key][before[key]["dataset"] == "T3"].reset_index(drop=True)
        new_t3 = after[after["dataset"] == "T3"].reset_index(drop=True)
        pd.testing.assert_frame_equal(new_t3, old_t3, obj=f"{key}: T3 row")
    system = pd.read_csv(p["system"]).set_index("dataset")
    assert system.loc["T2", "n_runs"] == FOLDS and system.loc["T3", "n_runs"] == FOLDS * REPEATS
    # overall: the folds both datasets have (repeat 0), averaged over the two datasets.
    assert system.loc[tree.OVERALL, "n_runs"] == FOLDS
    assert leftovers(results_copy) == []


def test_second_dataset_merges_into_first(experiments, exported, tmp_path):
    """T2 alone, then T3: T2's rows stay as they were and an overall row joins them."""
    results = tmp_path / "results"
    export_experiment(experiments["T2"], results, folds=FOLDS, repeats=REPEATS, progress=False)
    p = paths(results)
    alone = {key: as_text(p[key]) for key in ("system", "one", "best")}
    assert alone["system"]["dataset"].tolist() == ["T2", tree.OVERALL]
    export_experiment(experiments["T3"], results, folds=FOLDS, repeats=REPEATS, progress=False)
    for key in ("system", "one", "best"):
        merged = as_text(p[key])
        expected = ["T2", "T3"] + ([tree.OVERALL] if key != "best" else [])
        assert merged["dataset"].tolist() == expected, key
        old_t2 = alone[key][alone[key]["dataset"] == "T2"].reset_index(drop=True)
        new_t2 = merged[merged["dataset"] == "T2"].reset_index(drop=True)
        shared = [c for c in old_t2.columns if c in new_t2.columns]
        pd.testing.assert_frame_equal(new_t2[shared], old_t2[shared], obj=f"{key}: T2 row")


# --------------------------------------------------------------------------------------
# All or nothing
# --------------------------------------------------------------------------------------


def test_failure_while_writing_leaves_tree_unchanged(results_copy, experiments, monkeypatch):
    """The third rename into results/ fails: every file stays as it was, no temporary files."""
    before = tree_state(results_copy)
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst, *args, **kwargs):
        if Path(dst).resolve().is_relative_to(results_copy.resolve()):
            calls.append(dst)
            if len(calls) == 3:
                raise OSError(28, "No space left on device (injected)")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    from tuning.errors import MachineError

    with pytest.raises(MachineError, match="the disk is full .*nothing already there was changed"):
        export_experiment(experiments["T2"], results_copy, folds=FOLDS, repeats=1, progress=False)
    monkeypatch.undo()
    assert len(calls) >= 3
    assert tree_state(results_copy) == before
    assert leftovers(results_copy) == []


def test_failed_commit_into_new_folder_leaves_nothing(tmp_path, monkeypatch):
    """The first export into a new results folder fails on its third file: no folder is left."""
    results = tmp_path / "results"
    plan = {results / APPROACH / folder / f"{name}.csv": f"x\n{i}\n".encode()
            for i, (folder, name) in enumerate([("Individual Dataset Results", "a"), ("Full Split Results", "b"),
                                                 ("Full Split Results", "c"), ("Run Config", "d")])}
    real_replace, calls = os.replace, []

    def failing_replace(src, dst, *args, **kwargs):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(5, "I/O error (injected)")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="injected"):
        tree.commit(plan)
    monkeypatch.undo()
    assert not results.exists()
    tree.commit(plan)  # and without the fault every file is written
    assert {p: p.read_bytes() for p in plan} == plan
    assert leftovers(results) == []


def test_failure_while_planning_leaves_tree_unchanged(results_copy, experiments, monkeypatch):
    before = tree_state(results_copy)

    def broken_png(*args, **kwargs):
        raise RuntimeError("matplotlib failed (injected)")

    monkeypatch.setattr(tree, "confusion_png", broken_png)
    with pytest.raises(RuntimeError, match="injected"):
        export_experiment(experiments["T3"], results_copy, folds=FOLDS, repeats=1, progress=False)
    assert tree_state(results_copy) == before
    assert leftovers(results_copy) == []


def test_export_of_empty_folder_leaves_results_unchanged(results_copy, tmp_path):
    before = tree_state(results_copy)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="spikesort_run.json"):
        export_experiment(empty, results_copy, folds=FOLDS, repeats=1, progress=False)
    assert tree_state(results_copy) == before


# --------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------


def test_same_seed_gives_same_metrics(exported, experiments, tmp_path):
    results, _ = exported
    again = tmp_path / "again"
    export_experiment(experiments["T2"], again, folds=FOLDS, repeats=REPEATS, progress=False)
    export_experiment(experiments["T3"], again, folds=FOLDS, repeats=REPEATS, progress=False)
    timing = ["train_seconds", "node_id"]
    first, second = paths(results), paths(again)
    pd.testing.assert_frame_equal(as_text(second["one"]).drop(columns=timing),
                                  as_text(first["one"]).drop(columns=timing))
    for name in ("T2", "T3"):
        csv = f"{PREFIX}_full_split_metrics_{name}.csv"
        pd.testing.assert_frame_equal(as_text(second["individual"] / csv).drop(columns=timing),
                                      as_text(first["individual"] / csv).drop(columns=timing))
        confusion = f"{PREFIX}_confusion_matrix_{name}.csv"
        assert (second["individual"] / confusion).read_bytes() == (first["individual"] / confusion).read_bytes()
    columns = [c for c in pd.read_csv(first["system"]).columns if not c.startswith("train_seconds")]
    pd.testing.assert_frame_equal(as_text(second["system"])[columns], as_text(first["system"])[columns])
    # The model bundle's network too: the same weights, hence the same logits.
    from tuning.bundle.model_bundle import load_model

    dataset = load_dataset(experiments_data(experiments["T3"]))
    assert np.array_equal(load_model(again / APPROACH / "Model" / "T3").logits(dataset.X),
                          load_model(results / APPROACH / "Model" / "T3").logits(dataset.X))


# --------------------------------------------------------------------------------------
# The ensemble approach (--ensemble K)
# --------------------------------------------------------------------------------------


def test_ensemble_is_its_own_approach_on_the_same_folds(exported, experiments, tmp_path):
    from tuning.study.comparison import ENSEMBLE, SINGLE, load_approaches, paired_tests
    from tuning.export.exporter import find_best_trial, ranked_trials

    results, _ = exported
    with_ensemble = tmp_path / "results"
    summary = export_experiment(experiments["T3"], with_ensemble, folds=FOLDS, repeats=REPEATS, progress=False,
                                ensemble=2)
    approach, prefix = tree.approach_names("ffn", ensemble=True)
    assert (approach, prefix) == (APPROACH + " Ensemble", PREFIX + "_Ensemble")
    root = with_ensemble / approach
    # The best configuration's own rows are those of an export without an ensemble: the
    # members train beside it and change nothing of it.
    csv = f"{PREFIX}_full_split_metrics_T3.csv"
    timing = ["train_seconds", "node_id"]
    pd.testing.assert_frame_equal(as_text(with_ensemble / APPROACH / tree.INDIVIDUAL / csv).drop(columns=timing),
                                  as_text(results / APPROACH / tree.INDIVIDUAL / csv).drop(columns=timing))
    single = pd.read_csv(with_ensemble / APPROACH / tree.INDIVIDUAL / csv)
    ensemble = pd.read_csv(root / tree.INDIVIDUAL / f"{prefix}_full_split_metrics_T3.csv")
    assert list(ensemble[["repeat", "fold", "n_train", "n_test"]].itertuples(index=False)) == \
        list(single[["repeat", "fold", "n_train", "n_test"]].itertuples(index=False))
    assert (ensemble["epochs"] > single["epochs"]).all()  # two networks' epochs
    assert (ensemble["n_parameters"] > single["n_parameters"]).all()
    assert summary.ensemble_full_split is not None and set(summary.ensemble_full_split["dataset"]) == {"T3", tree.OVERALL}
    # Its members: the best trial first, then the next under the same rule.
    ranked = [t.trial_id for t in ranked_trials(str(experiments["T3"]), "val_accuracy", "max")]
    members = json.loads((root / tree.RUN_CONFIG / "ensemble_members.json").read_text())
    assert [m["trial_id"] for m in members] == ranked[:2]
    assert members[0]["trial_id"] == find_best_trial(str(experiments["T3"]), "val_accuracy", "max").trial_id
    best = pd.read_csv(root / tree.BEST / f"{prefix}_best_performers.csv", dtype={"trial_id": str})
    assert best["ensemble_members"].iloc[0].startswith(ranked[0] + " (")
    # The comparison shows it as an ensemble and tests it in no pair.
    rows = load_approaches(with_ensemble, include_references=False)
    assert rows.groupby("approach")["kind"].first().to_dict() == {APPROACH: SINGLE, approach: ENSEMBLE}
    tests, _ = paired_tests(rows)
    assert tests.empty


def test_race_exports_the_winner_and_records_the_race(experiments, tmp_path, capsys):
    from tuning.export.exporter import print_summary, ranked_trials

    results = tmp_path / "results"
    summary = export_experiment(experiments["T3"], results, folds=FOLDS, repeats=REPEATS, progress=False, race=2)
    ranked = [t.trial_id for t in ranked_trials(str(experiments["T3"]), "val_accuracy", "max")]
    race = summary.race
    assert [c["trial_id"] for c in race["candidates"]] == ranked[:2] and race["folds"] == 3
    scores = [c["race_score"] for c in race["candidates"]]
    assert race["winner"] == ranked[int(np.argmax(scores))] == summary.best.trial_id
    assert all(c["race_score"] == pytest.approx(np.mean(c["race_folds"])) for c in race["candidates"])
    run = json.loads((results / APPROACH / tree.RUN_CONFIG / "run_T3.json").read_text())
    assert run["race"] == json.loads(json.dumps(race)) and run["best_trial"]["trial_id"] == race["winner"]
    best = pd.read_csv(results / APPROACH / tree.BEST / f"{PREFIX}_best_performers.csv", dtype={"trial_id": str})
    assert best["trial_id"].tolist() == [race["winner"]]
    print_summary(summary)
    out = capsys.readouterr().out
    assert f"raced the search's top 2 on 3 extra folds" in out and f"picked trial {race['winner']}" in out


def test_rerun_ensemble_row_scores_the_average_of_the_networks(module_tiny_dataset_dir):
    from tuning.export.ensemble import average_proba, fit_members
    from tuning.metrics import classification_metrics
    from tuning.export.reruns import run_job
    from tuning.training import TaskData

    dataset = load_dataset(module_tiny_dataset_dir / "T3.csv")
    job = plan_jobs([dataset], seed=3, folds=2, repeats=1, val_fraction=0.2, test_fraction=0.2,
                    inner_val_fraction=INNER_VAL_FRACTION)[1]
    base = {"ffn_n_layers": 1, "ffn_units_l0": 16, "lr": 3e-3, "batch_size": 16, "dropout": 0.1}
    configs = [base, {**base, "ffn_units_l0": 8, "lr": 0.01}]
    rows = run_job("ffn", configs[0], [dataset], job, max_epochs=3, patience=2, members=configs[1:])
    assert [r["ensemble"] for r in rows] == [False, True]
    task = TaskData.from_rows(dataset, job.train[0], job.val[0])
    networks = fit_members("ffn", configs, [task], max_epochs=3, seed=job.seed, patience=2)
    test = job.test[0]
    expected = classification_metrics(dataset.y[test], average_proba(networks, dataset.X[test]).argmax(1),
                                      dataset.n_classes)
    assert rows[1]["accuracy"] == pytest.approx(expected["accuracy"])
    assert rows[1]["confusion_matrix"] == expected["confusion_matrix"]
    alone = classification_metrics(dataset.y[test], networks[0].predict(dataset.X[test]), dataset.n_classes)
    assert rows[0]["accuracy"] == pytest.approx(alone["accuracy"])
    assert rows[1]["epochs"] == sum(n.epochs_run for n in networks)


# --------------------------------------------------------------------------------------
# No leakage between the parts of a split
# --------------------------------------------------------------------------------------


def check_no_leakage(jobs, n_rows: list[int], folds: int, repeats: int) -> None:
    one = [job for job in jobs if job.kind == ONE_SPLIT]
    full = [job for job in jobs if job.kind == FULL_SPLIT]
    assert len(one) == 1 and len(full) == folds * repeats
    for job in jobs:
        for task, n in enumerate(n_rows):
            train, val, test = (set(part[task].tolist()) for part in (job.train, job.val, job.test))
            assert train and val and test
            assert not test & train, f"{job.kind} r{job.repeat} f{job.fold}: scored rows in train"
            assert not test & val, f"{job.kind} r{job.repeat} f{job.fold}: scored rows in early stopping"
            assert not train & val
            assert max(train | val | test) < n
    for repeat in range(repeats):
        for task, n in enumerate(n_rows):
            tests = np.concatenate([job.test[task] for job in full if job.repeat == repeat])
            assert np.array_equal(np.sort(tests), np.arange(n)), f"repeat {repeat}: rows not scored once"
            folds_of_repeat = [job for job in full if job.repeat == repeat]
            for job in folds_of_repeat:  # train + val + test is the whole dataset
                assert len(job.train[task]) + len(job.val[task]) + len(job.test[task]) == n


@pytest.mark.parametrize("folds,repeats", [(2, 2), (5, 3)])
def test_plan_jobs_single_task_never_scores_a_training_row(module_tiny_dataset_dir, folds, repeats):
    dataset = load_dataset(module_tiny_dataset_dir / "T3.csv")
    jobs = plan_jobs([dataset], seed=0, folds=folds, repeats=repeats, val_fraction=0.15,
                     test_fraction=0.15, inner_val_fraction=INNER_VAL_FRACTION)
    check_no_leakage(jobs, [ROWS["T3"]], folds, repeats)


def test_plan_jobs_multitask_never_scores_a_training_row(module_tiny_dataset_dir):
    datasets = [load_dataset(module_tiny_dataset_dir / f"{name}.csv") for name in ("T2", "T3")]
    kwargs = dict(seed=3, folds=3, repeats=2, val_fraction=0.15, test_fraction=0.15,
                  inner_val_fraction=INNER_VAL_FRACTION)
    jobs = plan_jobs(datasets, **kwargs)
    check_no_leakage(jobs, [ROWS["T2"], ROWS["T3"]], 3, 2)
    # Each dataset's folds in the multi-task plan are the folds of its single-task plan.
    for task, dataset in enumerate(datasets):
        alone = plan_jobs([dataset], **kwargs)
        assert len(alone) == len(jobs)
        for multi, single in zip(jobs, alone):
            assert (multi.kind, multi.repeat, multi.fold) == (single.kind, single.repeat, single.fold)
            for part in ("train", "val", "test"):
                assert np.array_equal(getattr(multi, part)[task], getattr(single, part)[0])


def test_merge_keeps_identifiers_as_text(tmp_path):
    """An all-digit trial id (Ray's ids are hex) survives a merge byte for byte."""
    from tuning.export.results_tree import csv_bytes, merge_by_dataset

    existing = tmp_path / "best.csv"
    existing.write_bytes(csv_bytes(pd.DataFrame([{"dataset": "T2", "trial_id": "00012345", "node_id": "0042"}])))
    merged = merge_by_dataset(existing, pd.DataFrame([{"dataset": "T3", "trial_id": "abc", "node_id": "ff"}]), ["T3"])
    assert merged.set_index("dataset").loc["T2", "trial_id"] == "00012345"
    assert b"T2,00012345,0042" in csv_bytes(merged)


def test_summary_intervals_stay_within_the_range_of_a_score():
    """Three folds near 100%: the t-interval would pass 1.0; the summary clips it there."""
    from tuning.export.results_tree import summary_rows

    folds = pd.DataFrame({"repeat": [0, 0, 0], "fold": [0, 1, 2], "accuracy": [0.999, 0.8, 1.0],
                          "balanced_accuracy": [0.02, 0.0, 0.3], "macro_f1": [0.5, 0.6, 0.7],
                          "epochs": [1, 2, 3], "train_seconds": [1.0, 1.0, 1.0]})
    row = summary_rows({"X": folds}, "approach").set_index("dataset").loc["X"]
    assert row["accuracy_ci95_high"] == 1.0 and row["accuracy_ci95_low"] < row["accuracy_mean"]
    assert row["balanced_accuracy_ci95_low"] == 0.0
    assert 0.3 < row["macro_f1_ci95_low"] < row["macro_f1_mean"] < row["macro_f1_ci95_high"] < 0.9  # untouched


# --------------------------------------------------------------------------------------
# The model bundle (issue 11)
# --------------------------------------------------------------------------------------


def experiments_data(experiment: Path) -> Path:
    """The dataset CSV an experiment was tuned on (from its run record)."""
    return Path(json.loads((Path(experiment) / "spikesort_run.json").read_text())["datasets"][0]["path"])


@pytest.mark.parametrize("name", ["T2", "T3"])
def test_export_writes_a_model_bundle_per_dataset(exported, module_tiny_dataset_dir, name):
    from tuning.bundle.model_bundle import load_model, task_logits  # noqa: F401  (task_logits: the API the export used)
    from tuning.data.splits import tuning_split

    results, summaries = exported
    model = load_model(results / APPROACH / "Model" / name)
    dataset = load_dataset(module_tiny_dataset_dir / f"{name}.csv")
    meta = model.metadata
    assert model.tasks == [name] and model.classes() == list(dataset.class_names)
    assert meta["family"] == "ffn" and meta["approach"] == APPROACH
    assert meta["config"] == json.loads(json.dumps(dict(sorted(summaries[name].best.config.items()))))
    assert meta["source"]["trial_id"] == summaries[name].best.trial_id
    task = meta["tasks"][0]
    assert task["training_data"]["sha256"] == hashlib.sha256(dataset.path.read_bytes()).hexdigest()
    # The scores it stands for are the ones in the results tree.
    system = pd.read_csv(paths(results)["system"]).set_index("dataset").loc[name]
    one = pd.read_csv(paths(results)["one"]).set_index("dataset").loc[name]
    for score in tree.SCORES:
        assert task["scores"]["full_split"][f"{score}_mean"] == pytest.approx(system[f"{score}_mean"], abs=1e-5)
        assert task["scores"]["one_split"][score] == pytest.approx(one[score], abs=1e-5)
    assert task["scores"]["full_split"]["n_runs"] == FOLDS * REPEATS
    # Trained on every row but the held-out inner part, on which it was calibrated.
    holdout = tuning_split(dataset.y, 0, INNER_VAL_FRACTION, 0.0).val
    assert task["training_data"]["holdout_rows"] == len(holdout)
    assert task["training_data"]["train_rows"] == ROWS[name] - len(holdout)
    predicted = model.predict(dataset.X[holdout])
    truth = np.array(dataset.class_names)[dataset.y[holdout]]
    assert task["calibration"]["accuracy"] == pytest.approx(np.mean(predicted == truth))
    assert task["temperature"] > 0 and 0 <= task["calibration"]["ece_after"] <= 1


def test_predict_on_new_spikes_agrees_with_the_recorded_scores(exported, tmp_path, capsys):
    """New spikes of T2's units (same templates, fresh noise): the accuracy `predict` prints is
    within the spread of the full-split folds the bundle records."""
    from conftest import _write_csv, make_waveforms

    from tuning.cli import main

    results, _ = exported
    X, y = make_waveforms(2, 150, seed=12)
    source = _write_csv(tmp_path / "new_T2.csv", [f"s{i}" for i in range(X.shape[1])] + ["label"],
                        ([f"{v:.2f}" for v in x] + [str(int(c))] for x, c in zip(X, y)))
    folder = results / APPROACH / "Model" / "T2"
    assert main(["predict", str(folder), str(source), "--out", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("  accuracy ", 1)[1].split("%", 1)[0]) / 100
    recorded = json.loads((folder / "bundle.json").read_text())["tasks"][0]["scores"]["full_split"]
    assert abs(accuracy - recorded["accuracy_mean"]) <= max(0.05, 3 * recorded["accuracy_std"]), (accuracy, recorded)
    assert f"full split {100 * recorded['accuracy_mean']:.1f}%" in out


def test_export_summary_prints_each_bundles_speed_beside_its_accuracy(exported, capsys):
    from tuning.export.exporter import print_summary

    results, summaries = exported
    summary = summaries["T3"]
    recorded = json.loads((results / APPROACH / "Model" / "T3" / "bundle.json").read_text())["speed"]
    assert summary.speeds == {"T3": recorded} and recorded["flops_per_spike"] > 0
    print_summary(summary)
    out = capsys.readouterr().out
    accuracy_line = next(i for i, line in enumerate(out.splitlines()) if line.strip().startswith("T3: "))
    speed = out.splitlines()[accuracy_line + 1:]
    rate = recorded["spikes_per_s"][recorded["fastest_backend"]]
    assert any(f"T3: sorts {rate:,} spikes/s ({recorded['fastest_backend']}" in line for line in speed), out


def test_every_export_scores_the_classical_references_on_its_folds(exported, capsys, monkeypatch):
    """The export fits the references on its own full-split folds, writes them where compare
    finds them (compare then refits nothing) and prints the network's margin over the best."""
    from tuning.export import references
    from tuning.export.exporter import print_summary
    from tuning.study import comparison

    results, summaries = exported
    for name in ("T2", "T3"):
        margin = summaries[name].margins[name]
        assert set(margin["reference"]) == set(references.REFERENCE_APPROACHES)
        assert margin["folds"].eq(FOLDS * REPEATS).all() and bool(margin["best"].iloc[0])
        cached = pd.read_csv(references.cache_paths(results, name)[0])
        assert len(cached) == len(references.REFERENCE_APPROACHES) * FOLDS * REPEATS
        net = pd.read_csv(results / APPROACH / tree.INDIVIDUAL / f"{PREFIX}_full_split_metrics_{name}.csv")
        best = margin.iloc[0]
        ref = cached[cached["approach"] == best["reference"]]
        paired = net.merge(ref, on=["repeat", "fold"], suffixes=("", "_ref"))
        # the tree's CSVs hold scores to 6 decimals; the export's margin uses the exact ones
        assert best["margin"] == pytest.approx(100 * (paired["accuracy"] - paired["accuracy_ref"]).mean(), abs=1e-3)
    written = pd.read_csv(results / APPROACH / tree.FULL / f"{PREFIX}_reference_margins.csv")
    assert set(written["dataset"]) == {"T2", "T3"} and len(written) == 2 * len(references.REFERENCE_APPROACHES)
    print_summary(summaries["T2"])
    assert "over the best classical reference (" in capsys.readouterr().out

    def refit(*args, **kwargs):
        raise AssertionError("compare refitted the references the export had written")

    monkeypatch.setattr(references, "reference_rows", refit)
    rows = comparison.load_approaches(results, include_references=False)
    with_refs, notes = comparison.add_references(results, rows, log=lambda message: None)
    assert notes == [] and set(references.REFERENCE_APPROACHES) <= set(with_refs["approach"])
