"""``results/report.md`` of a replicated study: the answer first, then the evidence.

Wording follows the evidence (:func:`tuning.statistics.replicate_verdict`): "better" /
"worse" / "practically equivalent" only when the test says so, otherwise "not shown to
differ" with the interval; every verdict carries the least difference its R replicates
could detect. The fold-level tests of one replicate's exported configurations come last,
labelled as what they are.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from tuning import statistics as st
from tuning.study import across_replicates as across
from tuning.study.budget import Plan
from tuning.study.report import save_png

METHOD = """\
**Method.** A replicate is a whole pipeline (Bouthillier et al., MLSys 2021): its own seed, its
own stratified train / validation / test split of every dataset, every approach's search on that
split with the same number of trials and epoch limit, each pick trained once more on the training
rows (early stopping on the validation rows) and scored on the test rows, which no trial of any
approach saw. Approaches are compared by their paired differences over replicates. The primary
pairs are fixed by family before any result is seen (each multi-task family against the
single-task family with the same trunk; each fine-tuned family against both). Interval and test:
Student's t over the R differences with Nadeau & Bengio's corrected variance
sd^2 (1/R + n_test/n_train), which accounts for the overlap between the replicates' random splits
of the same rows (it assumes the differences roughly normal and the replicates otherwise
independent); Holm over every primary test; equivalence by two one-sided tests against the
region of practical equivalence (Holm over the pairs too); the least detectable difference is
the true difference this R detects with 80% power at the observed spread, at level alpha / m
(noncentral t). A multi-task search over all datasets counts as one search; a single-task family
searches once per dataset (the effort table shows what each got)."""


def _fmt(value: float, digits: int = 2, sign: bool = True) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def answer_lines(pairs: pd.DataFrame, rope: float) -> list[str]:
    """One bullet per dataset and pair, in the evidence's own words."""
    if pairs.empty:
        return ["No primary pair was run: the study needs a multi-task (or fine-tuned) family and its single-task "
                "twin, e.g. `--families ffn,mtl-ffn`."]
    out = []
    for row in pairs.itertuples():
        line = st.verdict_sentence(row._asdict(), row.approach, row.vs_approach, rope)
        if row.unequal_replicates:
            line += f" (unequal search effort in replicate(s) {row.unequal_replicates}: see the effort table)"
        out.append(f"- **{row.dataset}**: {line}.")
    n = int(pairs["n"].max())
    counts = pairs["verdict"].value_counts()
    summary = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in st.REPLICATE_VERDICTS if counts.get(v, 0))
    head = (f"Over {n} replicates, {len(pairs)} primary comparisons (Holm over all of them): {summary}. "
            f"Differences are test accuracy of the first approach minus the second, in points, with 95% intervals.")
    if n < 3:
        head += " With fewer than 3 replicates no interval is informative: read this as a check of the plumbing."
    return [head, "", *out]


def pairs_table(pairs: pd.DataFrame) -> list[str]:
    lines = ["| dataset | approach | vs | R | mean diff | 95% CI | won | Holm p | equiv. p (Holm) | detectable (80%) "
             "| verdict |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in pairs.itertuples():
        lines.append(f"| {r.dataset} | {r.approach} | {r.vs_approach} | {r.n} | {_fmt(r.mean_diff)} | "
                     f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] | {100 * r.share_won:.0f}% | {_fmt(r.p_adjusted, 3, False)} "
                     f"| {_fmt(r.p_equivalence_adjusted, 3, False)} | {_fmt(r.least_detectable, 2, False)} | "
                     f"{r.verdict} |")
    return lines


def spread_table(spread: pd.DataFrame) -> list[str]:
    lines = ["| dataset | approach | R | mean test accuracy, % | sd between replicates, points | min–max |",
             "|---|---|---|---|---|---|"]
    for r in spread.itertuples():
        lines.append(f"| {r.dataset} | {r.family} | {r.n} | {100 * r.accuracy_mean:.2f} | "
                     f"{_fmt(100 * r.accuracy_sd, 2, False)} | {100 * r.accuracy_min:.1f}–{100 * r.accuracy_max:.1f} |")
    return lines


def effort_lines(effort: pd.DataFrame, plan: Plan) -> list[str]:
    """What every search got (summed per family) and where a replicate's time went."""
    if effort.empty:
        return ["No search ran."]
    lines = ["| approach | searches | trials run / asked | errored trials | epochs trained (mean per search) | "
             "search min per replicate | scoring min per replicate | predicted min per replicate |",
             "|---|---|---|---|---|---|---|---|"]
    n_rep = max(1, effort["replicate"].nunique())
    for family, part in effort.groupby("family", sort=False):
        predicted = plan.per_family_s.get(family)
        lines.append(f"| {family} | {len(part)} | {int(part['n_trials'].sum())} / {int(part['samples'].sum())} | "
                     f"{int(part['n_errored'].sum())} | {part['trial_epochs'].mean():.0f} | "
                     f"{part['search_seconds'].sum() / 60 / n_rep:.1f} | {part['score_seconds'].sum() / 60 / n_rep:.1f} | "
                     f"{(predicted / 60) if predicted else float('nan'):.1f} |".replace("| nan |", "| — |"))
    unequal = effort[effort["unequal"]]
    if len(unequal):
        lines += ["", "**Unequal effort** (flagged beside every verdict it touches): " + "; ".join(
            f"replicate {r.replicate} {r.family} on {r.datasets} ({r.n_trials}/{r.samples} trials, "
            f"{r.n_errored} errored)" for r in unequal.itertuples()) + "."]
    else:
        lines += ["", "Every search ran every trial it was given; none errored."]
    return lines


