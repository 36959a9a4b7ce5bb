"""Accuracy against the ceiling: full-split accuracy of every tuned family, single- and
multi-task, per dataset, beside scikit-learn references on the same folds and the
reference ceiling of the stand-in data.

* Tuned families: every approach found in ``--results-dir`` (``results/<Approach>/
  Individual Dataset Results/*_full_split_metrics_<DATASET>.csv``: stratified k-fold x
  repeats, 5 x 3 by default), read with ``tuning.study.comparison.load_approaches``.
* References: ``tuning.study.comparison.add_references`` (which calls ``load_or_compute_references``
  and ``reference_rows``, as ``python -m tuning compare`` does): StandardScaler -> PCA(10, whiten) -> RBF SVM, and StandardScaler
  -> LDA, fitted and scored on exactly the folds of the approaches (rebuilt from their Run
  Config, checked against the stored fold assignment), cached in
  ``<--reference-cache>/References/``.
* Ceiling: the oracle's 5-fold stratified CV accuracy from
  ``../shared/standin-data/PROVENANCE.md`` ("Reference accuracies"; the same line is in
  ``data/README.md``): a QDA that knows the simulator's true class means and noise
  covariances. Parsed from the first of those files that exists, else ``CEILING`` below.

Target: the best tuned approach within one point of the ceiling on every dataset. The gap
is (approach mean accuracy) - (ceiling), in percentage points.

Margin over the references (issue 12): per dataset, the tuned approach (network or
ensemble) with the highest mean against every reference on the same folds. Each difference
is tested with the corrected resampled t-test (Nadeau & Bengio 2003: it assumes the fold
differences share one variance and a correlation set by the training/test sizes; two-sided
p). "Above the references" needs the approach above *each* of them (an intersection-union
test: its p is the largest of its per-reference p-values), and because the approach was
picked as the best of K tuned approaches on these same folds, that p is Holm-adjusted over
the K approaches' intersection-union p-values. A second row picks the network by the
validation score its search recorded (as the comparison's exploratory tests do): chosen
without the folds, so its p needs no adjustment. The margin shown is over the reference with
the highest mean, with its corrected 95% interval.

Non-inferiority: where a reference sits within a point of the ceiling, a classifier may not
be shown above it however good (see the room table below); the table then also says whether the pick is shown
not worse than every reference by more than ``NONINFERIORITY_MARGIN`` points: the lower end
of each corrected interval above -1 (one-sided 2.5% per reference; intersection-union over
the references; for the highest-mean pick the intervals are Bonferroni-widened to
1 - 0.05 / K, since it was picked on these folds).

By default this reads an existing results tree. ``--run`` first produces one, from a fresh
clone, with the project's default tunes (``python -m tuning tune FAMILY all`` for every
family in ``--families``: 48 trials x 40 epochs per experiment, then 5 x 3 full-split
reruns). Measured on a 2-CPU machine: a default cnn experiment 3.5-7 min, lstm 8-13 min,
ffn 1-2 min, the multi-task ones much longer (mtl-lstm's export alone 30 min), so the default
families take hours; use a bigger machine or ``--address`` a cluster.

    python -m benchmarks.accuracy                              # reads results/
    python -m benchmarks.accuracy --results-dir /path/to/results
    python -m benchmarks.accuracy --run                        # tunes first (long)
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path


from benchmarks import common

SECTION = "accuracy"
TARGET_GAP = 1.0
ALPHA = 0.05
NONINFERIORITY_MARGIN = 1.0  # points: the ceiling target's tolerance
DEFAULT_FAMILIES = "cnn,ffn,mtl-cnn,mtl-ffn"

CEILING = {"A2": 98.7, "A3": 94.9, "A4": 74.7, "A21": 83.1, "A12": 39.4}
"""Oracle 5-fold stratified CV accuracy (%), from ../shared/standin-data/PROVENANCE.md,
section "Reference accuracies": "5-fold stratified CV accuracy, oracle / PCA+SVM: A2 98.7 /
98.7, A3 94.9 / 94.4, A4 74.7 / 74.3, A21 83.1 / 81.8, A12 39.4 / 37.5". Used only when
neither that file nor data/README.md can be read."""
PROVENANCE_SVM = {"A2": 98.7, "A3": 94.4, "A4": 74.3, "A21": 81.8, "A12": 37.5}
PROVENANCE_CANDIDATES = (common.ROOT.parent / "shared" / "standin-data" / "PROVENANCE.md",
                         common.ROOT / "data" / "README.md")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", default=None, help="results tree to read (default results; --quick: a temporary one)")
    p.add_argument("--reference-cache", default=None,
                   help="where the reference rows are cached (default: the results tree, as `compare` does)")
    p.add_argument("--provenance", default=None, help="PROVENANCE.md with the ceiling (default: found)")
    p.add_argument("--run", action="store_true", help="tune and export the default families first (long)")
    p.add_argument("--families", default=DEFAULT_FAMILIES, help=f"with --run (default {DEFAULT_FAMILIES})")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"), help="with --run")
    p.add_argument("--storage", default=None, help="with --run: Ray storage (default ray_results)")
    p.add_argument("--num-cpus", type=int, default=2, help="with --run: CPUs of the local Ray runtime")
    p.add_argument("--results-md", default=None,
                   help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true",
                   help="--run with 2 trials x 2 epochs, 2 folds x 1 repeat, families cnn (on the first "
                        "dataset only) and mtl-cnn (on all)")
    args = p.parse_args(argv)
    if args.quick:
        args.run = True
        if args.families == DEFAULT_FAMILIES:
            args.families = "cnn,mtl-cnn"
    return args


# ----------------------------------------------------------------------------- ceiling
def read_ceiling(path: str | None) -> tuple[dict, dict, str]:
    """(oracle, PCA+SVM) 5-fold CV accuracies in %, by dataset, and where they came from."""
    candidates = [Path(path)] if path else list(PROVENANCE_CANDIDATES)
    for candidate in candidates:
        try:
            text = candidate.read_text()
        except OSError:
            continue
        start = text.find("5-fold stratified CV accuracy, oracle / PCA+SVM:")
        if start < 0:
            continue
        block = text[start:].split("\n\n", 1)[0]
        found = re.findall(r"(A\d+)\s+([\d.]+)\s*/\s*([\d.]+)", block)
        if found:
            return ({d: float(o) for d, o, _ in found}, {d: float(s) for d, _, s in found},
                    str(candidate.resolve()))
    if path:
        raise SystemExit(f"error: {path}: no '5-fold stratified CV accuracy, oracle / PCA+SVM:' line")
    return dict(CEILING), dict(PROVENANCE_SVM), "embedded copy of ../shared/standin-data/PROVENANCE.md"


# ----------------------------------------------------------------------------- --run
def run_default_tunes(args, results_dir: Path) -> None:
    from tuning import cli

    extra = []
    if args.quick:
        extra = ["--samples", "2", "--max-epochs", "2", "--grace-period", "1", "--folds", "2", "--repeats", "1"]
    storage = args.storage or (str(results_dir.parent / "quick_ray_results") if args.quick else "ray_results")
    first = sorted(Path(args.data_dir).glob("*.csv"))[:1]
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        # --quick: a single-task family on one dataset is enough to exercise the path.
        dataset = first[0].stem if args.quick and first and not family.startswith("mtl-") else "all"
        argv = ["tune", family, dataset, "--data-dir", args.data_dir, "--results-dir", str(results_dir),
                "--storage", storage, "--num-cpus", str(args.num_cpus), *extra]
        print(f"=== python -m tuning {' '.join(argv)}", flush=True)
        code = cli.main(argv)
        if code != 0:
            raise SystemExit(f"error: `python -m tuning {' '.join(argv)}` exited with {code}")


# ----------------------------------------------------------------------------- table
def short_name(approach: str) -> str:
    for prefix, short in (("Classic ", ""), ("Feature Based MTL ", "MTL-"), ("Reference ", "")):
        if approach.startswith(prefix):
            return short + approach[len(prefix):].removesuffix(" PyTorch")
    return approach


def build_tables(rows, ceiling: dict, provenance_svm: dict):
    from tuning.study.comparison import KIND_ORDER, MULTI, REFERENCE
    from tuning.data.readers import natural_key
    from tuning.statistics import mean_ci

    kinds = rows.groupby("approach")["kind"].first()
    approaches = sorted(kinds.index, key=lambda a: (KIND_ORDER[kinds[a]], a))
    tuned = [a for a in approaches if kinds[a] != REFERENCE]
    datasets = sorted(rows["dataset"].unique(), key=natural_key)
    acc_rows, gap_rows, gaps = [], [], {}
    for dataset in datasets:
        here = rows[rows["dataset"] == dataset]
        means, cells = {}, []
        for a in approaches:
            part = here[here["approach"] == a]["accuracy"].astype(float).to_numpy() * 100
            if len(part) == 0:
                cells.append("-")
                continue
            mean, low, high = mean_ci(part)
            means[a] = mean
            cells.append(f"{mean:.1f} ± {(high - low) / 2:.1f}" if len(part) > 1 else f"{mean:.1f}")
        ceil = ceiling.get(dataset)
        tuned_here = {a: means[a] for a in tuned if a in means}
        best = max(tuned_here, key=tuned_here.get) if tuned_here else None
        gap = tuned_here[best] - ceil if best and ceil is not None else None
        if gap is not None:
            gaps[dataset] = gap
        n_folds = int(here.groupby("approach").size().max())
        acc_rows.append([dataset, n_folds, common.fmt(ceil), common.fmt(provenance_svm.get(dataset)), *cells,
                         short_name(best) if best else "-",
                         "n/a" if gap is None else f"{gap:+.1f}",
                         "n/a" if gap is None else ("yes" if gap >= -TARGET_GAP else "no")])
        gap_rows.append([dataset, *[("-" if a not in means or ceil is None else f"{means[a] - ceil:+.1f}")
                                    for a in approaches]])
    header = ["dataset", "folds", "ceiling (oracle, 5-fold CV)", "PROVENANCE PCA+SVM (5-fold CV)",
              *[short_name(a) + (" (multi-task)" if kinds[a] == MULTI else " (same folds)" if kinds[a] == REFERENCE
                                 else "") for a in approaches],
              "best tuned", "gap to ceiling", f"within {TARGET_GAP:g} pt"]
    gap_header = ["dataset", *[short_name(a) for a in approaches]]
    return header, acc_rows, gap_header, gap_rows, gaps


def reference_margins(rows, validation=None, alpha: float = ALPHA) -> list[dict]:
    """Per dataset, one entry per way of picking the tuned approach (``picked_by``): the
    highest mean on these folds (its p Holm-adjusted over the K tuned approaches it was
    picked from) and, given ``validation`` (:func:`tuning.study.tree_rows.load_validation_scores`),
    the best validation score (picked without the folds: no adjustment). Each entry: its
    margin over the references (see the module docstring); datasets without both kinds are
    left out."""
    import numpy as np
    from scipy.stats import norm

    from tuning.study.comparison import ENSEMBLE, REFERENCE, best_by_validation, pair_rows, paired_differences
    from tuning.statistics import paired_test
    from tuning.data.readers import natural_key
    from tuning.statistics import holm

    out = []
    for dataset in sorted(rows["dataset"].unique(), key=natural_key):
        here = rows[rows["dataset"] == dataset]
        by_approach = {a: part for a, part in here.groupby("approach")}
        kinds = {a: part["kind"].iloc[0] for a, part in by_approach.items()}
        refs = [a for a in by_approach if kinds[a] == REFERENCE]
        tuned = [a for a in by_approach if a not in refs]
        if not refs or not tuned:
            continue
        pairs = {(a, r): paired_differences(pair_rows(by_approach[a], by_approach[r])) for a in tuned for r in refs}
        tests = {}  # approach -> [(reference, margin, low, high, p)]
        for a in tuned:
            tests[a] = []
            for r in refs:
                test = paired_test(*pairs[(a, r)])
                tests[a].append((r, test["mean_diff"], test["diff_ci_low"], test["diff_ci_high"], test["p_value"]))
        # Intersection-union: above every reference, or not shown above them at all.
        p_iut = {a: max(t[4] for t in tests[a]) if all(t[1] > 0 for t in tests[a]) else 1.0 for a in tuned}
        holm_p = dict(zip(tuned, holm([p_iut[a] for a in tuned])))
        means = {a: 100.0 * float(by_approach[a]["accuracy"].astype(float).mean()) for a in tuned}
        picks = [("highest mean", max(tuned, key=lambda a: (means[a], a)), holm_p, len(tuned))]
        by_validation = best_by_validation([a for a in tuned if kinds[a] != ENSEMBLE], validation, dataset)
        if by_validation is not None:
            picks.append(("validation score", by_validation, p_iut, 1))
        for picked_by, best, used_p, n_candidates in picks:
            reference, margin, low, high, _ = min(tests[best], key=lambda t: t[1])
            if margin > 0 and used_p[best] < alpha:
                verdict = "above every reference"
            elif high < 0:
                verdict = "below a reference"
            else:
                verdict = "not separated"
            # With J folds the corrected half-width is t * s * sqrt(1/J + n_test/n_train): more repeats
            # shrink only the 1/J term, so z * s * sqrt(n_test/n_train) is the least any number could detect.
            diffs, n_train, n_test = pairs[(best, reference)]
            floor = float(norm.ppf(0.975) * np.std(diffs, ddof=1) * np.sqrt(np.mean(n_test) / np.mean(n_train)))
            if n_candidates == 1:
                worst_low = min(t[2] for t in tests[best])
            else:  # Bonferroni-widened over the candidates it was picked from
                worst_low = min(paired_test(*pairs[(best, r)], confidence=1.0 - 0.05 / n_candidates)["diff_ci_low"]
                                for r in refs)
            out.append({"dataset": dataset, "picked_by": picked_by, "best": best, "best_accuracy": means[best],
                        "reference": reference, "reference_accuracy": means[best] - margin, "margin": margin,
                        "low": low, "high": high, "p": p_iut[best], "p_used": float(used_p[best]),
                        "n_candidates": n_candidates, "verdict": verdict, "n_folds": int(len(by_approach[best])),
                        "worst_low": worst_low, "noninferior": worst_low > -NONINFERIORITY_MARGIN,
                        "floor": floor})
    return out


def margin_table(margins: list[dict]) -> tuple[list[str], list[list]]:
    header = ["dataset", "tuned approach picked by", "approach", "accuracy %", "best reference", "accuracy %",
              "margin, points [corrected 95% CI]", "p (largest over references)",
              "p for the verdict", "verdict",
              f"lowest interval end over references (non-inferior if > -{NONINFERIORITY_MARGIN:g})"]
    body = [[m["dataset"], m["picked_by"], short_name(m["best"]), f"{m['best_accuracy']:.1f}",
             short_name(m["reference"]), f"{m['reference_accuracy']:.1f}",
             f"{m['margin']:+.2f} [{m['low']:+.2f}, {m['high']:+.2f}]", f"{m['p']:.3g}",
             f"{m['p_used']:.3g}" + (f" (Holm, K = {m['n_candidates']})" if m["n_candidates"] > 1 else " (none)"),
             m["verdict"], f"{m['worst_low']:+.2f}: " + ("non-inferior" if m["noninferior"] else "not shown")]
            for m in margins]
    return header, body


def headroom_rows(margins: list[dict], ceiling: dict) -> list[list]:
    """Per dataset (the validation pick where there is one, else the highest mean): the room
    between the best reference and the oracle ceiling, the most any classifier can be above
    it, beside the half-width of the margin's corrected interval, the least a margin must be
    to be told apart from 0 on these folds, and the least it could be with any number of
    repeats of the same k-fold (``floor``). Room below the half-width: a classifier at the
    ceiling, with the picked network's fold-to-fold spread, could not be shown above the
    references here; below the floor, not with more repeats either (the oracle's own spread
    is unknown: it may be smaller)."""
    picked = {}
    for m in margins:
        if m["picked_by"] == "validation score" or m["dataset"] not in picked:
            picked[m["dataset"]] = m
    rows = []
    for dataset, m in picked.items():
        if dataset not in ceiling:
            continue
        room, half = ceiling[dataset] - m["reference_accuracy"], (m["high"] - m["low"]) / 2
        rows.append([dataset, short_name(m["reference"]), f"{m['reference_accuracy']:.1f}", f"{ceiling[dataset]:.1f}",
                     f"{room:+.2f}", f"{half:.2f}", f"{m['floor']:.2f}",
                     "yes" if room > half else "with more repeats" if room > m["floor"] else "no"])
    return rows


HEADROOM_HEADER = ["dataset", "best reference", "accuracy %", "ceiling (oracle) %", "room above it, points",
                   "half-width of the margin's corrected 95% CI, points",
                   "the same with unlimited repeats, points", "a classifier at the ceiling with this spread: shown above it?"]


def margin_summary(margins: list[dict]) -> str:
    """One sentence per way of picking: on how many datasets the pick is above every reference."""
    parts = []
    for picked_by in dict.fromkeys(m["picked_by"] for m in margins):
        these = [m for m in margins if m["picked_by"] == picked_by]
        above = [m["dataset"] for m in these if m["verdict"] == "above every reference"]
        level = [m["dataset"] for m in these if m["noninferior"]]
        parts.append(f"Tuned approach picked by {picked_by}: above every reference (corrected test, alpha {ALPHA:g}) "
                     f"on {len(above)} of {len(these)} datasets" + (f" ({', '.join(above)})" if above else "")
                     + f"; not worse than any by more than {NONINFERIORITY_MARGIN:g} point on {len(level)}"
                     + (f" ({', '.join(level)})." if level else "."))
    return " ".join(parts)


def main(argv=None) -> int:
    args = parse_args(argv)
    started_at = time.time()
    if args.results_dir:
        results_dir = Path(args.results_dir)
    elif args.quick:
        results_dir = Path(tempfile.mkdtemp(prefix="accuracy_quick_")) / "results"
    else:
        results_dir = Path("results")
    ceiling, provenance_svm, ceiling_source = read_ceiling(args.provenance)

    from tuning.study.comparison import add_references, load_approaches
    from tuning.errors import InputError

    with common.LoadSampler() as load:
        if args.run:
            with common.ray_runtime(args.num_cpus):
                run_default_tunes(args, results_dir)
        try:
            rows = load_approaches(results_dir, include_references=False)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if rows.empty:
            print(f"error: {results_dir}: no exported results (Individual Dataset Results); "
                  "export some, or pass --run", file=sys.stderr)
            return 2
        rows, notes = add_references(Path(args.reference_cache or results_dir), rows, log=print)

    header, acc_rows, gap_header, gap_rows, gaps = build_tables(rows, ceiling, provenance_svm)
    acc_md = common.markdown_table(header, acc_rows)
    gap_md = common.markdown_table(gap_header, gap_rows)
    from tuning.study.tree_rows import load_validation_scores

    margins = reference_margins(rows, load_validation_scores(results_dir))
    margin_md = common.markdown_table(*margin_table(margins)) if margins else "No references to compare with."
    margin_verdict = margin_summary(margins)
    headroom = headroom_rows(margins, ceiling)
    headroom_md = common.markdown_table(HEADROOM_HEADER, headroom) if headroom else ""
    missing = [d for d in ceiling if d not in set(rows["dataset"])]
    if gaps:
        ok = all(g >= -TARGET_GAP for g in gaps.values())
        verdict = (("**Target met**" if ok and not missing else "**Target not met**" if not ok
                    else "**Target met so far**")
                   + f" (best tuned approach within {TARGET_GAP:g} point of the ceiling): gaps "
                   + ", ".join(f"{d} {g:+.1f}" for d, g in gaps.items())
                   + (f"; no results yet for {', '.join(missing)}" if missing else "") + ".")
    else:
        verdict = "No dataset with a known ceiling in these results."
    print()
    print(acc_md)
    print()
    print(gap_md)
    print()
    print(margin_md)
    print()
    print(headroom_md)
    print()
    print(verdict)
    print(margin_verdict)
    for note in notes:
        print(f"note: {note}")
    body = "\n".join([
        "## Accuracy against the ceiling (`benchmarks/accuracy.py`)", "",
        common.provenance(common.script_command(__file__, argv), load, started_at),
        f"- Results tree: `{results_dir.resolve()}`; ceiling from {ceiling_source}", "",
        verdict, "",
        "Full-split accuracy, % (mean ± half-width of the 95% t-interval over the folds; the references "
        "are fitted and scored on the same folds):", "",
        acc_md, "",
        "Gap to the ceiling, points (approach mean - oracle 5-fold CV accuracy):", "",
        gap_md, "",
        margin_verdict, "",
        "Margin of the best tuned approach over the references on the same folds (the test and its "
        "correction: module docstring of `benchmarks/accuracy.py`):", "",
        margin_md, "",
        *(["Room between the best reference and the ceiling, beside the least margin these folds can "
           "detect with the picked network's fold-to-fold spread (an oracle's own spread may be smaller):", "",
           headroom_md, ""] if headroom_md else []),
        *[f"- note: {n}" for n in notes],
    ])
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
