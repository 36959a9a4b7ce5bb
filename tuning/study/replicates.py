"""Replicates: the unit of evidence of the study.

Replicate ``r`` is a whole pipeline (Bouthillier et al., MLSys 2021): its seed
``seed + SEED_STEP * r`` makes one stratified train / validation / test split of every
dataset (:func:`tuning.data.splits.tuning_split`, the split every search uses); every
approach's search runs on that split with the same effort (trials, epoch limit, ASHA
grace); each approach's pick is then trained once more on the training rows (early
stopping on the validation rows, :func:`tuning.export.reruns.run_jobs`, the reruns'
one-split job) and scored on the replicate's test rows, which no trial of any approach
saw. All approaches of a replicate share the split, so their scores are paired by
replicate; across replicates the split, the initialisations, the data order and the
searches are all redrawn.

Learning curves (exploratory): the pick of an approach with a same-trunk twin in the
study is also trained on nested, stratified fractions of its training and validation
rows (:func:`tuning.data.splits.nested_subset`, seeded by the replicate, so both
approaches of a pair train on the same rows) and scored on the same test rows.

Each finished search writes ``<results>/Study/Replicates/replicate-<r>/<family>-<datasets>.json``
(the pick, the effort it got, its scores and the fingerprint of data and settings); a
rerun of the study skips every search whose record matches, so a study interrupted
mid-replicate continues with the searches still to run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from tuning import atomic
from tuning.data.readers import Dataset, file_sha256
from tuning.settings import TuneSettings

SEED_STEP = 1000
FOLDER = Path("Study") / "Replicates"
ONE_SPLIT = "one_split"
CURVE_KIND = "learning_curve"
FINGERPRINT_SETTINGS = ("samples", "max_epochs", "grace_period", "metric", "seed", "val_fraction", "test_fraction",
                        "label_column", "searcher")
SCORE_COLUMNS = ["replicate", "seed", "family", "dataset", "fraction", "accuracy", "balanced_accuracy", "macro_f1",
                 "n_train", "n_val", "n_test", "epochs", "train_seconds"]


def replicate_seed(base_seed: int, replicate: int) -> int:
    return base_seed + SEED_STEP * replicate


def replicate_settings(settings: TuneSettings, replicate: int) -> TuneSettings:
    """The settings of one replicate's searches: its own seed and storage folder, no time
    budget (a search is never cut: equal effort), never resumed by Tune (a search that was
    interrupted runs again from its start)."""
    storage = settings.storage if "://" in str(settings.storage) else str(Path(settings.storage).expanduser().resolve())
    return dataclasses.replace(settings, seed=replicate_seed(settings.seed, replicate), time_budget_s=None,
                               resume=False, storage=f"{storage.rstrip('/')}/replicate-{replicate:02d}",
                               verbose=0)  # the study prints a line per search; details stay in tune.log


def fingerprint(family: str, group: Sequence[Dataset], settings: TuneSettings, fractions: Sequence[float]) -> dict:
    """What a replicate's record depends on: the data's content, the settings and the curve fractions."""
    out = {"family": family,
           "datasets": [{"name": d.name, "sha256": file_sha256(d.path), "rows": int(len(d.y))} for d in group],
           "settings": {k: getattr(settings, k) for k in FINGERPRINT_SETTINGS},
           "fractions": [float(f) for f in fractions]}
    if settings.columns is not None:  # only then: records of studies without --columns stay valid
        out["settings"]["columns"] = settings.columns
    return out


def record_path(results_dir, replicate: int, family: str, group: Sequence[Dataset]) -> Path:
    return Path(results_dir) / FOLDER / f"replicate-{replicate:02d}" / f"{family}-{'+'.join(d.name for d in group)}.json"


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def score_jobs(datasets: Sequence[Dataset], settings: TuneSettings, fractions: Sequence[float]):
    """The pick's training on the replicate's split (scored on its test rows), then one
    training per learning-curve fraction on nested subsets of the same training and
    validation rows (same test rows). ``settings.seed`` is the replicate's seed."""
    from tuning.data.splits import tuning_split
    from tuning.export.reruns import RerunJob
    from tuning.data.splits import nested_subset

    splits = [tuning_split(d.y, settings.seed, settings.val_fraction, settings.test_fraction) for d in datasets]
    test = tuple(s.test for s in splits)
    jobs = [RerunJob(ONE_SPLIT, 0, 0, settings.seed, tuple(s.train for s in splits), tuple(s.val for s in splits),
                     test)]
    for fraction in fractions:
        train = tuple(nested_subset(d.y, s.train, fraction, (settings.seed, 0)) for d, s in zip(datasets, splits))
        val = tuple(nested_subset(d.y, s.val, fraction, (settings.seed, 1)) for d, s in zip(datasets, splits))
        jobs.append(RerunJob(f"{CURVE_KIND}:{fraction:g}", 0, 0, settings.seed, train, val, test))
    return jobs


