"""Racing the search's top configurations (``--race K``, tuning.export.racing): the race's folds
never touch the tuning split's test rows, and the race picks the configuration with the best
mean over its folds, each score being a real rerun's."""

from __future__ import annotations

import numpy as np
import pytest

from tuning.data.readers import load_dataset
from tuning.data.splits import tuning_split
from tuning.export import racing
from tuning.export.exporter import INNER_VAL_FRACTION

SPLIT = dict(val_fraction=0.15, test_fraction=0.15, inner_val_fraction=INNER_VAL_FRACTION)
GOOD = {"ffn_n_layers": 1, "ffn_units_l0": 32, "lr": 3e-3, "batch_size": 16, "dropout": 0.0}
HOPELESS = {**GOOD, "lr": 1e-7}  # learns nothing in a few epochs: near chance


@pytest.mark.parametrize("names", [("T3",), ("T2", "T3")])
def test_race_folds_cover_the_training_and_validation_rows_and_never_a_test_row(module_tiny_dataset_dir, names):
    datasets = [load_dataset(module_tiny_dataset_dir / f"{n}.csv") for n in names]
    jobs = racing.race_jobs(datasets, seed=4, folds=3, **SPLIT)
    assert [j.fold for j in jobs] == [0, 1, 2] and {j.kind for j in jobs} == {racing.RACE}
    for task, dataset in enumerate(datasets):
        split = tuning_split(dataset.y, 4, SPLIT["val_fraction"], SPLIT["test_fraction"])
        pool = np.sort(np.concatenate([split.train, split.val]))
        scored = np.concatenate([j.test[task] for j in jobs])
        assert np.array_equal(np.sort(scored), pool)  # every pool row raced on once, nothing else
        for job in jobs:
            parts = [set(job.train[task]), set(job.val[task]), set(job.test[task])]
            assert not set(split.test) & set().union(*parts)  # the tuning split's test rows: unseen
            assert not parts[0] & parts[2] and not parts[1] & parts[2] and not parts[0] & parts[1]
            # stratified: every class in every scored fold
            assert set(dataset.y[job.test[task]]) == set(range(dataset.n_classes))


def test_race_jobs_refuse_data_too_small_for_the_folds(tmp_path, write_csv):
    from tuning.data.readers import load_dataset as load
    from tuning.errors import InputError

    rows = [[f"{v:.1f}", f"{-v:.1f}", str(k)] for k in range(2) for v in range(3 if k else 20)]
    path = write_csv(tmp_path / "S.csv", ["s0", "s1", "label"], rows)
    with pytest.raises(InputError, match="S.csv: too few rows to race on 3 folds"):
        racing.race_jobs([load(path, min_rows_per_class=3)], seed=0, folds=3, **SPLIT)


def test_race_picks_the_best_mean_and_each_score_is_a_reruns(ray_2cpu, module_tiny_dataset_dir):
    from tuning.export.reruns import run_job

    dataset = load_dataset(module_tiny_dataset_dir / "T3.csv")
    jobs = racing.race_jobs([dataset], seed=1, folds=2, **SPLIT)
    result = racing.race("ffn", [HOPELESS, GOOD], [dataset], jobs, max_epochs=6, patience=3, metric="accuracy",
                         progress=False)
    assert result.winner == 1  # listed second, better on the race folds
    assert result.scores[1] > result.scores[0] + 0.2
    assert len(result.per_fold) == 2 and all(len(f) == 2 for f in result.per_fold)
    alone = run_job("ffn", GOOD, [dataset], jobs[0], max_epochs=6, patience=3)[0]  # same seed, rows: same run
    assert result.per_fold[1][0] == pytest.approx(alone["accuracy"])
    assert result.scores[1] == pytest.approx(np.mean(result.per_fold[1]))
    assert result.metric == "accuracy" and result.epochs > 0
    # Ties go to the search's own order.
    tie = racing.race("ffn", [GOOD, GOOD], [dataset], jobs, max_epochs=6, patience=3, metric="loss",
                      progress=False)
    assert tie.winner == 0 and tie.metric == "accuracy" and tie.scores[0] == pytest.approx(tie.scores[1])
