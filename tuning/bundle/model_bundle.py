"""Model bundles: the tuned network kept for sorting new spikes, and :func:`load_model`.

The export writes one bundle per approach and dataset (one for all the datasets of a
multi-task approach) to ``results/<Approach>/Model/<DATASET>/`` (MTL: ``<A2+A3+...>``; a
fine-tuned ``ft-*`` approach has one single-task network, so one bundle, per dataset)::

    bundle.json   format version, family + config, per task: the lab's class labels,
                  input length and resampling rule, normalisation parameters, temperature
                  and calibration errors, sha256 of the training CSV and of the arrays
                  trained on, and the full-split and one-split scores the bundle stands
                  for; its speed on the exporting machine (spikes/s per backend, FLOPs
                  per spike: :mod:`tuning.bundle.speed`); package versions
    weights.pt    the network's state_dict (torch.load(..., weights_only=True))
    model.onnx    the same network for ONNX Runtime: input "waveforms" (batch, n_channels x
                  input_length) float32, already normalised and resampled; one output
                  "logits_<task>" (batch, classes) per head

**The final model.** The best configuration is trained once more on every labelled row of
the dataset by the recipe the full-split reruns used: a stratified, seeded inner part of
``INNER_VAL_FRACTION`` of the rows is held out, training stops early on it (same
``max_epochs`` and patience as the reruns), and the weights of its best epoch are kept. So
the full-split scores measure exactly this procedure, and the held-out rows, which the
weights never trained on, fit the temperature of the calibrated probabilities (one per
head). Taking the epoch count from the reruns instead (and training on 100% of the rows)
would leave no rows of the final model's own to calibrate on.

Everything is planned in memory (:func:`plan_bundle`) and written by the export's
all-or-nothing commit with the rest of the results tree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tuning.bundle.speed import BFloat16Network, bfloat16_check, measure_speed
from tuning.data.readers import file_sha256
from tuning.errors import InputError
from tuning.data.preprocess import Normaliser, resample_to_length

FORMAT = "spikesort-tune model bundle"
FORMAT_VERSION = 1
"""Bumped when a bundle written by this version cannot be read by an older reader, or back."""
MODEL_FOLDER = "Model"
METADATA_FILE = "bundle.json"
WEIGHTS_FILE = "weights.pt"
ONNX_FILE = "model.onnx"
ONNX_INPUT = "waveforms"
UNSORTED = "unsorted"
"""The label of a spike whose confidence is below the caller's minimum."""
BACKENDS = ("torch", "onnx", "torch-bf16")
"""``torch-bf16``: weights.pt run in bfloat16, only for a bundle whose export checked that its
labels agree with float32's (bundle.json ``bfloat16``; :func:`tuning.bundle.speed.bfloat16_check`)."""
SPEED_SAMPLE_ROWS = 4096  # training waveforms the export times the bundle on (tuning.bundle.speed)
INFERENCE_BATCH = {"torch": 1024, "onnx": 1024, "torch-bf16": 1024}
"""Spikes per forward pass, per backend, measured on the bundle of the default ``tune cnn
A12`` run (benchmarks/RESULTS.md, section predict_throughput): torch sorted about twice as
many spikes a second in batches of 1024 as of 16384 (a batch's feature maps then stay in the
CPU's caches; 4096 was slower too, 256 level). ONNX Runtime's rate did not follow the batch
(22,000-37,000 spikes/s at 1024 and at 16384 alike) but its peak memory did (250 MB against
620-780 MB), so it takes 1024 too."""


# ----------------------------------------------------------------------------- training
@dataclass
class FinalModel:
    """The network trained on all labelled rows, calibrated on its held-out inner part.

    ``fit``: the :class:`tuning.training.FitResult` (best-epoch weights, normalisers).
    Per task (dataset order): ``holdout[t]`` row indices not trained on, ``train_rows[t]``,
    ``temperatures[t]``, ``calibration[t]`` (rows, accuracy, ece/nll before and after).
    """

    fit: object
    holdout: list[np.ndarray]
    train_rows: list[int]
    temperatures: list[float]
    calibration: list[dict]
    seed: int
    max_epochs: int
    patience: int
    metric: str
    inner_val_fraction: float


