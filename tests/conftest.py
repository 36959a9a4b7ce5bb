"""Shared pytest fixtures: small CSV datasets built in a temporary folder.

Fixtures:
    write_csv: the helper ``write_csv(path, header, rows) -> Path``.
    tiny_dataset_dir: a folder with two small, separable synthetic datasets (T2, T3).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

TINY_LENGTH = 48  # samples per waveform in the tiny datasets
TINY_ROWS_PER_CLASS = 60  # T2: 120 rows, T3: 180 rows


def _write_csv(path, header, rows) -> Path:
    """Write ``rows`` (sequences of values, written with ``str``) under ``header``.

    ``header`` may be ``None`` to write no header line. Rows may differ in length (to
    build ragged files). Parent folders are created. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        if header is not None:
            writer.writerow(list(header))
        for row in rows:
            writer.writerow([v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v) for v in row])
    return path


@pytest.fixture
def write_csv():
    """The helper ``write_csv(path, header, rows) -> Path`` (header may be None)."""
    return _write_csv


def make_waveforms(n_classes: int, rows_per_class: int, length: int = TINY_LENGTH, seed: int = 0):
    """Separable synthetic spikes: ``X`` float64 ``(n, length)`` in uV-like units, ``y`` 0..K-1.

    Class ``c`` is a trough at a class-specific time with a class-specific depth and
    after-hyperpolarisation, plus white noise small enough that a tiny net separates them.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    X, y = [], []
    for c in range(n_classes):
        trough_t = length * (0.3 + 0.1 * c)
        depth = 60.0 + 25.0 * c
        template = -depth * np.exp(-0.5 * ((t - trough_t) / 2.0) ** 2)
        template += (10.0 + 8.0 * c) * np.exp(-0.5 * ((t - trough_t - 8.0) / 4.0) ** 2)
        X.append(template + rng.normal(0.0, 4.0, size=(rows_per_class, length)))
        y.append(np.full(rows_per_class, c))
    X, y = np.concatenate(X), np.concatenate(y)
    order = rng.permutation(y.size)  # interleave classes, as in a real recording
    return X[order], y[order]


@pytest.fixture
def tiny_dataset_dir(tmp_path) -> Path:
    """A folder ``tmp_path/"data"`` holding two small separable datasets, 48 samples each.

    * ``T2.csv``: 2 classes, 120 rows, header ``s0..s47,label``, labels 0/1 in the last
      column (the shipped files' layout).
    * ``T3.csv``: 3 classes, 180 rows, label column ``Track`` in the first position with
      string labels ``unit_a``, ``unit_b``, ``unit_c``, then ``s0..s47``.
    """
    data_dir = tmp_path / "data"
    samples = [f"s{i}" for i in range(TINY_LENGTH)]

    X, y = make_waveforms(2, TINY_ROWS_PER_CLASS, seed=2)
    _write_csv(
        data_dir / "T2.csv",
        samples + ["label"],
        ([f"{v:.2f}" for v in x] + [str(int(c))] for x, c in zip(X, y)),
    )

    X, y = make_waveforms(3, TINY_ROWS_PER_CLASS, seed=3)
    names = ("unit_a", "unit_b", "unit_c")
    _write_csv(
        data_dir / "T3.csv",
        ["Track"] + samples,
        ([names[c]] + [f"{v:.2f}" for v in x] for x, c in zip(X, y)),
    )
    return data_dir


# --------------------------------------------------------------------------------------
# Added for the CLI / end-to-end / export tests
# --------------------------------------------------------------------------------------

import os  # noqa: E402

# No usage-statistics prompt or upload from any Ray runtime a test starts.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def write_tiny_datasets(data_dir) -> Path:
    """Write the ``tiny_dataset_dir`` files (T2.csv, T3.csv) into ``data_dir``; return it.

    For module-scoped fixtures, which cannot use the function-scoped ``tmp_path``.
    """
    data_dir = Path(data_dir)
    samples = [f"s{i}" for i in range(TINY_LENGTH)]
    X, y = make_waveforms(2, TINY_ROWS_PER_CLASS, seed=2)
    _write_csv(data_dir / "T2.csv", samples + ["label"],
               ([f"{v:.2f}" for v in x] + [str(int(c))] for x, c in zip(X, y)))
    X, y = make_waveforms(3, TINY_ROWS_PER_CLASS, seed=3)
    names = ("unit_a", "unit_b", "unit_c")
    _write_csv(data_dir / "T3.csv", ["Track"] + samples,
               ([names[c]] + [f"{v:.2f}" for v in x] for x, c in zip(X, y)))
    return data_dir


@pytest.fixture(scope="module")
def module_tiny_dataset_dir(tmp_path_factory) -> Path:
    """Like ``tiny_dataset_dir`` (same T2.csv and T3.csv), shared by one test module."""
    return write_tiny_datasets(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="module")
def ray_2cpu():
    """A local Ray runtime with 2 CPUs for the module; shut down only if this fixture started it."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
