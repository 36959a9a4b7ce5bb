"""Small helpers shared by the trunks: activation lookup and typed config access.

Configs arrive from Optuna/Ray as plain dicts whose numbers may be numpy scalars or
floats written by hand, so every read goes through a cast here.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module for ``name`` ("relu" | "gelu" | "elu")."""
    try:
        return ACTIVATIONS[str(name).lower()]()
    except KeyError:
        raise ValueError(
            f"activation {name!r} is not supported; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def get_int(config: Mapping[str, Any], key: str, default: int, minimum: int | None = None) -> int:
    """``config[key]`` as an int (``default`` when absent), checked against ``minimum``."""
    value = int(config.get(key, default))
    if minimum is not None and value < minimum:
        raise ValueError(f"config[{key!r}] = {value} must be >= {minimum}")
    return value


def get_float(config: Mapping[str, Any], key: str, default: float) -> float:
    return float(config.get(key, default))


def get_dropout(config: Mapping[str, Any], key: str = "dropout", default: float = 0.0) -> float:
    p = get_float(config, key, default)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"config[{key!r}] = {p} must be in [0, 1)")
    return p


def get_bool(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    # Strings can come from a hand-written JSON/CLI config; bool("false") would be True.
    if isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"config[{key!r}] = {value!r} is not a boolean")
    return bool(value)


def check_input(x, name: str) -> None:
    """Trunks take (batch, length) float tensors; say so clearly instead of a shape error deep inside."""
    if x.dim() != 2:
        raise ValueError(
            f"{name} expects a (batch, length) tensor, got shape {tuple(x.shape)}"
        )


def as_channels(x, n_channels: int, name: str):
    """(batch, n_channels * length) channel-major, or (batch, n_channels, length) -> the latter.

    Multi-channel rows arrive flattened (as the datasets store them), so every caller of a
    trunk keeps passing 2-D tensors; a single channel is (batch, 1, length).
    """
    if x.dim() == 3:
        if x.shape[1] != n_channels:
            raise ValueError(f"{name} was built for {n_channels} channel(s), got a (batch, channels, "
                             f"length) tensor of shape {tuple(x.shape)}")
        return x
    check_input(x, name)
    if x.shape[1] % n_channels:
        raise ValueError(
            f"{name} was built for {n_channels} channels, but {x.shape[1]} columns do not split "
            f"into {n_channels} equal channels"
        )
    return x.reshape(x.shape[0], n_channels, x.shape[1] // n_channels)