def train_final(family: str, config: dict, datasets: Sequence, *, seed: int, max_epochs: int,
                patience: int, metric: str, inner_val_fraction: float, threads: int = 1,
                device: str = "cpu") -> FinalModel:
    """Train ``config`` on every dataset's rows minus a held-out inner part; calibrate on it."""
    import torch

    from tuning.calibration import expected_calibration_error, fit_temperature, negative_log_likelihood, softmax
    from tuning.data.splits import tuning_split
    from tuning.training import TaskData, fit

    splits = [tuning_split(d.y, seed, inner_val_fraction, 0.0) for d in datasets]
    tasks = [TaskData.from_rows(d, s.train, s.val) for d, s in zip(datasets, splits)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = fit(family, config, tasks, max_epochs=max_epochs, seed=seed, metric=metric,
                     patience=patience, device=device)
    finally:
        torch.set_num_threads(previous)  # the caller's setting, when called in its process
    result.model.to("cpu")
    result.device = "cpu"
    temperatures, calibration = [], []
    for t, (dataset, split) in enumerate(zip(datasets, splits)):
        logits = task_logits(result.model, result.normalisers[t], result.input_length,
                             dataset.X[split.val], t, result.n_channels)
        y = dataset.y[split.val]
        temperature = fit_temperature(logits, y)
        temperatures.append(temperature)
        calibration.append({
            "rows": int(len(y)),
            "accuracy": float(np.mean(logits.argmax(1) == y)),
            "ece_before": expected_calibration_error(softmax(logits), y),
            "ece_after": expected_calibration_error(softmax(logits, temperature), y),
            "nll_before": negative_log_likelihood(logits, y),
            "nll_after": negative_log_likelihood(logits, y, temperature),
        })
    return FinalModel(result, [s.val for s in splits], [int(len(s.train)) for s in splits], temperatures,
                      calibration, seed, max_epochs, patience, metric, inner_val_fraction)


def start_final_training(family: str, config: dict, datasets: Sequence, *, cpus: float, gpus: float, **kwargs):
    """:func:`train_final` as a Ray task with a trial's resources, so it runs beside the
    reruns; :func:`collect` waits for it."""
    import ray

    from tuning.search.trainable import torch_threads

    remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(_train_final_task)
    return remote.remote(family, config, list(datasets), threads=torch_threads(cpus), **kwargs)


def _train_final_task(family, config, datasets, **kwargs) -> FinalModel:
    from tuning.search.trainable import trial_device

    return train_final(family, config, datasets, device=trial_device(), **kwargs)


def collect(ref) -> FinalModel:
    import ray

    return ray.get(ref)


def bundles_of(final: FinalModel, datasets: Sequence) -> list[tuple[list, FinalModel]]:
    """(datasets, final model) of each bundle: one for the whole network, or for an ft-*
    family one per dataset, each with that dataset's own network, normaliser and calibration
    (plan each with ``stage1_datasets=datasets``)."""
    import models

    if not isinstance(final.fit.model, models.FineTunedNets):
        return [(list(datasets), final)]
    return [([dataset], dataclasses.replace(
        final, fit=final.fit.task_view(t), holdout=[final.holdout[t]], train_rows=[final.train_rows[t]],
        temperatures=[final.temperatures[t]], calibration=[final.calibration[t]]))
        for t, dataset in enumerate(datasets)]


# ----------------------------------------------------------------------------- planning
def bundle_folder(approach_root: Path, datasets: Sequence) -> Path:
    """``<approach_root>/Model/<DATASET>`` (several datasets: names joined by ``+``)."""
    return Path(approach_root) / MODEL_FOLDER / "+".join(d.name for d in datasets)


def plan_bundle(folder: Path, *, family: str, approach: str, config: dict, datasets: Sequence,
                final: FinalModel, full_split, one_split, source: dict,
                stage1_datasets: Sequence = ()) -> dict[Path, bytes]:
    """Every file of one bundle, as bytes by path; nothing is written here.

    ``full_split`` / ``one_split``: the export's summary frames (one row per dataset);
    ``source``: where the configuration came from (experiment, trial, objective);
    ``stage1_datasets``: for an ft-* family, every dataset its multi-task stage 1 trained on
    (recorded with their data hashes: the weights depend on them too).
    """
    from tuning.search.run_record import package_versions, versions_of

    model = final.fit.model
    names = [d.name for d in datasets]
    weights = _state_dict_bytes(model)
    onnx_bytes = onnx_export(model, final.fit.n_channels * final.fit.input_length, names)
    sample = prepare(datasets[0].X[:SPEED_SAMPLE_ROWS], final.fit.normalisers[0], final.fit.input_length,
                     final.fit.n_channels)
    sample = np.resize(sample, (max(SPEED_SAMPLE_ROWS, *INFERENCE_BATCH.values()), sample.shape[1]))  # small sets tiled
    bfloat16 = bfloat16_check(model, [(d.name, prepare(d.X, final.fit.normalisers[t], final.fit.input_length,
                                                        final.fit.n_channels), d.y) for t, d in enumerate(datasets)])
    speed = measure_speed(model, onnx_session(onnx_bytes), sample, 0, f"logits_{names[0]}", INFERENCE_BATCH,
                          bfloat16=bfloat16["usable"])
    full = full_split.set_index("dataset")
    one = one_split.set_index("dataset")
    tasks = []
    for t, dataset in enumerate(datasets):
        tasks.append({
            "name": dataset.name,
            "class_names": list(dataset.class_names),  # class id k is class_names[k]
            "label_map": dataset.label_map(),
            "label_column": dataset.label_column,
            "columns": dataset.columns,  # the --columns template it was read with (None: the rule's own)
            "input_length": dataset.length,  # samples per channel
            "n_channels": final.fit.n_channels,
            "resampling": resampling_rule(dataset.length, final.fit.input_length),
            "normalisation": final.fit.normalisers[t].state(),
            "temperature": final.temperatures[t],
            "calibration": {**final.calibration[t], "method": "temperature scaling (NLL) on the held-out "
                            "inner part; ECE with 15 equal-width confidence bins on the same rows"},
            "onnx_output": f"logits_{dataset.name}",
            "training_data": {"path": str(dataset.path), "sha256": _file_sha256_or_none(dataset.path),
                              "array_sha256": dataset_sha256(dataset),
                              "rows": dataset.n_rows, "train_rows": final.train_rows[t],
                              "holdout_rows": int(len(final.holdout[t]))},
            "scores": {"full_split": _scores(full, dataset.name, ("n_runs",), suffixes=True),
                       "one_split": _scores(one, dataset.name, ("n_test",), suffixes=False)},
        })
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "family": family, "approach": approach,
        "config": {k: v for k, v in sorted(config.items())},
        "input_length": final.fit.input_length,  # the network's, samples per channel
        "n_channels": final.fit.n_channels,  # a row is (n_channels, input_length) flattened channel-major
        "tasks": tasks,
        "training": {
            "rule": f"all labelled rows but a stratified inner part of {final.inner_val_fraction:g} "
                    "(seeded), early stopping on it as in the full-split reruns",
            "seed": final.seed, "max_epochs": final.max_epochs, "patience": final.patience,
            "metric": final.metric, "inner_val_fraction": final.inner_val_fraction,
            "best_epoch": final.fit.best_epoch, "epochs_run": final.fit.epochs_run,
            "train_seconds": round(final.fit.train_seconds, 3),
            **({"stage1": {
                "rule": "a multi-task net trained on these datasets' rows (each but its inner part), then this "
                        "network, a copy of its trunk and this dataset's head, fine-tuned on this dataset alone; "
                        "epochs and seconds count both stages",
                "datasets": [{"name": d.name, "array_sha256": dataset_sha256(d)} for d in stage1_datasets]}}
               if stage1_datasets else {}),
        },
        "source": source,
        "speed": speed,
        "bfloat16": bfloat16,
        "files": {WEIGHTS_FILE: hashlib.sha256(weights).hexdigest(),
                  ONNX_FILE: hashlib.sha256(onnx_bytes).hexdigest()},
        "onnx": {"input": ONNX_INPUT, "outputs": [f"logits_{n}" for n in names],
                 "input_columns": final.fit.n_channels * final.fit.input_length,
                 "note": "input: normalised and resampled waveforms (see docs/bundle.md); "
                         "probabilities = softmax(logits / temperature)"},
        "versions": {**package_versions(), **versions_of("onnx", "onnxruntime")},
    }
    folder = Path(folder)
    return {folder / METADATA_FILE: (json.dumps(metadata, indent=2, default=_json_default) + "\n").encode(),
            folder / WEIGHTS_FILE: weights,
            folder / ONNX_FILE: onnx_bytes}


