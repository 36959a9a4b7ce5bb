"""The model families: names only, no torch, so input can be checked before heavy imports.

* ``ffn``, ``cnn``, ``lstm``: one network per dataset.
* ``mtl-*``: one trunk shared by every dataset, one head per dataset, trained together.
* ``ft-*``: share first, then specialise: the ``mtl-*`` twin trained on every dataset (stage
  1), then a copy of its trunk with that dataset's head fine-tuned on each dataset alone
  (stage 2; :mod:`models.finetune`, :mod:`tuning.finetune`).
* ``auto``: one network per dataset, its family (ffn, cnn or lstm) one more searched choice,
  the configuration key :data:`AUTO_KEY` (:func:`network_family` reads it).
"""

from __future__ import annotations

FAMILIES = ("ffn", "cnn", "lstm", "mtl-ffn", "mtl-cnn", "mtl-lstm", "ft-ffn", "ft-cnn", "ft-lstm", "auto")
AUTO = "auto"
AUTO_CHOICES = ("ffn", "cnn", "lstm")
AUTO_KEY = "auto_family"
_MTL_PREFIX = "mtl-"
_FT_PREFIX = "ft-"


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    return family


def trunk_family(family: str) -> str:
    """The trunk a family uses: "mtl-cnn" -> "cnn", "ft-cnn" -> "cnn", "ffn" -> "ffn";
    "auto" -> "auto" (its trunk is each configuration's own: :func:`network_family`)."""
    return _check_family(family).removeprefix(_MTL_PREFIX).removeprefix(_FT_PREFIX)


def network_family(family: str, config) -> str:
    """The family whose network a configuration builds: ``family`` itself, or for "auto" the
    family its search chose (``config[AUTO_KEY]``)."""
    if _check_family(family) != AUTO:
        return family
    chosen = config.get(AUTO_KEY) if hasattr(config, "get") else None
    if chosen not in AUTO_CHOICES:
        raise ValueError(f"an 'auto' configuration needs {AUTO_KEY} in {', '.join(AUTO_CHOICES)}, got {chosen!r}")
    return chosen


def is_multitask(family: str) -> bool:
    """True for the families tuned on several datasets in one experiment: "mtl-*", and
    "ft-*", whose stage 1 is the multi-task network."""
    return _check_family(family).startswith((_MTL_PREFIX, _FT_PREFIX))


def is_finetuned(family: str) -> bool:
    """True for the "ft-*" families (multi-task stage 1, then one fine-tuned network per dataset)."""
    return _check_family(family).startswith(_FT_PREFIX)


def multitask_twin(family: str) -> str:
    """The multi-task family with the same trunk: "ft-cnn" -> "mtl-cnn", "cnn" -> "mtl-cnn"."""
    return _MTL_PREFIX + trunk_family(family)
