"""Does averaging the top-k configurations' probabilities beat the single best one?

Archived, settled: RESULTS.md sections ``ensemble-ffn-A12`` and ``ensemble-ffn-A12r64``
(written at commit e3a4552): +0.7 and +0.8 points, not separated from the best one alone.
``git show COMMIT:benchmarks/ensemble.py`` is the script as it ran then; this copy still runs
(``python -m benchmarks.archive.ensemble``) and is tested only with ``pytest --archive``.

Takes the ``--k`` best configurations of a ``benchmarks/archive/selection.py --raw`` file (ranked by
``tuning.search.best_trial``'s default rule), trains each on every full-split fold of that file
(``tuning.export.ensemble``: same rows, seed and early stopping as the export's reruns) and scores
the best one alone and the average of all k probabilities on the same test rows. Paired by
fold; the raw file's PCA+SVM figure is on the same folds.

    python -m benchmarks.archive.ensemble --raw benchmarks/out/selection-ffn-A12.json --k 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


from benchmarks import common
from benchmarks.archive.selection import read_raw_search

SECTION = "ensemble"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raw", required=True, help="a benchmarks/archive/selection.py --raw file")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--folds", type=int, default=None, help="default: the raw file's")
    p.add_argument("--repeats", type=int, default=None, help="default: the raw file's")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results-md", default=None)
    p.add_argument("--quick", action="store_true", help="prints only (unless --results-md)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    import torch

    from tuning.export.ensemble import fit_members, score_members
    from tuning.export.exporter import INNER_VAL_FRACTION, rerun_patience
    from tuning.export.references import reference_rows
    from tuning.data.splits import cv_folds
    from tuning.statistics import corrected_resampled_ttest
    from tuning.training import TaskData

    args = parse_args(argv)
    search = read_raw_search(args.raw, args.data_dir, folds=args.folds, repeats=args.repeats)  # the search's seed
    raw, dataset, ranked, configs, jobs = search.raw, search.dataset, search.ranked, search.configs, search.jobs
    folds, repeats = search.folds, search.repeats
    members = [p.trial_id for p in ranked[:args.k]]
    torch.set_num_threads(args.threads)
    started = time.time()
    single, ensemble, sizes = [], [], []
    with common.LoadSampler() as load_sampler:
        for job in jobs:
            tasks = [TaskData.from_rows(dataset, job.train[0], job.val[0])]
            fitted = fit_members(raw["family"], [configs[t] for t in members], tasks, max_epochs=raw["epochs"],
                                 seed=job.seed, patience=rerun_patience(raw["epochs"]))
            scores = score_members(fitted, dataset, job.test[0])
            sizes.append((len(job.train[0]) + len(job.val[0]), len(job.test[0])))
            single.append(scores["single"]["accuracy"])
            ensemble.append(scores["ensemble"]["accuracy"])
            print(f"repeat {job.repeat} fold {job.fold}: single {100 * single[-1]:.1f}, "
                  f"ensemble {100 * ensemble[-1]:.1f}", flush=True)
    diffs = np.array(ensemble) - np.array(single)
    fold_list = cv_folds(dataset.y, folds, repeats, raw["seed"], INNER_VAL_FRACTION)
    ref_rows = reference_rows(dataset.X, dataset.y, dataset.n_classes, fold_list, dataset.name)
    refs = ", ".join(f"{n} {100 * g['accuracy'].mean():.1f}" for n, g in ref_rows.groupby("approach"))
    n_train, n_test = (float(np.mean(v)) for v in zip(*sizes))
    svm = ref_rows[ref_rows["approach"].str.contains("SVM")].sort_values(["repeat", "fold"])["accuracy"].to_numpy()

    def test(d) -> str:
        if len(d) < 2:
            return "n/a (one fold)"
        t, p = corrected_resampled_ttest(d, n_train, n_test)
        return f"corrected resampled t = {t:.2f}, p = {p:.3f}"

    body = "\n\n".join([
        f"## Ensemble of the top {len(members)}: {raw['family']} on {raw['dataset']}",
        common.provenance(common.script_command(__file__, argv), load_sampler, started),
        f"Members: trials {', '.join(members)} of `{Path(args.raw).name}` (default selection rule), each trained "
        f"on every fold ({folds} folds x {repeats} repeats, up to {raw['epochs']} epochs, early "
        f"stopping on the inner validation part); their softmax probabilities averaged. References on the "
        f"same folds: {refs}.",
        common.markdown_table(
            ["approach", "full-split accuracy %", "per fold"],
            [[f"best configuration ({members[0]})", common.fmt(100 * float(np.mean(single))),
              " ".join(f"{100 * v:.1f}" for v in single)],
             [f"ensemble of {len(members)}", common.fmt(100 * float(np.mean(ensemble))),
              " ".join(f"{100 * v:.1f}" for v in ensemble)]]),
        f"Ensemble - single: mean {100 * diffs.mean():+.2f} points, better on {int((diffs > 0).sum())} of "
        f"{len(diffs)} folds, worse on {int((diffs < 0).sum())} ({test(diffs)}). "
        f"Ensemble - PCA+SVM: {100 * float(np.mean(np.array(ensemble) - svm)):+.2f} points "
        f"({test(np.array(ensemble) - svm)}).",
    ])
    print(body)
    common.write_section(args, f"{SECTION}-{raw['family']}-{raw['dataset']}", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