def resampling_rule(n_in: int, length: int) -> dict:
    if n_in == length:
        return {"method": "none", "from": n_in, "to": length,
                "rule": f"waveforms must have {n_in} samples; other lengths are refused"}
    return {"method": "linear", "from": n_in, "to": length,
            "rule": f"waveforms of {n_in} samples are resampled to {length} by linear interpolation "
                    f"over the same time window (point i at i*({n_in}-1)/({length}-1) old samples); "
                    "other lengths are refused"}


def _scores(frame, name: str, extra: tuple[str, ...], suffixes: bool) -> dict:
    from tuning.metrics import SCORES

    if name not in frame.index:
        return {}
    row = frame.loc[name]
    keys = [*extra, *(f"{s}_{k}" for s in SCORES for k in ("mean", "std", "ci95_low", "ci95_high"))] \
        if suffixes else [*extra, *SCORES]
    scores = {k: _plain(row[k]) for k in keys if k in row.index}
    for k in extra:  # counts: a row mixing ints and floats reads them back as floats
        if isinstance(scores.get(k), float):
            scores[k] = int(scores[k])
    return scores


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def dataset_sha256(dataset) -> str:
    """sha256 of the data as trained on: the float32 waveforms (row-major) and the class
    labels. It holds even when the CSV has since moved or changed, unlike the file's hash."""
    digest = hashlib.sha256(np.ascontiguousarray(dataset.X, dtype=np.float32).tobytes())
    digest.update("\n".join(dataset.class_names[i] for i in dataset.y).encode())
    return digest.hexdigest()


