"""Shared pytest fixtures: small CSV datasets built in a temporary folder.

Fixtures:
    write_csv: the helper ``write_csv(path, header, rows) -> Path``.
    tiny_dataset_dir: a folder with two small, separable synthetic datasets (T2, T3).

Test tiers (docs/testing.md): ``pytest --fast`` (``scripts/test.sh --fast``) runs only the
tests that start no Ray runtime and no subprocess. A test leaves the fast tier by a marker
(``ray``, ``subprocess``, ``cluster``, ``slow``) or by using a fixture that starts Ray
(``RAY_FIXTURES``, marked ``ray`` here). In fast mode ``ray.init`` and ``subprocess.Popen``
are guarded: an unmarked test that starts either fails with a message saying how to mark
it, so a slow test cannot slip into the fast tier. Tests of ``benchmarks/archive/`` are
marked ``archive`` and run only with ``--archive``.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["pytester"]  # tests/test_tiers.py runs the tier rules in an inner pytest

# --------------------------------------------------------------------------------------
# Test tiers
# --------------------------------------------------------------------------------------

NOT_FAST = ("ray", "subprocess", "cluster", "slow")
"""Markers that keep a test out of the fast tier."""

RAY_FIXTURES = frozenset({"ray_2cpu", "ray_1cpu"})
"""Fixtures that start a Ray runtime: a test using one (directly or through another
fixture) is marked ``ray``."""

_started: list[str] = []  # what the running test started against the fast tier's rule


class FastTierViolation(RuntimeError):
    """Raised in fast mode when a test starts a Ray runtime or a subprocess."""


def _refuse(what: str, marker: str):
    message = (f"fast tier: this test started {what}, which the fast tier (scripts/test.sh --fast) "
               f"does not allow. Mark it @pytest.mark.{marker} (or the module: pytestmark = "
               f"pytest.mark.{marker}); a test that needs Ray can use the ray_2cpu fixture, which marks it.")
    _started.append(message)
    raise FastTierViolation(message)


def _install_guards(config) -> None:
    """Replace ``ray.init`` and ``subprocess.Popen`` by refusals until the session ends."""
    import platform

    import ray
    import ray._private.worker as ray_worker

    # platform.processor() runs `uname -p` once per process and caches it (the run record
    # asks for it): ask now, so no test is blamed for a fact of the machine.
    platform.processor()
    real_popen, real_init = subprocess.Popen, ray.init

    class GuardedPopen(real_popen):  # a subclass, so isinstance checks still hold
        def __init__(self, args, *rest, **kwargs):
            _refuse(f"a subprocess ({args!r})", "subprocess")

    def guarded_init(*args, **kwargs):
        _refuse("a Ray runtime (ray.init)", "ray")

    subprocess.Popen, ray.init, ray_worker.init = GuardedPopen, guarded_init, guarded_init

    def restore():
        subprocess.Popen, ray.init, ray_worker.init = real_popen, real_init, real_init

    config.add_cleanup(restore)


def pytest_addoption(parser):
    group = parser.getgroup("spikesort-tune test tiers")
    group.addoption("--fast", action="store_true",
                    help="run only tests that start no Ray runtime and no subprocess; fail any that do")
    group.addoption("--archive", action="store_true", help="also run the tests of benchmarks/archive/")


def pytest_configure(config):
    if config.getoption("--fast"):
        _install_guards(config)


def pytest_collection_modifyitems(config, items):
    fast, archive = config.getoption("--fast"), config.getoption("--archive")
    keep, drop = [], []
    for item in items:
        if RAY_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.ray)
        if item.get_closest_marker("archive") and not archive:
            drop.append(item)
        elif fast and any(item.get_closest_marker(name) for name in NOT_FAST):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _fail_if_started(outcome):
    """Fail a setup or call that started Ray or a subprocess even if the code swallowed the
    refusal (``outcome`` is the phase's result; an exception the phase raised is left as is)."""
    if _started:
        message = _started[0]
        _started.clear()
        pytest.fail(message, pytrace=False)
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    _started.clear()
    return _fail_if_started((yield))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    _started.clear()
    return _fail_if_started((yield))


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------

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


@pytest.fixture(scope="module")
def ray_1cpu():
    """A local 1-CPU Ray runtime for the module (one trial worker at a time: worker start-up is
    most of a tiny run's time); shut down only if this fixture started it."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=1, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


# --------------------------------------------------------------------------------------
# Added for the model bundle and predict tests: bundles trained in-process (no Ray)
# --------------------------------------------------------------------------------------

BUNDLE_CNN_CONFIG = {"family": "cnn", "cnn_n_blocks": 2, "cnn_channels_b0": 8, "cnn_kernel_b0": 5,
                     "cnn_channels_b1": 8, "cnn_kernel_b1": 5, "batch_norm": True, "dropout": 0.1,
                     "cnn_dense_units": 16, "normalisation": "global", "lr": 0.01, "batch_size": 32}
BUNDLE_MTL_CONFIG = {"family": "mtl-ffn", "ffn_n_layers": 1, "ffn_units_l0": 16, "normalisation": "per_waveform",
                     "lr": 0.01, "batch_size": 32}


def fake_scores(names, accuracy=0.9):
    """Summary frames shaped like the export's (full split per dataset, one split per dataset)."""
    import pandas as pd

    full, one = [], []
    for name in names:
        row = {"dataset": name, "n_runs": 4}
        for score in ("accuracy", "balanced_accuracy", "macro_f1"):
            row.update({f"{score}_mean": accuracy, f"{score}_std": 0.01,
                        f"{score}_ci95_low": accuracy - 0.02, f"{score}_ci95_high": accuracy + 0.02})
        full.append(row)
        one.append({"dataset": name, "n_test": 27, "accuracy": accuracy, "balanced_accuracy": accuracy,
                    "macro_f1": accuracy})
    return pd.DataFrame(full), pd.DataFrame(one)


def build_bundle(folder, family, config, datasets, max_epochs=8):
    """Train ``config`` as the export's final model does (in this process) and write its
    bundle to ``folder``; returns the :class:`tuning.bundle.model_bundle.FinalModel`."""
    from tuning import atomic
    from tuning.bundle import model_bundle

    final = model_bundle.train_final(family, config, datasets, seed=0, max_epochs=max_epochs, patience=max_epochs,
                               metric="accuracy", inner_val_fraction=0.15)
    full, one = fake_scores([d.name for d in datasets])
    atomic.write_all(model_bundle.plan_bundle(folder, family=family, approach="test approach", config=config,
                                        datasets=datasets, final=final, full_split=full, one_split=one,
                                        source={"experiment": "none"}))
    return final


@pytest.fixture(scope="session")
def session_tiny_dataset_dir(tmp_path_factory) -> Path:
    """The tiny T2.csv and T3.csv, shared by the whole session."""
    return write_tiny_datasets(tmp_path_factory.mktemp("tiny_session") / "data")


@pytest.fixture(scope="session")
def cnn_bundle(session_tiny_dataset_dir, tmp_path_factory):
    """A single-task CNN bundle on T3 (string labels in a 'Track' column): (folder, FinalModel, Dataset)."""
    from tuning.data.readers import load_dataset

    dataset = load_dataset(session_tiny_dataset_dir / "T3.csv")
    folder = tmp_path_factory.mktemp("bundles") / "Model" / "T3"
    return folder, build_bundle(folder, "cnn", BUNDLE_CNN_CONFIG, [dataset]), dataset


@pytest.fixture(scope="session")
def mtl_bundle(session_tiny_dataset_dir, tmp_path_factory):
    """A multi-task FFN bundle on T2 (length 48) and a T5 of 40 samples (resampled to 48):
    (folder, FinalModel, [Dataset T2, Dataset T5])."""
    from tuning.data.readers import load_dataset

    data_dir = session_tiny_dataset_dir.parent / "mtl_data"
    X, y = make_waveforms(2, TINY_ROWS_PER_CLASS, length=40, seed=5)
    _write_csv(data_dir / "T5.csv", [f"s{i}" for i in range(40)] + ["unit"],
               ([f"{v:.2f}" for v in x] + [str(int(c) + 3)] for x, c in zip(X, y)))
    datasets = [load_dataset(session_tiny_dataset_dir / "T2.csv"), load_dataset(data_dir / "T5.csv")]
    folder = tmp_path_factory.mktemp("bundles") / "Model" / "T2+T5"
    return folder, build_bundle(folder, "mtl-ffn", BUNDLE_MTL_CONFIG, datasets), datasets


@pytest.fixture
def torch_one_thread():
    """Train on one torch thread (the cores are shared with colleagues); restore the setting after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
