"""Which best-trial rule picks configurations that score best on the full split?

Archived, settled: RESULTS.md sections ``selection-ffn-A12`` (written at commit 46c6c8f) and
``selection-ffn-A12r64`` (commit 702d9da): both rules picked the same trial, regret about
0.1 point.
``git show COMMIT:benchmarks/selection.py`` is the script as it ran then; this copy still runs
(``python -m benchmarks.archive.selection``) and is tested only with ``pytest --archive``.

One small search, then the truth for every trial it ran:

1. *Search*: ``--trials`` configurations drawn from the family's space (seeded random
   sampling, every trial trained ``--epochs`` epochs on the tuning split with
   ``tuning.training.fit``, in this process, no early stopping), each trial's per-epoch
   validation reports kept as its history.
2. *Truth*: every configuration rerun on the full split (``--folds`` x ``--repeats``,
   ``tuning.export.reruns.run_job``, early stopping on an inner validation part as the export
   does); its mean full-split accuracy. PCA+SVM and LDA (``tuning.export.references``) on the
   same folds, for scale.
3. *Rules*: each rule of ``tuning.search.best_trial`` applied to all trials, and to many random
   subsets of half of them (each a smaller search drawn from the same pool): the
   full-split accuracy of the trial it picks, its regret against the best trial in the
   set, and how well the rule's trial scores rank the trials' full-split accuracies
   (Spearman).

Because every trial's truth is measured, the augmentation and schedule choices also get
an (indicative) marginal comparison: mean full-split accuracy of the trials with and
without each choice.

    python -m benchmarks.archive.selection                         # ffn on A12, 16 trials
    python -m benchmarks.archive.selection --resample 64           # A12 resampled to 64 samples
    python -m benchmarks.archive.selection --quick --data-dir tests/... --dataset T2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np


from benchmarks import common

SECTION = "selection"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="ffn")
    p.add_argument("--dataset", default="A12")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--resample", type=int, default=None, help="resample the waveforms to this many samples")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--subsets", type=int, default=500, help="random half-size searches drawn from the pool")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--raw", default=None, help="save histories and truths as JSON here")
    p.add_argument("--from-raw", default=None, help="analyse a saved --raw file (no training)")
    p.add_argument("--results-md", default=None, help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true", help="4 trials x 3 epochs, 2 folds: a test of the script")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.folds, args.repeats, args.subsets = 4, 3, 2, 1, 20
    return args


def load(args):
    from tuning.data.readers import load_datasets
    from tuning.data.preprocess import resample_to_length
    from tuning.data.splits import min_rows_per_class

    (dataset,) = load_datasets(args.dataset, args.data_dir, min_rows_per_class=min_rows_per_class(args.folds))
    if args.resample:
        X = np.ascontiguousarray(resample_to_length(dataset.X, args.resample, dataset.n_channels), dtype=np.float32)
        dataset = dataclasses.replace(dataset, X=X, name=f"{dataset.name}r{args.resample}")
    return dataset


@dataclasses.dataclass
class RawSearch:
    """A ``--raw`` file of this script, ready to rerun (see :func:`read_raw_search`)."""
    raw: dict
    dataset: object
    ranked: list     # its trials, best first under tuning.search.best_trial's default rule
    configs: dict    # trial id -> config
    jobs: list       # the full-split jobs
    folds: int
    repeats: int
    seed: int


def read_raw_search(path, data_dir, *, folds: int | None = None, repeats: int | None = None,
                    seed: int | None = None) -> RawSearch:
    """The dataset as the search saw it (resampled if it was), its trials ranked, and the
    full-split jobs of ``folds`` x ``repeats`` folds drawn with ``seed``, as the export draws
    them (each None: the raw file's own)."""
    from tuning.search import best_trial
    from tuning.export.exporter import INNER_VAL_FRACTION
    from tuning.export.reruns import FULL_SPLIT, plan_jobs
    from tuning.settings import TuneSettings

    raw = json.loads(Path(path).read_text())
    folds, repeats = folds or raw["folds"], repeats or raw["repeats"]
    seed = raw["seed"] if seed is None else seed
    name, _, length = raw["dataset"].partition("r")
    dataset = load(argparse.Namespace(dataset=name, data_dir=data_dir, folds=folds,
                                      resample=int(length) if length else None))
    ranked = best_trial.rank_trials({t["trial_id"]: t["history"] for t in raw["trials"]}, "val_accuracy", "max")
    settings = TuneSettings()
    jobs = [j for j in plan_jobs([dataset], seed=seed, folds=folds, repeats=repeats,
                                 val_fraction=settings.val_fraction, test_fraction=settings.test_fraction,
                                 inner_val_fraction=INNER_VAL_FRACTION) if j.kind == FULL_SPLIT]
    return RawSearch(raw, dataset, ranked, {t["trial_id"]: t["config"] for t in raw["trials"]}, jobs,
                     folds, repeats, seed)


def sample_configs(family: str, n: int, seed: int) -> list[dict]:
    import optuna

    from search_spaces import get_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space = get_space(family, ["task"])
    configs = []
    for _ in range(n):
        trial = study.ask()
        constants = space(trial)
        configs.append({**trial.params, **constants})
    return configs


def measure(args, dataset) -> dict:
    import torch

    from tuning.export.exporter import INNER_VAL_FRACTION, rerun_patience
    from tuning.export.references import reference_rows
    from tuning.export.reruns import FULL_SPLIT, plan_jobs, run_job
    from tuning.settings import TuneSettings
    from tuning.data.splits import cv_folds, tuning_split
    from tuning.training import TaskData, fit

    torch.set_num_threads(args.threads)
    settings = TuneSettings()
    split = tuning_split(dataset.y, args.seed, settings.val_fraction, settings.test_fraction)
    tasks = [TaskData.from_rows(dataset, split.train, split.val)]
    jobs = [j for j in plan_jobs([dataset], seed=args.seed, folds=args.folds, repeats=args.repeats,
                                 val_fraction=settings.val_fraction, test_fraction=settings.test_fraction,
                                 inner_val_fraction=INNER_VAL_FRACTION) if j.kind == FULL_SPLIT]
    trials = []
    for i, config in enumerate(sample_configs(args.family, args.trials, args.seed)):
        rows: list[dict] = []
        started = time.perf_counter()
        fit(args.family, config, tasks, max_epochs=args.epochs, seed=args.seed,
            on_epoch=lambda epoch, metrics, state: rows.append(
                {k: v for k, v in metrics.items() if isinstance(v, (int, float))}))
        search_s = time.perf_counter() - started
        folds = [run_job(args.family, config, [dataset], job, max_epochs=args.epochs,
                         patience=rerun_patience(args.epochs), threads=args.threads)[0]["accuracy"]
                 for job in jobs]
        trials.append({"trial_id": f"t{i:03d}", "config": config, "history": rows,
                       "full_split": float(np.mean(folds)), "folds": folds, "search_seconds": search_s})
        print(f"{i + 1}/{args.trials}: best val {max(r['val_accuracy'] for r in rows):.3f}, "
              f"full split {np.mean(folds):.3f}", flush=True)
    fold_list = cv_folds(dataset.y, args.folds, args.repeats, args.seed, INNER_VAL_FRACTION)
    refs = reference_rows(dataset.X, dataset.y, dataset.n_classes, fold_list, dataset.name)
    references = {a: float(g["accuracy"].mean()) for a, g in refs.groupby("approach")}
    return {"dataset": dataset.name, "length": dataset.length, "rows": dataset.n_rows,
            "n_classes": dataset.n_classes, "family": args.family, "epochs": args.epochs,
            "folds": args.folds, "repeats": args.repeats, "seed": args.seed, "trials": trials,
            "references": references}


def analyse(raw: dict, subsets: int, seed: int) -> dict:
    from tuning.search import best_trial

    trials = {t["trial_id"]: t for t in raw["trials"]}
    truth = {t: trials[t]["full_split"] for t in trials}
    ids = sorted(trials)
    rng = np.random.default_rng(seed)
    draws = [sorted(rng.choice(ids, size=max(2, len(ids) // 2), replace=False)) for _ in range(subsets)]
    out = {}
    for rule in best_trial.RULES:
        # The ranking is the rule's total order: a subset's pick is its first trial in it.
        ranked = best_trial.rank_trials({t: trials[t]["history"] for t in ids}, "val_accuracy", "max", rule)
        scores = {p.trial_id: p for p in ranked}
        pick = ranked[0]
        picked = [truth[next(p.trial_id for p in ranked if p.trial_id in set(d))] for d in draws]
        regrets = [max(truth[t] for t in d) - p for d, p in zip(draws, picked)]
        out[rule] = {"pick": pick.trial_id, "pick_val": pick.score, "pick_full": truth[pick.trial_id],
                     "subset_full_mean": float(np.mean(picked)), "subset_regret_mean": float(np.mean(regrets)),
                     "spearman": common.spearman([scores[t].score for t in ids], [truth[t] for t in ids])}
    return out


def marginals(raw: dict) -> list[list]:
    """Mean full-split accuracy of the trials with and without each new choice."""
    rows = []
    tests = {
        "augment on / off": lambda c: bool(c.get("augment")),
        "lr_schedule cosine / none": lambda c: {"cosine": True, "none": False}.get(c.get("lr_schedule")),
        "lr_schedule plateau / none": lambda c: {"plateau": True, "none": False}.get(c.get("lr_schedule")),
        "label_smoothing >= 0.1 / < 0.1": lambda c: c.get("label_smoothing", 0) >= 0.1,
    }
    for name, split in tests.items():
        on = [t["full_split"] for t in raw["trials"] if split(t["config"]) is True]
        off = [t["full_split"] for t in raw["trials"] if split(t["config"]) is False]
        rows.append([name, f"{len(on)} / {len(off)}",
                     common.fmt(100 * np.mean(on) if on else None), common.fmt(100 * np.mean(off) if off else None)])
    return rows


def report(raw: dict, analysis: dict, args, provenance: str) -> str:
    trials = raw["trials"]
    best_truth = max(t["full_split"] for t in trials)
    rule_rows = [[rule, r["pick"], common.fmt(100 * r["pick_val"]), common.fmt(100 * r["pick_full"]),
                  common.fmt(100 * r["subset_full_mean"], 2), common.fmt(100 * r["subset_regret_mean"], 2),
                  common.fmt(r["spearman"], 2)] for rule, r in analysis.items()]
    refs = ", ".join(f"{name} {100 * value:.1f}" for name, value in sorted(raw["references"].items()))
    return "\n\n".join([
        f"## Best-trial rule: {raw['family']} on {raw['dataset']} ({raw['rows']} rows, "
        f"{raw['length']} samples, {raw['n_classes']} classes)",
        provenance,
        f"{len(trials)} configurations drawn at random from the `{raw['family']}` space (seed {raw['seed']}), "
        f"each trained {raw['epochs']} epochs on the tuning split; every one rerun on the full split "
        f"({raw['folds']} folds x {raw['repeats']} repeats; up to {raw['epochs']} epochs, early stopping "
        f"on an inner validation part). Best full-split accuracy among them: "
        f"{100 * best_truth:.1f}%. References on the same folds: {refs}.",
        "Each rule's pick among all trials, and the mean over "
        f"{args.subsets} random half-size searches drawn from the same trials (accuracy in %; regret = "
        "best full-split accuracy in the subset minus the pick's; Spearman = rank correlation of the "
        "rule's trial scores with the trials' full-split accuracies):",
        common.markdown_table(["rule", "pick", "pick's val score", "pick's full split",
                               "subsets: pick's full split", "subsets: regret", "Spearman"], rule_rows),
        "New search choices, marginal mean full-split accuracy (%) of the trials with / without "
        "(random configurations, so other choices vary too; indicative only):",
        common.markdown_table(["choice", "trials with / without", "with", "without"], marginals(raw)),
    ])


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    with common.LoadSampler() as load_sampler:
        if args.from_raw:
            raw = json.loads(Path(args.from_raw).read_text())
        else:
            raw = measure(args, load(args))
            if args.raw:
                Path(args.raw).parent.mkdir(parents=True, exist_ok=True)
                Path(args.raw).write_text(json.dumps(raw, indent=1, default=str))
    analysis = analyse(raw, args.subsets, args.seed)
    body = report(raw, analysis, args, common.provenance(common.script_command(__file__, argv),
                                                          load_sampler, started))
    print(body)
    name = f"{SECTION}-{raw['family']}-{raw['dataset']}"
    common.write_section(args, name, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