def _file_sha256_or_none(path) -> str | None:
    """The CSV's own hash; None when it is gone (``tune`` hands the export data in memory)."""
    try:
        return file_sha256(path)
    except OSError:
        return None


def _state_dict_bytes(model) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def onnx_export(model, input_length: int, task_names: Sequence[str]) -> bytes:
    """The network as ONNX bytes: input ``waveforms`` (batch, input_length) where
    ``input_length`` counts every column (channels x samples), dynamic batch; one output
    ``logits_<task>`` per head.

    torch's TorchScript exporter (``dynamo=False``): in torch 2.13 it exports every family
    (FFN, CNN, LSTM, multi-head) in about 0.3 s with only ``onnx`` installed. The
    ``dynamo=True`` exporter gives the same outputs but needs ``onnxscript`` and takes 5-20 s
    per export on this machine; torch warns that the TorchScript exporter will be removed,
    so a torch upgrade past it switches to ``dynamo=True`` with
    ``dynamic_shapes={"x": {0: torch.export.Dim("batch")}}`` and pins onnxscript.
    """
    import warnings

    import torch

    wrapper = _all_heads_class()(model, int(input_length)).eval()
    outputs = [f"logits_{n}" for n in task_names]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice, on every export
        torch.onnx.export(wrapper, (torch.zeros(2, int(input_length)),), buffer, dynamo=False,
                          input_names=[ONNX_INPUT], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in (ONNX_INPUT, *outputs)})
    return buffer.getvalue()


def _all_heads_class():
    import torch
    from torch import nn

    class AllHeads(nn.Module):
        """The trunk once (once per task where its batch norms keep per-task statistics), then
        every head: one output per task. The flat input is cut into
        (batch, channels, samples) by constant slices here, so the exported graph keeps the
        samples axis static (a reshape, the trunks' own included, traces it as dynamic, and
        the exporter cannot size an adaptive pooling by a dynamic axis)."""

        def __init__(self, net, columns: int):
            super().__init__()
            self.net = net
            self.channels = int(getattr(net.trunk, "n_channels", 1))
            self.samples = columns // self.channels

        def forward(self, x: torch.Tensor):
            n = self.samples
            x = torch.stack([x[:, c * n:(c + 1) * n] for c in range(self.channels)], 1)
            if self.net.task_specific_features:  # per-task batch-norm statistics: a trunk pass per task
                return tuple(head(self.net.features(x, t)) for t, head in enumerate(self.net.heads))
            features = self.net.features(x)
            return tuple(head(features) for head in self.net.heads)

    return AllHeads


