"""The run record of an experiment folder: what its search was started with
(``spikesort_run.json``: data, settings, versions, the searcher's settings), read by the
export, the study, the bundle and ``--resume``; and the mark an export leaves
(``spikesort_exported.json``). Local folders and storage URIs alike."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from tuning import atomic
from tuning.data.readers import Dataset
from tuning.errors import InputError
from tuning.metrics import metric_mode
from tuning.search.trainable import torch_threads
from tuning.settings import TuneSettings

RUN_RECORD = "spikesort_run.json"
EXPORT_RECORD = "spikesort_exported.json"
"""Written into an experiment folder by its export: ``--resume`` passes over such a
finished, exported experiment and starts a new one."""


def write_run_record(path, family: str, datasets: Sequence[Dataset], settings: TuneSettings,
                     search: dict | None = None) -> None:
    """What an export needs to rebuild the same data and splits, on another day, and what
    reproducing the search needs (``search``: its algorithm's and scheduler's settings)."""
    record = {
        "family": family,
        "datasets": [{"name": d.name, "path": str(d.path), "rows": int(len(d.y)),
                      "length": d.length, "n_channels": d.n_channels, "label_column": d.label_column,
                      "columns": d.columns, "label_map": d.label_map()} for d in datasets],
        "settings": dataclasses.asdict(settings),
        "metric": f"val_{settings.metric}", "mode": metric_mode(settings.metric),
        "command": shlex.join(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": package_versions(),
        "search": search or {},
        "reproduce": {"seed": settings.seed, "searcher": settings.searcher,
                      "deterministic": settings.deterministic,
                      "torch_threads_per_trial": torch_threads(settings.cpus_per_trial),
                      "machine": platform.machine(), "processor": platform.processor(),
                      "platform": platform.platform(), "cpu_count": os.cpu_count()},
    }
    if "://" in str(path):  # cloud storage: Ray writes the folder; keep the record beside it
        _write_remote(str(path), RUN_RECORD, json.dumps(record, indent=2))
        return
    atomic.write_text(Path(path) / RUN_RECORD, json.dumps(record, indent=2, default=str))


def read_run_record(path) -> dict:
    if "://" in str(path):
        import pyarrow.fs
        fs, root = pyarrow.fs.FileSystem.from_uri(str(path))
        with fs.open_input_stream(f"{root}/{RUN_RECORD}") as handle:
            return json.loads(handle.read().decode())
    record_path = Path(path) / RUN_RECORD
    if not record_path.is_file():
        raise InputError(f"{path}: no {RUN_RECORD}; this is not an experiment folder made by spikesort-tune")
    return json.loads(record_path.read_text())


def mark_exported(path, results_dir) -> None:
    """Record in the experiment folder that it was exported (best effort: a read-only
    experiment folder, e.g. a colleague's, still exports)."""
    text = json.dumps({"results_dir": str(Path(results_dir).resolve()),
                       "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2)
    try:
        if "://" in str(path):
            _write_remote(str(path), EXPORT_RECORD, text)
        else:
            atomic.write_text(Path(path) / EXPORT_RECORD, text)
    except OSError:
        pass


def was_exported(path) -> bool:
    if "://" in str(path):
        import pyarrow.fs
        fs, root = pyarrow.fs.FileSystem.from_uri(str(path))
        return fs.get_file_info(f"{root}/{EXPORT_RECORD}").type != pyarrow.fs.FileType.NotFound
    return (Path(path) / EXPORT_RECORD).is_file()


def versions_of(*names: str) -> dict:
    """Installed version of each distribution (None where it is not installed)."""
    import importlib.metadata as metadata

    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def package_versions() -> dict:
    return {"python": sys.version.split()[0],
            **versions_of("torch", "ray", "optuna", "numpy", "pandas", "scikit-learn", "hpbandster", "ConfigSpace",
                          "spikesort-tune")}


def join_storage(storage: str, name: str) -> str:
    return f"{storage.rstrip('/')}/{name}" if "://" in storage else str(Path(storage) / name)


def _write_remote(folder: str, name: str, text: str) -> None:
    import pyarrow.fs
    fs, root = pyarrow.fs.FileSystem.from_uri(folder)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/{name}") as handle:
        handle.write(text.encode())
