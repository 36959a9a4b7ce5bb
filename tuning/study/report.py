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


def save_png(fig, path: Path) -> None:
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
    save_png(fig, Path(path))


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
    save_png(fig, Path(path))