def curve_lines(curves: pd.DataFrame, rope: float) -> list[str]:
    if curves.empty:
        return ["No learning curve: the study has no multi-task family beside its single-task twin."]
    out = ["Exploratory (Holm within the curves, not part of the answer): each pick retrained on a nested, "
           "stratified fraction of its replicate's training and validation rows, scored on the same test rows.", "",
           "| dataset | approach | vs | training fraction | R | mean diff | 95% CI | detectable (80%) | verdict |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in curves.itertuples():
        out.append(f"| {r.dataset} | {r.approach} | {r.vs_approach} | {100 * r.fraction:g}% | {r.n} | "
                   f"{_fmt(r.mean_diff)} | [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] | "
                   f"{_fmt(r.least_detectable, 2, False)} | {r.verdict} |")
    return out


def unit_lines(records: Sequence[dict], unit_names: dict, metric: str) -> list[str]:
    """Per dataset and approach: each unit's recall over every replicate's test rows (the
    confusion matrices summed) and a warning for each unit below the floor."""
    from tuning.metrics import UNIT_RECALL_FLOOR, unit_recall_line, unit_recalls, weak_unit_lines

    summed: dict[tuple[str, str], np.ndarray] = {}
    for record in records:
        for score in record.get("scores", []):
            if score["fraction"] == 1.0 and "confusion_matrix" in score:
                key = (score["dataset"], record["family"])
                summed[key] = summed.get(key, 0) + np.asarray(score["confusion_matrix"])
    if not summed:
        return ["No scores yet."]
    out = [f"Each unit's recall on every replicate's test rows (summed), and its share of the spikes; a unit "
           f"below {100 * UNIT_RECALL_FLOOR:.0f}% is flagged: for a lab each unit is a neuron.", ""]
    for (dataset, family), confusion in sorted(summed.items()):
        units = unit_recalls(confusion, unit_names.get(dataset) or range(len(confusion)))
        out.append(f"- **{dataset}, {family}**: {unit_recall_line(units)}")
        out += [f"  - warning: {line}" for line in weak_unit_lines(units, metric)]
    return out


def render(pairs: pd.DataFrame, curves: pd.DataFrame, spread: pd.DataFrame, effort: pd.DataFrame,
           scores: pd.DataFrame, *, plan: Plan, families: Sequence[str], fractions: Sequence[float],
           run_lines: list[str], alpha: float, rope: float, fold_level: dict | None,
           units: list[str] | None = None) -> str:
    out = ["# Does multi-task learning help? Study report", "", "## Answer", "", *answer_lines(pairs, rope), "",
           f"Words: \"better\"/\"worse\" when Holm-adjusted p < {alpha:g}; \"practically equivalent\" when the "
           f"equivalence test against +-{rope:g} points passes (Holm-adjusted p < {alpha:g}); otherwise \"not shown "
           "to differ\": the interval still holds differences that would matter.", "",
           "![paired differences over replicates](replicate_differences.png)", "",
           "## The paired differences", "", *pairs_table(pairs), "",
           "## How much each approach's pick moves between replicates", "",
           "Test accuracy of each approach's pick in every replicate: the spread a single search cannot show.", "",
           *spread_table(spread), "",
           "## Every unit", "", *(units or ["Not computed."]), "",
           "## What was run", "", *run_lines, "", *effort_lines(effort, plan), "",
           "## Learning curves", "", *curve_lines(curves, rope), ""]
    if len(curves):
        out += ["![learning curves](learning_curves.png)", ""]
    out += [METHOD, ""]
    if fold_level is not None:
        out += ["## For the configurations picked (secondary)", "",
                "The lab's results tree holds replicate 0's picks, each rerun over the export's full-split folds "
                "(k-fold x repeats). The "
                "tests below are conditional on those configurations: they say nothing about how another search "
                "would have gone, which is what the replicates above answer.", "",
                *_demote(fold_level["markdown"]), ""]
    return "\n".join(out)


def _demote(markdown: str) -> list[str]:
    """The comparison's own markdown, its headings one level down (it sits inside this report)."""
    return [("#" + line) if line.startswith("#") else line for line in markdown.splitlines()]


def plot_pairs(pairs: pd.DataFrame, path) -> None:
    """Mean paired difference with its 95% interval, per dataset and pair; the ROPE shaded."""
    from matplotlib.figure import Figure

    labels = [f"{r.dataset}: {r.approach} − {r.vs_approach}" for r in pairs.itertuples()]
    fig = Figure(figsize=(7.5, 0.45 * max(len(labels), 2) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(labels))[::-1]
    if len(labels):
        ax.errorbar(pairs["mean_diff"], y, xerr=[pairs["mean_diff"] - pairs["ci_low"], pairs["ci_high"] - pairs["mean_diff"]],
                    fmt="o", color="tab:blue", capsize=3)
        ax.set_yticks(y, labels)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("test accuracy difference, points (95% interval over replicates)")
    fig.tight_layout()
    save_png(fig, path)


def plot_curves(scores: pd.DataFrame, families: Sequence[str], path) -> None:
    """Mean test accuracy of each curve family against its training fraction, per dataset."""
    from matplotlib.figure import Figure

    curve = scores[scores["family"].isin(across.curve_families(families))]
    datasets = list(dict.fromkeys(curve["dataset"]))
    fig = Figure(figsize=(3.2 * max(len(datasets), 1), 3.0))
    for i, dataset in enumerate(datasets):
        ax = fig.add_subplot(1, len(datasets), i + 1)
        for family, part in curve[curve["dataset"] == dataset].groupby("family"):
            means = part.groupby("fraction")["accuracy"].mean()
            ax.plot(100 * means.index, 100 * means.values, marker="o", label=family)
        ax.set_title(dataset)
        ax.set_xlabel("training rows, %")
        if i == 0:
            ax.set_ylabel("test accuracy, % (mean over replicates)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