def trial_epochs(experiment: str | Path) -> list[int]:
    """Epochs each trial of a local experiment folder trained (from Tune's result.json); []
    for a storage URI."""
    if "://" in str(experiment):
        return []
    out = []
    for folder in sorted(Path(experiment).glob("trial_*")):
        try:
            out.append(sum(1 for line in (folder / "result.json").read_text().splitlines() if line.strip()))
        except OSError:
            out.append(0)
    return out


def run_search(family: str, group: Sequence[Dataset], settings: TuneSettings, fractions: Sequence[float], *,
               replicate: int, results_dir, log: Callable[[str], None]) -> dict:
    """One approach's search in one replicate, its pick scored; writes and returns its record.
    Ray must be connected. Raises KeyboardInterrupt when the search was interrupted."""
    from tuning.export.exporter import rerun_patience
    from tuning.export.reruns import run_jobs
    from tuning.search.driver import run_groups

    names = "+".join(d.name for d in group)
    started = time.time()
    outcome = run_groups(family, [group], settings)[0]
    if not outcome.complete:
        log(f"study: {family} on {names} (replicate {replicate}) was interrupted; run the same command again "
            "to continue")
        raise KeyboardInterrupt
    searched = time.time()
    record = {"replicate": replicate, "seed": settings.seed, "family": family, "datasets": [d.name for d in group],
              "experiment": str(outcome.path), "samples": settings.samples, "max_epochs": settings.max_epochs,
              "grace_period": settings.grace_period, "n_trials": outcome.n_trials, "n_errored": outcome.n_errored,
              "trial_epochs": trial_epochs(outcome.path), "best_config": outcome.best_config,
              "validation": {k: v for k, v in outcome.best_metrics.items() if k.startswith("val_")},
              "search_seconds": round(searched - started, 1), "started_at": started,
              "fingerprint": fingerprint(family, group, settings, fractions)}
    if outcome.best_config:
        jobs = score_jobs(group, settings, fractions)
        rows = run_jobs(family, outcome.best_config, group, jobs, max_epochs=settings.max_epochs,
                        patience=rerun_patience(settings.max_epochs), metric=settings.metric,
                        cpus=settings.cpus_per_trial, gpus=settings.gpus_per_trial, progress=False)
        record["scores"] = [_score_row(row) for row in rows]
    else:
        record["scores"] = []
    record["score_seconds"] = round(time.time() - searched, 1)
    record["ended_at"] = time.time()
    atomic.write_text(record_path(results_dir, replicate, family, group), json.dumps(record, indent=2, default=str))
    return record


def describe(record: dict) -> str:
    """One console line's worth of a finished search: its trials and its pick's test scores."""
    test = [s for s in record.get("scores", []) if s["fraction"] == 1.0]
    seconds = (record.get("search_seconds") or 0) + (record.get("score_seconds") or 0)
    return (f"{record['n_trials']} trials" + (f", {record['n_errored']} errored" if record["n_errored"] else "")
            + (", test accuracy " + ", ".join(f"{s['dataset']} {100 * s['accuracy']:.1f}%" for s in test) if test
               else ", no trial finished") + f" ({seconds / 60:.1f} min)")


def _score_row(row: dict) -> dict:
    kind = str(row["kind"])
    fraction = float(kind.split(":", 1)[1]) if kind.startswith(CURVE_KIND) else 1.0
    keep = ("dataset", "accuracy", "balanced_accuracy", "macro_f1", "recall", "confusion_matrix", "n_train",
            "n_val", "n_test", "epochs", "best_epoch", "train_seconds")
    return {"fraction": fraction, **{k: row[k] for k in keep if k in row}}


def scores_table(records: Sequence[dict]) -> pd.DataFrame:
    """One row per (replicate, family, dataset, fraction): :data:`SCORE_COLUMNS`, scores as fractions."""
    rows = [{"replicate": r["replicate"], "seed": r["seed"], "family": r["family"], **score}
            for r in records for score in r.get("scores", [])]
    frame = pd.DataFrame(rows)
    return frame[[c for c in SCORE_COLUMNS if c in frame.columns]] if len(frame) else pd.DataFrame(columns=SCORE_COLUMNS)


def effort_table(records: Sequence[dict]) -> pd.DataFrame:
    """The effort every search got: trials asked and run, errored trials, epochs trained,
    seconds; ``unequal`` marks a search that got less than it was planned to (an errored
    trial, fewer trials than asked)."""
    rows = []
    for r in records:
        epochs = r.get("trial_epochs") or []
        rows.append({"replicate": r["replicate"], "family": r["family"], "datasets": "+".join(r["datasets"]),
                     "samples": r["samples"], "max_epochs": r["max_epochs"], "n_trials": r["n_trials"],
                     "n_errored": r["n_errored"], "trial_epochs": int(sum(epochs)),
                     "search_seconds": r.get("search_seconds"), "score_seconds": r.get("score_seconds"),
                     "unequal": bool(r["n_errored"] or r["n_trials"] < r["samples"] or not r.get("scores"))})
    return pd.DataFrame(rows)
