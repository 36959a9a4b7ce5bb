"""What ``compare`` shows a person: the markdown table with its verdicts, and the plots.

Inputs are :func:`tuning.compare.compare`'s table (scores as fractions, differences in
percentage points) and :func:`tuning.compare.load_approaches`' rows; outputs are written
to a temporary name and renamed into place.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from tuning import atomic
from tuning.compare import METRICS_MARK, MULTI, NO_DIFFERENCE, REFERENCE, SINGLE, _ordered_approaches
from tuning.results_tree import natural_key


def _pct(mean: float, low: float, high: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    return f"{100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _score_table(table: pd.DataFrame, score: str) -> list[str]:
    approaches = _ordered_approaches(table)
    label = {a: a for a in approaches}
    lines = ["| dataset | " + " | ".join(label[a] for a in approaches) + " |",
             "|---|" + "---|" * len(approaches)]
    for dataset in sorted(table["dataset"].unique(), key=natural_key):
        here = table[table["dataset"] == dataset].set_index("approach")
        cells = []
        for a in approaches:
            if a in here.index:
                r = here.loc[a]
                cells.append(_pct(r[f"{score}_mean"], r[f"{score}_ci_low"], r[f"{score}_ci_high"]))
            else:
                cells.append("—")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return lines


def _sentences(table: pd.DataFrame, score: str, prefix: str) -> list[str]:
    lines = []
    tested = table[table[f"{prefix}verdict"].notna()]
    for _, r in tested.iterrows():
        diff, verdict = r[f"{prefix}mean_diff"], r[f"{prefix}verdict"]
        n = int(r["n_folds"])
        stats = f"{diff:+.2f} {score} points, {_p(r[f'{prefix}p_value'])}, {n} paired folds"
        if verdict == NO_DIFFERENCE:
            lines.append(f"- **{r['dataset']}**: no detectable difference between {r['approach']} and the best "
                         f"single-task approach, {r[f'{prefix}vs_approach']} ({stats}).")
        else:
            lines.append(f"- **{r['dataset']}**: {r['approach']} is **{verdict}** than the best single-task "
                         f"approach, {r[f'{prefix}vs_approach']} ({stats}).")
    if not lines:
        lines.append("- No dataset has both single-task and multi-task results yet; nothing was tested.")
    return lines


def render_markdown(table: pd.DataFrame, metric: str = "accuracy", alpha: float = 0.05,
                    notes: list[str] | None = None) -> str:
    """``comparison.md``: score tables in percent (mean [95% CI]), verdicts, and notes."""
    out = ["# Does multi-task learning help? Per-dataset comparison", "",
           "Accuracy over cross-validation folds, in percent: mean [95% CI] (t-interval over folds).", "",
           *_score_table(table, "accuracy"), ""]
    if metric != "accuracy":
        out += [f"{metric} in percent: mean [95% CI].", "", *_score_table(table, metric), ""]
    out += ["## Multi-task vs best single-task: accuracy", "", *_sentences(table, "accuracy", ""), ""]
    if metric != "accuracy":
        out += [f"## Multi-task vs best single-task: {metric}", "", *_sentences(table, metric, "metric_"), ""]
    out += ["## Notes", "",
            "- Test: corrected resampled t-test (Nadeau & Bengio 2003) on the per-fold differences "
            "(multi-task minus the single-task approach with the highest mean score on that dataset), "
            "paired by (repeat, fold); the variance is inflated by n_test/n_train because the folds' "
            f"training sets overlap. Verdict \"better\"/\"worse\" when p < {alpha:g}, else \"no detectable "
            "difference\". Differences are in percentage points.",
            "- The best single-task approach is picked on the same folds it is tested on, which favours it "
            "slightly: a \"better\" for multi-task is conservative.",
            "- Reference rows (scikit-learn, same folds, fitted on train + inner validation): "
            "PCA+SVM = StandardScaler -> PCA(10, whiten) -> RBF SVC; LDA = StandardScaler -> LDA."]
    out += [f"- {n}" for n in (notes or [])]
    return "\n".join(out) + "\n"


_COLOURS = {SINGLE: "tab:blue", MULTI: "tab:orange", REFERENCE: "tab:gray"}


def _save(fig, path: Path) -> None:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def plot_comparison(table: pd.DataFrame, path) -> None:
    """One panel per dataset: each approach's mean accuracy (%) with its 95% CI as error
    bar, coloured by kind; the best reference's mean as a dashed line."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    datasets = sorted(table["dataset"].unique(), key=natural_key)
    heights = [max(1.6, 0.35 * (table["dataset"] == d).sum() + 0.9) for d in datasets]
    fig = Figure(figsize=(8, sum(heights) + 0.3 * len(datasets)))
    axes = fig.subplots(len(datasets), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, dataset in zip(axes, datasets):
        here = table[table["dataset"] == dataset]
        order = [a for a in _ordered_approaches(here)][::-1]
        for i, approach in enumerate(order):
            r = here[here["approach"] == approach].iloc[0]
            m = 100 * r["accuracy_mean"]
            err = [[m - 100 * r["accuracy_ci_low"]], [100 * r["accuracy_ci_high"] - m]]
            ax.errorbar([m], [i], xerr=err, fmt="o", color=_COLOURS[r["kind"]], capsize=3)
        refs = here[here["kind"] == REFERENCE]
        if len(refs):
            ax.axvline(100 * refs["accuracy_mean"].max(), color="gray", ls="--", lw=1, label="best reference")
            ax.legend(loc="lower left", fontsize=7)
        ax.set_yticks(range(len(order)), order, fontsize=7)
        ax.set_ylim(-0.6, len(order) - 0.4)
        ax.set_title(dataset, fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("accuracy, % (mean and 95% CI over folds; blue single-task, orange multi-task, grey reference)",
                        fontsize=8)
    fig.tight_layout()
    _save(fig, Path(path))


def _confusion(rows: pd.DataFrame, approach: str, dataset: str) -> np.ndarray | None:
    part = rows[(rows["approach"] == approach) & (rows["dataset"] == dataset)]
    if part.empty:
        return None
    source = Path(part["source_file"].iloc[0])
    prefix = source.name.split(METRICS_MARK)[0]
    path = source.parent / f"{prefix}_confusion_matrix_{dataset}.csv"
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    cols = [c for c in frame.columns if str(c).startswith("pred_")]
    cols.sort(key=lambda c: int(str(c)[5:]) if str(c)[5:].isdigit() else 10**9)
    if "true_class" in frame.columns:
        frame = frame.sort_values("true_class")
    matrix = frame[cols].to_numpy(dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
        return None
    return matrix


def plot_confusion_matrices(rows: pd.DataFrame, path) -> None:
    """Grid datasets x approaches: each approach's summed confusion matrix (from its
    ``<prefix>_confusion_matrix_<DATASET>.csv``), row-normalised so the diagonal is the
    per-class recall (fraction). Reference rows have no confusion matrix files and are left out."""
    from matplotlib.figure import Figure

    nets = rows[rows["kind"] != REFERENCE]
    datasets = sorted(nets["dataset"].unique(), key=natural_key) or ["(none)"]
    approaches = _ordered_approaches(nets) or ["(none)"]
    fig = Figure(figsize=(2.3 * len(approaches) + 0.8, 2.2 * len(datasets) + 0.6))
    axes = fig.subplots(len(datasets), len(approaches), squeeze=False)
    image = None
    for i, dataset in enumerate(datasets):
        for j, approach in enumerate(approaches):
            ax = axes[i, j]
            has_rows = bool(((nets["approach"] == approach) & (nets["dataset"] == dataset)).any())
            matrix = _confusion(nets, approach, dataset) if has_rows else None
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
