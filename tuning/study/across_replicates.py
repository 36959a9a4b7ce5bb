"""The headline answer: approaches compared by their paired differences over replicates.

Primary pairs are fixed before any number is seen, by family: each multi-task family
against the single-task family with the same trunk (``mtl-cnn`` vs ``cnn``), and each
fine-tuned family against both its single-task and its joint multi-task twin (``ft-cnn``
vs ``cnn`` and vs ``mtl-cnn``), on every dataset, for the families the study ran. Per pair
and dataset: :func:`tuning.statistics.replicate_test` on the R differences of test
accuracy (points), Holm over every primary test (the p of "no difference" and, as its own
family, the p of the equivalence test), the verdict words of
:func:`tuning.statistics.replicate_verdict`, and the least difference R replicates detect
with 80% power at the observed spread (at level alpha / m, the strictest level Holm can use).

Learning curves (exploratory; each multi-task or fine-tuned family against its single-task
twin): the same test per training fraction, Holm within the curves.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from models import trunk_family
from tuning import statistics as st

PAIR_COLUMNS = ["dataset", "approach", "vs_approach", "fraction", "n", "mean_diff", "sd_diff", "ci_low", "ci_high",
                "share_won", "p_value", "p_adjusted", "p_equivalence", "p_equivalence_adjusted", "least_detectable",
                "verdict", "unequal_replicates"]
SPREAD_COLUMNS = ["dataset", "family", "n", "accuracy_mean", "accuracy_sd", "accuracy_min", "accuracy_max"]


def primary_pairs(families: Sequence[str]) -> list[tuple[str, str]]:
    """(approach, versus) family pairs, fixed by the families alone."""
    present = set(families)
    pairs = []
    for family in families:
        trunk = trunk_family(family)
        if family.startswith("mtl-") and trunk in present:
            pairs.append((family, trunk))
        elif family.startswith("ft-"):
            pairs += [(family, twin) for twin in (trunk, f"mtl-{trunk}") if twin in present]
    return pairs


def curve_pairs(families: Sequence[str]) -> list[tuple[str, str]]:
    """The pairs the learning curves compare: each multi-task and each fine-tuned family
    against its single-task twin (where sharing is expected to matter most: small data)."""
    return [(a, b) for a, b in primary_pairs(families) if a.startswith("mtl-") or b == trunk_family(a)]


def curve_families(families: Sequence[str]) -> set[str]:
    return {f for pair in curve_pairs(families) for f in pair}


def _paired(scores: pd.DataFrame, a: str, b: str, dataset: str, fraction: float) -> pd.DataFrame:
    here = scores[(scores["dataset"] == dataset) & np.isclose(scores["fraction"].astype(float), fraction)]
    left = here[here["family"] == a].set_index("replicate")
    right = here[here["family"] == b].set_index("replicate")
    return left.join(right, how="inner", lsuffix="_a", rsuffix="_b").sort_index()


def compare_pairs(scores: pd.DataFrame, pairs: Sequence[tuple[str, str]], *, fraction: float = 1.0,
                  alpha: float = st.DEFAULT_ALPHA, rope: float = st.DEFAULT_ROPE,
                  unequal: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (dataset, pair): :data:`PAIR_COLUMNS`, differences in accuracy points.

    ``scores``: :func:`tuning.study.replicates.scores_table`. ``unequal``: the effort
    table; replicates in which either approach's search got less than planned are listed
    beside the verdict they touch."""
    rows = []
    datasets = list(dict.fromkeys(scores["dataset"])) if len(scores) else []
    flagged = _unequal_by_family(unequal)
    m = 0
    tests = []
    for dataset in datasets:
        for a, b in pairs:
            paired = _paired(scores, a, b, dataset, fraction)
            if paired.empty:
                continue
            tests.append((dataset, a, b, paired))
            m += 1
    for dataset, a, b, paired in tests:
        diffs = 100.0 * (paired["accuracy_a"].astype(float) - paired["accuracy_b"].astype(float)).to_numpy()
        n_fit = (paired["n_train_a"] + paired["n_val_a"]).astype(float).to_numpy()
        n_test = paired["n_test_a"].astype(float).to_numpy()
        result = st.replicate_test(diffs, n_fit, n_test, alpha=alpha, rope=rope, detect_alpha=alpha / max(m, 1))
        touched = sorted(r for r in paired.index if r in flagged.get((a, dataset), set()) | flagged.get((b, dataset),
                                                                                                           set()))
        rows.append({"dataset": dataset, "approach": a, "vs_approach": b, "fraction": fraction, **result,
                     "unequal_replicates": ",".join(str(r) for r in touched)})
    frame = pd.DataFrame(rows, columns=[c for c in PAIR_COLUMNS if c not in ("p_adjusted", "p_equivalence_adjusted",
                                                                             "verdict")])
    frame["p_adjusted"] = st.holm(frame["p_value"].to_numpy(dtype=float))
    frame["p_equivalence_adjusted"] = st.holm(frame["p_equivalence"].to_numpy(dtype=float))
    frame["verdict"] = [st.replicate_verdict(mean, p, p_eq, alpha=alpha) for mean, p, p_eq in
                        zip(frame["mean_diff"], frame["p_adjusted"], frame["p_equivalence_adjusted"])]
    return frame[PAIR_COLUMNS]


def compare_curves(scores: pd.DataFrame, families: Sequence[str], *, alpha: float = st.DEFAULT_ALPHA,
                   rope: float = st.DEFAULT_ROPE) -> pd.DataFrame:
    """The curve pairs at every fraction below 1 (exploratory), Holm within them."""
    fractions = sorted({float(f) for f in scores["fraction"]} - {1.0}) if len(scores) else []
    parts = [compare_pairs(scores, curve_pairs(families), fraction=f, alpha=alpha, rope=rope) for f in fractions]
    if not parts:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    frame["p_adjusted"] = st.holm(frame["p_value"].to_numpy(dtype=float))
    frame["p_equivalence_adjusted"] = st.holm(frame["p_equivalence"].to_numpy(dtype=float))
    frame["verdict"] = [st.replicate_verdict(mean, p, p_eq, alpha=alpha) for mean, p, p_eq in
                        zip(frame["mean_diff"], frame["p_adjusted"], frame["p_equivalence_adjusted"])]
    return frame


def spread(scores: pd.DataFrame) -> pd.DataFrame:
    """Each approach's test accuracy of its pick across replicates, per dataset (fractions):
    the between-replicate spread that every comparison must see through."""
    full = scores[np.isclose(scores["fraction"].astype(float), 1.0)] if len(scores) else scores
    rows = []
    for (dataset, family), part in full.groupby(["dataset", "family"], sort=False):
        acc = part["accuracy"].astype(float).to_numpy()
        rows.append({"dataset": dataset, "family": family, "n": len(acc), "accuracy_mean": float(acc.mean()),
                     "accuracy_sd": float(acc.std(ddof=1)) if len(acc) > 1 else math.nan,
                     "accuracy_min": float(acc.min()), "accuracy_max": float(acc.max())})
    return pd.DataFrame(rows, columns=SPREAD_COLUMNS)


def _unequal_by_family(effort: pd.DataFrame | None) -> dict[tuple[str, str], set[int]]:
    if effort is None or effort.empty:
        return {}
    out: dict[tuple[str, str], set[int]] = {}
    for row in effort[effort["unequal"]].itertuples():
        for dataset in str(row.datasets).split("+"):
            out.setdefault((row.family, dataset), set()).add(int(row.replicate))
    return out