# ----------------------------------------------------------------------------- inference
def task_logits(model, normaliser: Normaliser, input_length: int, X: np.ndarray, task: int,
                n_channels: int = 1) -> np.ndarray:
    """Raw logits float32 (rows, classes) of raw waveforms ``X`` for head ``task`` (torch)."""
    import torch

    x = prepare(X, normaliser, input_length, n_channels)
    model.eval()
    with torch.inference_mode():
        batch = INFERENCE_BATCH["torch"]
        parts = [model(torch.from_numpy(x[i:i + batch]), task).float().numpy() for i in range(0, len(x), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, model.class_counts[task]), np.float32)


def prepare(X: np.ndarray, normaliser: Normaliser, input_length: int, n_channels: int = 1) -> np.ndarray:
    """The network's input: normalised, then each channel resampled to ``input_length`` (as in training)."""
    return np.ascontiguousarray(resample_to_length(normaliser.transform(X), input_length, n_channels),
                                dtype=np.float32)


class BundleModel:
    """A loaded bundle: sorts raw waveforms into the lab's own labels.

    ``X`` everywhere: a float array (rows, samples) of raw waveforms in the training CSV's
    units, ``samples == model.input_length(task)`` (multi-channel bundles: ``n_channels x
    input_length`` columns, channel-major, as ``Dataset.X``); the bundle normalises and
    resamples them itself. ``task``: a dataset name, needed only for a multi-task bundle.

    * ``predict(X, task=None, min_confidence=None)`` -> str array (rows,): the predicted
      label of each spike (one of ``classes(task)``, or ``"unsorted"`` when its confidence
      is below ``min_confidence``).
    * ``predict_proba(X, task=None)`` -> float64 (rows, len(classes(task))): calibrated
      probabilities (softmax of the logits / the task's temperature), columns in
      ``classes(task)`` order; rows sum to 1.
    * ``logits(X, task=None)`` -> float32 (rows, classes): the network's raw outputs.
    * ``tasks`` (dataset names), ``classes(task)``, ``classes_`` (single-task),
      ``input_length(task)``, ``temperature(task)``, ``metadata`` (bundle.json as a dict).
    """

    def __init__(self, path: Path, metadata: dict, network, backend: str):
        self.path = path
        self.metadata = metadata
        self.backend = backend
        self._network = network  # torch MultiHeadNet, or an onnxruntime InferenceSession
        self._tasks = {t["name"]: i for i, t in enumerate(metadata["tasks"])}
        self._normalisers = [Normaliser.from_state(t["normalisation"]) for t in metadata["tasks"]]
        self._network_length = int(metadata["input_length"])
        self.n_channels = int(metadata.get("n_channels", 1))

    def __repr__(self) -> str:
        return (f"BundleModel({self.metadata['family']!r}, tasks={self.tasks}, backend={self.backend!r}, "
                f"path='{self.path}')")

    @property
    def family(self) -> str:
        return self.metadata["family"]

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def task_name(self, task: str | None = None) -> str:
        """The task's name; ``None`` picks the only one (InputError for an MTL bundle)."""
        if task is None:
            if len(self._tasks) == 1:
                return self.tasks[0]
            raise InputError(f"{self.path}: a multi-task bundle ({', '.join(self.tasks)}); "
                             "choose the head with --task NAME (task=NAME in Python)")
        if task not in self._tasks:
            raise InputError(f"{self.path}: unknown task {task!r}; this bundle's tasks are "
                             f"{', '.join(self.tasks)}")
        return task

    def _spec(self, task) -> tuple[int, dict]:
        index = self._tasks[self.task_name(task)]
        return index, self.metadata["tasks"][index]

    def classes(self, task: str | None = None) -> list[str]:
        return list(self._spec(task)[1]["class_names"])

    @property
    def classes_(self) -> np.ndarray:
        return np.array(self.classes(None))

    def input_length(self, task: str | None = None) -> int:
        return int(self._spec(task)[1]["input_length"])

    def temperature(self, task: str | None = None) -> float:
        return float(self._spec(task)[1]["temperature"])

    def check_length(self, n_columns: int, task: str | None = None, source: str = "input") -> None:
        """InputError naming both lengths unless ``n_columns`` (channels x samples) is what the
        task takes."""
        index, spec = self._spec(task)
        want = self.n_channels * spec["input_length"]
        if n_columns != want:
            rule = spec["resampling"]
            how = (f"; the bundle resamples {rule['from']} to {rule['to']} itself, from no other length"
                   if rule["method"] != "none" else "")
            if self.n_channels == 1:
                raise InputError(f"{source}: waveforms have {n_columns} samples but the bundle's task "
                                 f"{spec['name']!r} takes {want} (the length of its training data){how}; "
                                 f"resample or cut the waveforms to {want} samples")
            raise InputError(f"{source}: waveforms have {n_columns} values but the bundle's task {spec['name']!r} "
                             f"takes {self.n_channels} channels x {spec['input_length']} samples = {want} "
                             f"(its training data){how}")

    def logits(self, X, task: str | None = None) -> np.ndarray:
        index, spec = self._spec(task)
        X = self._check_input(X, task)
        x = prepare(X, self._normalisers[index], self._network_length, self.n_channels)
        batch = INFERENCE_BATCH[self.backend]
        if self.backend in ("torch", "torch-bf16"):
            import torch

            with torch.inference_mode():
                parts = [self._network(torch.from_numpy(x[i:i + batch]), index).numpy()
                         for i in range(0, len(x), batch)]
        else:
            output = self.metadata["onnx"]["outputs"][index]
            parts = [self._network.run([output], {ONNX_INPUT: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
        return np.concatenate(parts) if parts else np.zeros((0, len(spec["class_names"])), np.float32)

    def predict_proba(self, X, task: str | None = None) -> np.ndarray:
        from tuning.calibration import softmax

        return softmax(self.logits(X, task), self.temperature(task))

    def predict(self, X, task: str | None = None, min_confidence: float | None = None) -> np.ndarray:
        if min_confidence is None:
            return np.array(self.classes(task), dtype=object)[self.logits(X, task).argmax(1)].astype(str)
        return self.labels_from_proba(self.predict_proba(X, task), task, min_confidence)

    def labels_from_proba(self, probabilities: np.ndarray, task: str | None = None,
                          min_confidence: float | None = None) -> np.ndarray:
        """Labels of the most probable classes; ``"unsorted"`` where the top probability is
        below ``min_confidence``."""
        labels = np.array(self.classes(task), dtype=object)[probabilities.argmax(1)]
        if min_confidence is not None:
            labels[probabilities.max(1) < float(min_confidence)] = UNSORTED
        return labels.astype(str)

    def _check_input(self, X, task) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2:
            raise InputError(f"X must be 2-D (spikes, samples), got shape {X.shape}")
        if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
            raise InputError(f"X must hold real numbers, got dtype {X.dtype}")
        self.check_length(int(X.shape[1]), task, source="X")
        if not np.isfinite(X).all():
            row = int(np.argwhere(~np.isfinite(X))[0][0])
            raise InputError(f"X row {row} holds NaN or inf; waveforms must be finite numbers")
        return X


def load_model(path: str | Path, backend: str = "torch", threads: int | None = None) -> BundleModel:
    """Load the bundle in folder ``path`` (``results/<Approach>/Model/<DATASET>``).

    ``backend``: ``"torch"`` (weights.pt) or ``"onnx"`` (model.onnx through ONNX Runtime),
    which give the same logits within 1e-4, or ``"torch-bf16"`` (weights.pt in bfloat16:
    faster on CPUs with native bfloat16, labels checked at export to agree with float32's on
    >= 99.5% of the training rows; refused for a bundle that failed that check). ``threads``: CPU threads for inference (None:
    the library's default). Raises :class:`tuning.errors.InputError` for a missing,
    corrupt or incompatible bundle.
    """
    path = Path(path).expanduser()
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    metadata = read_metadata(path)
    if backend == "torch":
        network = _load_torch(path, metadata, threads)
    elif backend == "torch-bf16":
        check = metadata.get("bfloat16")
        if not check:
            raise InputError(f"{path}: this bundle was exported before the bfloat16 check; export the experiment "
                             "again, or use --backend torch")
        if not check["usable"]:
            worst = min(check["tasks"], key=lambda r: r["agreement"])
            raise InputError(f"{path}: bfloat16 changes this network's labels too often (on {worst['task']} its "
                             f"labels agreed with float32 on {100 * worst['agreement']:.2f}% of the rows; the rule: "
                             f"{check['rule']}); use --backend torch")
        network = BFloat16Network(_load_torch(path, metadata, threads))
    else:
        network = _load_onnx(path, metadata, threads)
    return BundleModel(path, metadata, network, backend)


def read_metadata(path: Path) -> dict:
    if not path.exists():
        raise InputError(f"{path}: no such model bundle; the export writes them under "
                         f"results/<Approach>/{MODEL_FOLDER}/<DATASET>/")
    if not path.is_dir():
        raise InputError(f"{path}: a model bundle is a folder (results/<Approach>/{MODEL_FOLDER}/<DATASET>/), "
                         "not a file")
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise InputError(f"{path}: not a model bundle (no {METADATA_FILE}); the export writes them under "
                         f"results/<Approach>/{MODEL_FOLDER}/<DATASET>/")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{meta_path}: corrupt bundle metadata ({type(error).__name__}: {error}); "
                         "export the experiment again") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise InputError(f"{meta_path}: not a spikesort-tune model bundle (no format {FORMAT!r})")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(f"{path}: bundle format version {version!r}, but this spikesort-tune reads "
                         f"version {FORMAT_VERSION}; export the experiment again with this version "
                         "(python -m tuning export EXPERIMENT_DIR), or use the version that wrote it "
                         f"({(metadata.get('versions') or {}).get('spikesort-tune', 'unknown')})")
    missing = [k for k in ("family", "config", "input_length", "tasks", "files", "onnx") if k not in metadata]
    if missing or not metadata["tasks"]:
        raise InputError(f"{meta_path}: corrupt bundle metadata (missing {', '.join(missing) or 'tasks'}); "
                         "export the experiment again")
    return metadata


def _checked_bytes(path: Path, name: str, metadata: dict) -> bytes:
    target = path / name
    if not target.is_file():
        raise InputError(f"{path}: incomplete model bundle: {name} is missing; export the experiment again")
    content = target.read_bytes()
    if hashlib.sha256(content).hexdigest() != metadata["files"].get(name):
        raise InputError(f"{target}: corrupt (its sha256 differs from the one in {METADATA_FILE}); "
                         "export the experiment again")
    return content


def _load_torch(path: Path, metadata: dict, threads: int | None):
    import torch

    import models

    content = _checked_bytes(path, WEIGHTS_FILE, metadata)
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        state = torch.load(io.BytesIO(content), weights_only=True, map_location="cpu")
        network = models.build_model(metadata["family"], metadata["config"], int(metadata["input_length"]),
                                     [len(t["class_names"]) for t in metadata["tasks"]],
                                     int(metadata.get("n_channels", 1)))
        network.load_state_dict(state)
    except Exception as error:  # torch raises RuntimeError / UnpicklingError / KeyError ...
        raise InputError(f"{path / WEIGHTS_FILE}: cannot be loaded into the bundle's network "
                         f"({type(error).__name__}: {str(error).splitlines()[0][:160]}); "
                         "export the experiment again") from None
    return network.eval()


def _load_onnx(path: Path, metadata: dict, threads: int | None):
    content = _checked_bytes(path, ONNX_FILE, metadata)
    try:
        return onnx_session(content, threads)
    except Exception as error:
        raise InputError(f"{path / ONNX_FILE}: ONNX Runtime cannot load it ({type(error).__name__}); "
                         "export the experiment again") from None


def onnx_session(content: bytes, threads: int | None = None):
    """An ONNX Runtime session for the bundle's model: every graph optimisation, one
    operator at a time (the graph is a chain: no use for parallel operators) on ``threads``
    threads (None: ONNX Runtime's default, the physical cores), whose idle threads sleep
    instead of spinning: beside predict's reading and writing threads (or anything else on the
    machine) spinning threads stole the cores; measured on a 0.17-MFLOP CNN bundle, predict on
    a million spikes ran 25% faster (185,000 to 230,000 spikes/s) for 3.5% less in memory."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    return onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])
