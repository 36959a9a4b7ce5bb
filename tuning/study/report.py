"""What the comparison shows a person: markdown tables, the answer in words, and the plots.

Inputs are the tables of :func:`tuning.study.comparison.compare` (``summary``: scores as
fractions; ``tests``: differences in percentage points) and an approach order; outputs
are text, or PNG files written to a temporary name and renamed into place.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from tuning import atomic
from tuning.data.readers import natural_key

PRIMARY, EXPLORATORY = "primary", "exploratory"
_COLOURS = {"single-task": "tab:blue", "multi-task": "tab:orange", "ensemble": "tab:green", "reference": "tab:gray"}

WHY_BOTH = ("Two numbers per approach: the **full-split** mean (k-fold x repeats over every row, with an "
            "interval widened for the folds' correlation) uses all the data but its folds also contain the "
            "rows the configuration was tuned on, so it is slightly optimistic for tuned networks; the "
            "**one-split** test score comes from the tuning split's held-out test rows, which no trial ever "
            "saw, so it is unbiased but rests on one small test set. Agreement between them is the check.")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value, digits: int = 1) -> str:
    return "—" if _missing(value) else f"{100 * value:.{digits}f}"


def p_text(p) -> str:
    if _missing(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def prob(p) -> str:
    return "n/a" if _missing(p) else f"{p:.2f}"


def summary_table(summary: pd.DataFrame, order: list[str], score: str = "accuracy") -> list[str]:
    """Wide table: one row per dataset, per approach 'full-split mean [corrected CI] · one-split'."""
    lines = ["| dataset | " + " | ".join(order) + " |", "|---|" + "---|" * len(order)]
    for dataset in sorted(summary["dataset"].unique(), key=natural_key):
        here = summary[summary["dataset"] == dataset].set_index("approach")
        cells = []
        for a in order:
            if a not in here.index:
                cells.append("—")
                continue
            r = here.loc[a]
            cell = f"{pct(r[f'{score}_mean'])} [{pct(r[f'{score}_ci_low'])}, {pct(r[f'{score}_ci_high'])}]"
            one = r.get(f"one_split_{score}")
            cells.append(cell + f" · {pct(one)}" if not _missing(one) else cell + " · —")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return lines


def tests_table(tests: pd.DataFrame) -> list[str]:
    lines = ["| dataset | multi-task | vs | difference, points [95% CI] | p | p (Holm) | P(better) | "
             "P(equivalent) | P(worse) | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in tests.iterrows():
        lines.append(
            f"| {r['dataset']} | {r['approach']} | {r['vs_approach']} | {r['mean_diff']:+.2f} "
            f"[{r['diff_ci_low']:+.2f}, {r['diff_ci_high']:+.2f}] | {p_text(r['p_value'])} | "
            f"{p_text(r['p_adjusted'])} | {prob(r['p_better'])} | {prob(r['p_equivalent'])} | "
            f"{prob(r['p_worse'])} | **{r['verdict']}** |")
    return lines


def answer_lines(tests: pd.DataFrame, rope: float, threshold: float) -> list[str]:
    """The answer in words, from the primary accuracy tests."""
    primary = tests[(tests["comparison"] == PRIMARY) & (tests["score"] == "accuracy")]
    if primary.empty:
        return ["No dataset has both a multi-task approach and the single-task approach with the same trunk "
                "yet; nothing was tested."]
    counts = primary["verdict"].value_counts()
    n = len(primary)
    parts = [f"{counts[v]} {v}" for v in ("better", "practically equivalent", "no detectable difference", "worse")
             if v in counts]
    lines = [f"Across the {n} primary comparisons (each multi-task family against the single-task family with "
             f"the same trunk, per dataset, Holm-adjusted): " + ", ".join(parts) + "."]
    better = primary[primary["verdict"] == "better"]
    worse = primary[primary["verdict"] == "worse"]
    if len(better) == 0 and len(worse) == 0:
        if counts.get("practically equivalent", 0) == n:
            lines.append(f"Multi-task learning neither helps nor hurts here: every pair is within +-{rope:g} "
                         f"accuracy points with posterior probability >= {threshold:g}.")
        else:
            lines.append("No multi-task family is detectably better or worse than its single-task twin on any "
                         "dataset; where the verdict is \"no detectable difference\" the data cannot rule out a "
                         f"difference larger than {rope:g} point(s).")
    for _, r in pd.concat([better, worse]).iterrows():
        lines.append(f"{r['approach']} is **{r['verdict']}** than {r['vs_approach']} on {r['dataset']} "
                     f"({r['mean_diff']:+.2f} points, Holm-adjusted p = {p_text(r['p_adjusted'])}).")
    return lines


def method_lines(alpha: float, rope: float, threshold: float, confidence: float = 0.95) -> list[str]:
    return [
        "- **Pairing.** Every approach is scored on the same stratified k-fold x repeats folds (fold "
        "assignment is a pure function of the labels and the seed); differences are taken fold by fold.",
        "- **Primary comparisons, fixed in advance:** each multi-task family against the single-task family "
        "with the same trunk (MTL-FFN vs FFN, MTL-CNN vs CNN, MTL-LSTM vs LSTM), per dataset, on accuracy. "
        "**Exploratory:** each multi-task family against the best single-task family, chosen by the "
        "validation score its search recorded (never by the folds under test), and any other metric.",
        "- **Test:** corrected resampled t-test (Nadeau & Bengio 2003): the variance of the mean "
        "difference is inflated by n_test/n_train because the folds' training sets overlap; a plain "
        "paired t-test over folds would call noise significant far too often.",
        f"- **Multiplicity:** Holm's step-down adjustment over every primary test of the run (exploratory "
        f"tests are adjusted within their own family). Verdicts use the adjusted p at alpha = {alpha:g}.",
        f"- **Equivalence:** Bayesian correlated t-test (Corani & Benavoli 2015; Benavoli et al., JMLR 2017): "
        f"a Student-t posterior of the mean difference with the same correlation, rho = n_test/(n_test+n_train). "
        f"P(better), P(equivalent), P(worse) are its mass above +{rope:g}, within +-{rope:g} (the region of "
        f"practical equivalence, `--rope`) and below -{rope:g} points.",
        f"- **Verdict:** \"practically equivalent\" when P(equivalent) >= {threshold:g}; else \"better\"/"
        f"\"worse\" when the Holm-adjusted p < {alpha:g}; else \"no detectable difference\" (not evidence "
        "of equivalence).",
        f"- **Intervals:** each approach's full-split mean has a {100 * confidence:g}% interval corrected the "
        "same way, mean +- t * sqrt(s^2 (1/J + n_test/n_train)) over its J folds.",
        "- " + WHY_BOTH,
    ]


def render_markdown(summary: pd.DataFrame, tests: pd.DataFrame, order: list[str], *, metric: str = "accuracy",
                    alpha: float, rope: float, threshold: float, notes: list[str] | None = None) -> str:
    """``comparison.md``: the answer, the score tables, the tests, the method, notes."""
    out = ["# Does multi-task learning help? Per-dataset comparison", "",
           *answer_lines(tests, rope, threshold), "",
           "## Accuracy, %", "",
           "Per approach: full-split mean [95% interval corrected for fold correlation] · one-split test score.",
           "", *summary_table(summary, order, "accuracy"), "", WHY_BOTH, ""]
    if metric != "accuracy":
        out += [f"## {metric}, %", "", *summary_table(summary, order, metric), ""]
    for comparison, title in ((PRIMARY, "Primary: multi-task vs the single-task family with the same trunk"),
                              (EXPLORATORY, "Exploratory: multi-task vs the best single-task family "
                                            "(chosen by validation score)")):
        for score in dict.fromkeys(tests["score"]) if len(tests) else ["accuracy"]:
            part = tests[(tests["comparison"] == comparison) & (tests["score"] == score)]
            if part.empty:
                continue
            out += [f"## {title}: {score}", "", *tests_table(part), ""]
    out += ["## How it was computed", "", *method_lines(alpha, rope, threshold),
            "- Reference rows (scikit-learn, same folds, fitted on train + inner validation): "
            "PCA+SVM = StandardScaler -> PCA(10, whiten) -> RBF SVC; LDA = StandardScaler -> LDA."]
    if notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"


def _save(fig, path: Path) -> None:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def plot_comparison(summary: pd.DataFrame, order: list[str], path) -> None:
    """One panel per dataset: each approach's full-split accuracy (%) with its corrected 95%
    interval, coloured by kind, and its one-split test score as an open marker."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    datasets = sorted(summary["dataset"].unique(), key=natural_key)
    heights = [max(1.6, 0.35 * (summary["dataset"] == d).sum() + 0.9) for d in datasets]
    fig = Figure(figsize=(8, sum(heights) + 0.3 * len(datasets)))
    axes = fig.subplots(len(datasets), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, dataset in zip(axes, datasets):
        here = summary[summary["dataset"] == dataset].set_index("approach")
        shown = [a for a in order if a in here.index][::-1]
        for i, approach in enumerate(shown):
            r = here.loc[approach]
            m = 100 * r["accuracy_mean"]
            err = [[m - 100 * r["accuracy_ci_low"]], [100 * r["accuracy_ci_high"] - m]]
            ax.errorbar([m], [i], xerr=err, fmt="o", color=_COLOURS.get(r["kind"], "k"), capsize=3)
            one = r.get("one_split_accuracy")
            if not _missing(one):
                ax.plot([100 * one], [i], marker="D", mfc="none", color=_COLOURS.get(r["kind"], "k"), ms=5)
        ax.set_yticks(range(len(shown)), shown, fontsize=7)
        ax.set_ylim(-0.6, len(shown) - 0.4)
        ax.set_title(dataset, fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("accuracy, %: full-split mean and corrected 95% interval (dots), one-split test (diamonds);"
                        "\nblue single-task, orange multi-task, green ensemble, grey reference", fontsize=8)
    fig.tight_layout()
    _save(fig, Path(path))


def plot_confusion_matrices(matrices: dict, datasets: list[str], approaches: list[str], path) -> None:
    """Grid datasets x approaches of row-normalised confusion matrices (diagonal = per-class
    recall). ``matrices`` maps ``(approach, dataset)`` to a count matrix or None (no file)."""
    from matplotlib.figure import Figure

    datasets, approaches = datasets or ["(none)"], approaches or ["(none)"]
    fig = Figure(figsize=(2.3 * len(approaches) + 0.8, 2.2 * len(datasets) + 0.6))
    axes = fig.subplots(len(datasets), len(approaches), squeeze=False)
    image = None
    for i, dataset in enumerate(datasets):
        for j, approach in enumerate(approaches):
            ax = axes[i, j]
            has_rows = (approach, dataset) in matrices
            matrix = matrices.get((approach, dataset))
            if i == 0:
                ax.set_title(approach, fontsize=7)
            if matrix is None:
                ax.axis("off")
                why = "no confusion matrix file" if has_rows else "no results yet"
                ax.text(0.5, 0.5, f"{dataset}\n{why}", ha="center", va="center", fontsize=7,
                        transform=ax.transAxes)
                continue
            k = matrix.shape[0]
            norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
            image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
            if k <= 6:
                for a in range(k):
                    for b in range(k):
                        ax.text(b, a, f"{100 * norm[a, b]:.0f}", ha="center", va="center", fontsize=6,
                                color="white" if norm[a, b] > 0.6 else "black")
            ax.set_xticks(range(k))
            ax.set_yticks(range(k))
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel(f"{dataset}\ntrue class", fontsize=7)
            if i == len(datasets) - 1:
                ax.set_xlabel("predicted", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, label="fraction of true class")
    else:
        fig.suptitle("no confusion matrices exported yet", fontsize=9)
    _save(fig, Path(path))


def curve_table(points: pd.DataFrame, tests: pd.DataFrame) -> list[str]:
    """One row per (dataset, fraction): each side's accuracy and the paired verdict."""
    lines = ["| dataset | training fraction | training spikes | single-task | multi-task | difference, points "
             "[95% CI] | p (Holm) | P(equivalent) | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    by = points.set_index(["dataset", "approach", "fraction"])
    for _, r in tests.iterrows():
        def cell(approach):
            key = (r["dataset"], approach, r["fraction"])
            if key not in by.index:
                return "—"
            p = by.loc[key]
            return f"{pct(p['accuracy_mean'])} [{pct(p['accuracy_ci_low'])}, {pct(p['accuracy_ci_high'])}] ({approach})"
        lines.append(f"| {r['dataset']} | {100 * r['fraction']:g}% | {r['training_spikes']:.0f} | "
                     f"{cell(r['vs_approach'])} | {cell(r['approach'])} | {r['mean_diff']:+.2f} "
                     f"[{r['diff_ci_low']:+.2f}, {r['diff_ci_high']:+.2f}] | {p_text(r['p_adjusted'])} | "
                     f"{prob(r['p_equivalent'])} | **{r['verdict']}** |")
    return lines


def curve_answer(tests: pd.DataFrame) -> str:
    """Where on the learning curve (if anywhere) multi-task learning helped."""
    if tests.empty:
        return "No learning curves were computed."
    helped = tests[tests["verdict"] == "better"]
    hurt = tests[tests["verdict"] == "worse"]
    if helped.empty and hurt.empty:
        return ("At no training size did the multi-task network beat or trail the single-task one detectably "
                "(Holm-adjusted over every curve point).")
    parts = []
    for label, part in (("helped", helped), ("hurt", hurt)):
        if len(part):
            parts.append(f"multi-task learning {label} at " + ", ".join(
                f"{r['dataset']} {100 * r['fraction']:g}% ({r['mean_diff']:+.1f} points)" for _, r in part.iterrows()))
    return "On the learning curves, " + "; ".join(parts) + " (Holm-adjusted over every curve point)."


def plot_learning_curves(points: pd.DataFrame, tests: pd.DataFrame, path) -> None:
    """One panel per dataset: accuracy (%) against training spikes (log scale), each chosen
    approach with its corrected 95% interval, and the paired verdict at each size."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    datasets = sorted(points["dataset"].unique(), key=natural_key) or ["(none)"]
    cols = min(3, len(datasets))
    nrows = int(math.ceil(len(datasets) / cols))
    fig = Figure(figsize=(4.2 * cols, 3.3 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax in axes[len(datasets):]:
        ax.axis("off")
    short = {"practically equivalent": "≈", "no detectable difference": "?", "better": "MTL+", "worse": "MTL−"}
    for ax, dataset in zip(axes, datasets):
        here = points[points["dataset"] == dataset]
        for approach, part in here.groupby("approach", sort=True):
            part = part.sort_values("fraction")
            x = part["training_spikes"].to_numpy()
            m = 100 * part["accuracy_mean"].to_numpy()
            err = [m - 100 * part["accuracy_ci_low"].to_numpy(), 100 * part["accuracy_ci_high"].to_numpy() - m]
            ax.errorbar(x, m, yerr=err, marker="o", capsize=3, color=_COLOURS.get(part["kind"].iloc[0], "k"),
                        label=approach)
        for _, r in tests[tests["dataset"] == dataset].iterrows():
            top = 100 * here[here["fraction"] == r["fraction"]]["accuracy_ci_high"].max()
            ax.annotate(short.get(r["verdict"], r["verdict"]), (r["training_spikes"], top), fontsize=7,
                        ha="center", va="bottom", textcoords="offset points", xytext=(0, 3))
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())  # 100, not 10^2
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(dataset, fontsize=9, loc="left")
        ax.set_xlabel("training spikes per fold (train + inner validation)", fontsize=7)
        ax.set_ylabel("accuracy, %", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle("Learning curves: mean and corrected 95% interval over folds; verdict of MTL vs single-task "
                 "(≈ practically equivalent, ? no detectable difference)", fontsize=8)
    fig.tight_layout()
    _save(fig, Path(path))


CURVE_METHOD = (
    "- **Learning curves:** per dataset, the single-task configuration with the best validation score and "
    "the multi-task configuration with the best validation score on that dataset's head were retrained on "
    "fractions of each training fold (listed under \"What was run\"; the same folds and scored rows; training "
    "and inner validation rows each subsampled per class, nested: the 10% rows lie inside the 25% rows). The 100% "
    "point is the exported full-split run. At each size the paired test and the Bayesian test are made as "
    "above; Holm runs over every curve point. These tests are exploratory.")


def render_study_report(comparison: dict, points: pd.DataFrame, curve_tests: pd.DataFrame, *, experiments: list[str],
                        settings_lines: list[str], alpha: float, rope: float, threshold: float,
                        notes: list[str], across: tuple | None = None) -> str:
    """``results/report.md``: the answer, then the tables and the plots, then the method.

    ``comparison`` is what :func:`tuning.study.comparison.run_comparison` returned; ``experiments``
    markdown table lines of what the study ran or reused; ``settings_lines`` bullet lines.
    """
    summary, tests, order = comparison["summary"], comparison["tests"], comparison["order"]
    first = answer_lines(tests, rope, threshold)
    if across is not None and len(across[0]):  # the search is part of the procedure: that answer first
        first = [*across_answer(across), "In the first search alone (the tables down to \"Across independent "
                 "searches\" are from it): " + first[0][:1].lower() + first[0][1:], *first[1:]]
    out = ["# Does multi-task learning help? Study report", "", "## Answer", "",
           *first, "", curve_answer(curve_tests), "",
           "## Accuracy of every approach, %", "",
           "Per approach: full-split mean [95% interval corrected for fold correlation] · one-split test score.",
           "", *summary_table(summary, order, "accuracy"), "", WHY_BOTH, "", "![accuracy per approach](comparison.png)",
           ""]
    for comparison_kind, title in ((PRIMARY, "Primary tests: multi-task vs the single-task family with the same trunk"),
                                   (EXPLORATORY, "Exploratory: multi-task vs the best single-task family by "
                                                 "validation score")):
        part = tests[(tests["comparison"] == comparison_kind) & (tests["score"] == "accuracy")]
        if len(part):
            out += [f"## {title}", "", *tests_table(part), ""]
    if across is not None and len(across[0]):
        out += ["## Across independent searches (`--search-repeats`)", "", *across_lines(*across), ""]
    out += ["## Learning curves", ""]
    if len(curve_tests):
        out += [*curve_table(points, curve_tests), "", "![learning curves](learning_curves.png)", ""]
    else:
        out += ["No learning curves (no dataset had both a single-task and a multi-task result).", ""]
    out += ["## Confusion matrices", "", "![confusion matrices](confusion_matrices.png)", "",
            "## What was run", "", *experiments, "", *settings_lines, "",
            "## How it was computed", "", *method_lines(alpha, rope, threshold), CURVE_METHOD]
    if notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"


def across_lines(diffs: pd.DataFrame, spread: pd.DataFrame) -> list[str]:
    """The primary pairs over independent searches, and each approach's spread across searches."""
    if diffs.empty:
        return []
    n = int(diffs["n_searches"].max())
    out = [f"Each search was run {n} times with independent seeds (its own search, split and folds). Per primary "
           "pair: the mean over searches of the full-split difference, its standard deviation across searches, a "
           "95% t-interval over the search-level differences (it includes the search-to-search variance; it "
           "assumes only that the searches are independent and their differences roughly normal), the t-test of "
           "no difference over the same values, Holm-adjusted over the pairs, the verdict over searches "
           "(\"practically equivalent\" when two one-sided tests put the difference inside the ROPE), and in how "
           "many single searches each verdict came out.", "",
           "| dataset | multi-task | vs | mean difference, points [95% CI over searches] | sd across searches | "
           "p (Holm) | verdict over searches | single searches: better | practically equivalent | "
           "no detectable difference | worse |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in diffs.iterrows():
        ci = "" if _missing(r["ci_low"]) else f" [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        sd = "n/a" if _missing(r["sd_diff"]) else f"{r['sd_diff']:.2f}"
        p_adj = "n/a" if _missing(r["p_adjusted"]) else f"{r['p_adjusted']:.3f}"
        out.append(f"| {r['dataset']} | {r['approach']} | {r['vs_approach']} | {r['mean_diff']:+.2f}{ci} | {sd} | "
                   f"{p_adj} | **{r['verdict']}** | "
                   f"{r['n_better']}/{r['n_searches']} | {r['n_practically_equivalent']}/{r['n_searches']} | "
                   f"{r['n_no_detectable_difference']}/{r['n_searches']} | {r['n_worse']}/{r['n_searches']} |")
    out += ["", "Full-split accuracy of each approach across searches, %: mean, sd, min-max.", "",
            "| dataset | approach | mean | sd | min-max |", "|---|---|---|---|---|"]
    for _, r in spread.iterrows():
        sd = "n/a" if _missing(r["accuracy_sd"]) else f"{100 * r['accuracy_sd']:.2f}"
        out.append(f"| {r['dataset']} | {r['approach']} | {pct(r['accuracy_mean'])} | {sd} | "
                   f"{pct(r['accuracy_min'])}-{pct(r['accuracy_max'])} |")
    return out


def across_answer(across: tuple | None) -> list[str]:
    """One sentence: how stable the primary verdicts were over independent searches."""
    if across is None or across[0].empty:
        return []
    diffs = across[0]
    n = int(diffs["n_searches"].max())
    verdicts = ("better", "practically equivalent", "no detectable difference", "worse")
    stable = sum(1 for _, r in diffs.iterrows() if max(r[f"n_{v.replace(' ', '_')}"] for v in verdicts) == n)
    counts = diffs["verdict"].value_counts()
    tally = ", ".join(f"{int(counts[v])} {v}" for v in verdicts if v in counts)
    several = diffs["approach"].nunique() > 1
    pairs = []
    for _, r in diffs.iterrows():
        name = f"{r['approach']} {r['dataset']}" if several else str(r["dataset"])
        interval = "" if _missing(r["ci_low"]) else f" [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"
        pairs.append(f"{name} {r['mean_diff']:+.1f}{interval}")
    pairs = "; ".join(pairs)
    return [f"Every search was run {n} times with independent seeds, and the answer counts the search as part of "
            f"what is compared. Over the {n} searches, the {len(diffs)} primary comparisons (each multi-task family "
            f"against the single-task family with the same trunk, per dataset, Holm-adjusted) came out: {tally}. "
            f"Mean difference multi-task minus single-task, points [95% interval over searches]: {pairs}.", "",
            f"In {stable} of the {len(diffs)} pairs every single search gave the same verdict (the table \"Across "
            "independent searches\" has the counts and each approach's spread across searches).", ""]
