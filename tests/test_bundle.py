"""Model bundles (issue 11): what the export keeps, load_model, the ONNX twin, calibration.

The bundles are trained in this process by the export's own final-model code
(``tuning.bundle.model_bundle.train_final``, which calls ``tuning.training.fit``), once per session
(fixtures ``cnn_bundle`` and ``mtl_bundle`` in conftest.py). The export's writing of them is
tested in test_export.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tuning.bundle import model_bundle
from tuning.calibration import expected_calibration_error, fit_temperature, softmax
from tuning.errors import InputError
from tuning.data.splits import tuning_split

ROOT = Path(__file__).resolve().parents[1]


def test_saved_bundle_predicts_exactly_what_the_in_memory_model_predicted(cnn_bundle):
    folder, final, dataset = cnn_bundle
    model = model_bundle.load_model(folder)
    in_memory = np.array(dataset.class_names)[final.fit.predict(dataset.X)]
    assert model.predict(dataset.X).tolist() == in_memory.tolist()
    # The logits too, bit for bit: same weights, same pre-processing.
    expected = model_bundle.task_logits(final.fit.model, final.fit.normalisers[0], final.fit.input_length, dataset.X, 0)
    assert np.array_equal(model.logits(dataset.X), expected)
    # And it learnt something: the tiny classes are separable.
    assert np.mean(in_memory == np.array(dataset.class_names)[dataset.y]) > 0.8


def test_bundle_holds_what_the_issue_lists(cnn_bundle):
    import torch

    folder, final, dataset = cnn_bundle
    assert sorted(p.name for p in folder.iterdir()) == ["bundle.json", "model.onnx", "weights.pt"]
    meta = json.loads((folder / "bundle.json").read_text())
    assert meta["format_version"] == model_bundle.FORMAT_VERSION and meta["family"] == "cnn"
    assert meta["config"]["cnn_channels_b0"] == 8 and meta["input_length"] == 48
    state = torch.load(folder / "weights.pt", weights_only=True)
    assert set(state) == set(final.fit.model.state_dict())
    task = meta["tasks"][0]
    assert task["name"] == "T3" and task["label_column"] == "Track"
    assert task["class_names"] == ["unit_a", "unit_b", "unit_c"]
    assert task["label_map"] == {"unit_a": 0, "unit_b": 1, "unit_c": 2} == dataset.label_map()
    assert task["normalisation"]["mode"] == "global" and task["normalisation"]["std"] > 0
    assert task["resampling"]["method"] == "none" and "48" in task["resampling"]["rule"]
    assert task["training_data"]["sha256"] == hashlib.sha256(dataset.path.read_bytes()).hexdigest()
    assert task["training_data"]["array_sha256"] == model_bundle.dataset_sha256(dataset)
    assert task["training_data"]["train_rows"] + task["training_data"]["holdout_rows"] == dataset.n_rows
    assert task["scores"]["full_split"]["accuracy_mean"] == 0.9 and task["scores"]["full_split"]["n_runs"] == 4
    assert task["scores"]["one_split"]["accuracy"] == 0.9
    assert {"torch", "numpy", "onnx", "onnxruntime", "python"} <= set(meta["versions"])
    assert meta["training"]["best_epoch"] >= 1 and meta["training"]["epochs_run"] >= meta["training"]["best_epoch"]
    for name, digest in meta["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest


def test_holdout_rows_were_not_trained_on_and_reproduce_the_recorded_calibration(cnn_bundle):
    folder, final, dataset = cnn_bundle
    model = model_bundle.load_model(folder)
    task = model.metadata["tasks"][0]
    holdout = tuning_split(dataset.y, 0, 0.15, 0.0).val  # the rule stated in the bundle: seed 0, 15%
    assert np.array_equal(holdout, final.holdout[0]) and len(holdout) == task["training_data"]["holdout_rows"]
    probabilities = model.predict_proba(dataset.X[holdout])
    y = dataset.y[holdout]
    assert task["calibration"]["accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == y))
    assert task["calibration"]["ece_after"] == pytest.approx(expected_calibration_error(probabilities, y), abs=1e-9)
    assert task["calibration"]["ece_before"] == pytest.approx(
        expected_calibration_error(softmax(model.logits(dataset.X[holdout])), y), abs=1e-9)
    assert task["temperature"] == pytest.approx(fit_temperature(model.logits(dataset.X[holdout]), y), rel=1e-6)


def test_temperature_scaling_lowers_the_calibration_error_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    n, k = 3000, 4
    y = rng.integers(0, k, n)
    believed = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))  # right about 3/4 of the time
    logits = 6.0 * np.eye(k)[believed] + rng.normal(0, 1.0, (n, k))   # ...but almost always sure
    before = expected_calibration_error(softmax(logits), y)
    temperature = fit_temperature(logits, y)
    after = expected_calibration_error(softmax(logits, temperature), y)
    assert temperature > 1.5  # softened
    assert after < before / 2, (before, after)
    assert softmax(logits, temperature).argmax(1).tolist() == logits.argmax(1).tolist()  # labels unchanged


def test_onnx_twin_matches_torch_within_1e_4(cnn_bundle):
    import onnxruntime

    folder, final, dataset = cnn_bundle
    torch_model = model_bundle.load_model(folder)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["waveforms"]
    assert [o.name for o in session.get_outputs()] == ["logits_T3"]
    x = model_bundle.prepare(dataset.X, final.fit.normalisers[0], 48)
    for rows in (x[:1], x[:37], x):  # a dynamic batch axis
        onnx_logits = session.run(None, {"waveforms": rows})[0]
        assert onnx_logits.shape == (len(rows), 3)
        assert np.abs(onnx_logits - torch_model.logits(dataset.X[:len(rows)])).max() <= 1e-4
    onnx_model = model_bundle.load_model(folder, backend="onnx")
    assert np.abs(onnx_model.predict_proba(dataset.X) - torch_model.predict_proba(dataset.X)).max() <= 1e-4


def test_predict_proba_shapes_labels_and_min_confidence(cnn_bundle):
    folder, _, dataset = cnn_bundle
    model = model_bundle.load_model(folder)
    probabilities = model.predict_proba(dataset.X[:10])
    assert probabilities.shape == (10, 3) and np.allclose(probabilities.sum(1), 1.0)
    assert model.classes_.tolist() == model.classes() == ["unit_a", "unit_b", "unit_c"]
    labels = model.predict(dataset.X)
    assert model.predict(dataset.X, min_confidence=0.0).tolist() == labels.tolist()
    at_one = model.predict(dataset.X, min_confidence=1.0)
    sure = model.predict_proba(dataset.X).max(1) >= 1.0
    assert at_one.tolist() == np.where(sure, labels, "unsorted").tolist()
    assert (at_one == "unsorted").sum() > len(labels) // 2


def test_mtl_bundle_predicts_per_task(mtl_bundle):
    folder, final, (t2, t5) = mtl_bundle
    model = model_bundle.load_model(folder)
    assert model.tasks == ["T2", "T5"] and folder.name == "T2+T5"
    assert model.classes("T2") == ["0", "1"] and model.classes("T5") == ["3", "4"]
    assert (model.input_length("T2"), model.input_length("T5")) == (48, 40)
    assert model.metadata["tasks"][1]["resampling"]["method"] == "linear"
    for index, dataset in enumerate((t2, t5)):
        expected = np.array(dataset.class_names)[final.fit.predict(dataset.X, index)]
        assert model.predict(dataset.X, task=dataset.name).tolist() == expected.tolist()
    onnx_model = model_bundle.load_model(folder, backend="onnx")
    assert np.abs(onnx_model.logits(t5.X, "T5") - model.logits(t5.X, "T5")).max() <= 1e-4
    with pytest.raises(InputError, match="multi-task bundle .*--task"):
        model.predict(t2.X)
    with pytest.raises(InputError, match="unknown task 'T9'.*T2, T5"):
        model.predict(t2.X, task="T9")
    with pytest.raises(InputError, match="48 samples .* task 'T5' takes 40.* resamples 40 to 48"):
        model.predict(t2.X, task="T5")


def test_bad_arrays_are_refused(cnn_bundle):
    folder, _, dataset = cnn_bundle
    model = model_bundle.load_model(folder)
    with pytest.raises(InputError, match="47 samples .* takes 48"):
        model.predict(dataset.X[:, :47])
    bad = dataset.X[:5].copy()
    bad[3, 7] = np.nan
    with pytest.raises(InputError, match="row 3 holds NaN"):
        model.predict_proba(bad)
    with pytest.raises(InputError, match="2-D"):
        model.predict(dataset.X[0])


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(folder, target)
    return target


@pytest.mark.parametrize("damage, message", [
    ("missing", "no such model bundle"),
    ("no_metadata", "not a model bundle"),
    ("corrupt_metadata", "corrupt bundle metadata"),
    ("future_version", "bundle format version 99, but this spikesort-tune reads version 1"),
    ("corrupt_weights", "weights.pt: corrupt"),
    ("missing_weights", "weights.pt is missing"),
])
def test_broken_bundles_are_refused(cnn_bundle, tmp_path, damage, message):
    folder = _copy(cnn_bundle[0], tmp_path)
    meta = folder / "bundle.json"
    if damage == "missing":
        shutil.rmtree(folder)
    elif damage == "no_metadata":
        meta.unlink()
    elif damage == "corrupt_metadata":
        meta.write_text(meta.read_text()[:200])
    elif damage == "future_version":
        meta.write_text(meta.read_text().replace('"format_version": 1', '"format_version": 99'))
    elif damage == "corrupt_weights":
        data = bytearray((folder / "weights.pt").read_bytes())
        data[-100] ^= 0xFF
        (folder / "weights.pt").write_bytes(bytes(data))
    elif damage == "missing_weights":
        (folder / "weights.pt").unlink()
    with pytest.raises(InputError, match=message):
        model_bundle.load_model(folder)


def test_onnx_backend_checks_its_file(cnn_bundle, tmp_path):
    folder = _copy(cnn_bundle[0], tmp_path)
    (folder / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(InputError, match="model.onnx: corrupt"):
        model_bundle.load_model(folder, backend="onnx")
    model_bundle.load_model(folder)  # the torch side does not need it


@pytest.mark.subprocess
def test_load_model_from_the_package_without_importing_torch_on_import_tuning(cnn_bundle):
    code = ("import sys, tuning; assert 'torch' not in sys.modules, 'import tuning loaded torch'; "
            "from tuning import load_model; "
            f"m = load_model({str(cnn_bundle[0])!r}); print(type(m).__name__, m.tasks)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "BundleModel ['T3']"


def test_weights_load_with_weights_only(cnn_bundle):
    import torch

    buffer = io.BytesIO((cnn_bundle[0] / "weights.pt").read_bytes())
    state = torch.load(buffer, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


@pytest.mark.parametrize("family, config", [
    ("ffn", {"ffn_n_layers": 2, "batch_norm": True}),
    ("cnn", {"cnn_n_blocks": 3, "cnn_global_pool": "flatten", "cnn_dense_units": 8, "batch_norm": True}),
    ("lstm", {"lstm_hidden": 8, "lstm_layers": 2, "bidirectional": True, "lstm_input_stride": 2}),
    ("lstm", {"lstm_hidden": 8, "lstm_readout": "mean"}),
    ("mtl-cnn", {"head_hidden": 4}),
    ("mtl-cnn", {"cnn_n_blocks": 2, "batch_norm": True}),  # per-task batch-norm statistics: a trunk pass per task
    ("mtl-ffn", {"ffn_n_layers": 2, "batch_norm": True}),
])
def test_onnx_export_of_every_family_matches_torch(family, config):
    """Untrained networks (random weights) of every family: the exported graph computes the same."""
    import onnxruntime
    import torch

    import models
    from models.mtl import TaskBatchNorm

    torch.manual_seed(0)
    counts = [3, 2] if family.startswith("mtl-") else [3]
    net = models.build_model(family, config, 40, counts).eval()
    for module in net.modules():  # batch-norm statistics that are not the identity
        if isinstance(module, (torch.nn.BatchNorm1d, TaskBatchNorm)):  # TaskBatchNorm: different per task
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    names = ["A", "B"][:len(counts)]
    session = onnxruntime.InferenceSession(model_bundle.onnx_export(net, 40, names), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(33, 40)).astype(np.float32)
    outputs = session.run(None, {"waveforms": x})
    with torch.no_grad():
        for task, output in enumerate(outputs):
            assert np.abs(output - net(torch.from_numpy(x), task).numpy()).max() <= 1e-4
