"""The model families: names only, no torch, so input can be checked before heavy imports."""

from __future__ import annotations

FAMILIES = ("ffn", "cnn", "lstm", "mtl-ffn", "mtl-cnn", "mtl-lstm")
_MTL_PREFIX = "mtl-"


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    return family


def trunk_family(family: str) -> str:
    """The trunk a family uses: "mtl-cnn" -> "cnn", "ffn" -> "ffn"."""
    return _check_family(family).removeprefix(_MTL_PREFIX)


def is_multitask(family: str) -> bool:
    """True for the "mtl-*" families (one network trained on several datasets)."""
    return _check_family(family).startswith(_MTL_PREFIX)
