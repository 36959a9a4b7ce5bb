"""GPU paths: run only where CUDA is present (skipped on CPU-only machines and in CI)."""

import numpy as np
import pytest
import torch

from tuning.training import TaskData, fit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _task(rng, name, n_classes, length=48, rows=200):
    y = np.repeat(np.arange(n_classes), rows // n_classes)
    X = (rng.normal(size=(len(y), length)) + y[:, None] * 1.5).astype(np.float32)
    half = len(y) // 2
    order = rng.permutation(len(y))
    return TaskData(name, n_classes, X[order[:half]], y[order[:half]], X[order[half:]], y[order[half:]])


def test_fit_trains_on_cuda_and_predicts_like_the_cpu_result_would():
    rng = np.random.default_rng(0)
    tasks = [_task(rng, "G2", 2), _task(rng, "G3", 3, length=64)]
    result = fit("mtl-cnn", {"batch_norm": True}, tasks, max_epochs=5, seed=0, device="cuda")
    assert next(result.model.parameters()).device.type == "cuda"
    for index, task in enumerate(tasks):
        predicted = result.predict(task.X_val, index)
        assert predicted.shape == task.y_val.shape
        assert (predicted == task.y_val).mean() > 1.0 / task.n_classes + 0.2
