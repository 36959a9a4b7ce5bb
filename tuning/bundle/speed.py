"""How fast a bundle sorts: measured once, where it is exported, and recorded in bundle.json.

A lab choosing between a slightly better and a much faster network needs both numbers side
by side, so the export measures every bundle it writes (:func:`measure_speed`) and prints the
result beside the accuracy:

* ``flops_per_spike``: floating-point operations of one forward pass of one spike
  (:func:`models.flops.flops_per_spike`, the count the search's compute cap uses).
* ``spikes_per_s``: spikes sorted per wall-clock second by each backend (torch, ONNX
  Runtime, and torch in bfloat16 where the bundle passed :func:`bfloat16_check`) on waveforms of the training data, in the batches ``predict`` uses, after one warm-up batch, for about
  :data:`MEASURE_SECONDS`; the network's work only (the waveforms are already normalised):
  the ``predict`` command adds the CSV's reading and writing. A rough figure: whatever else
  ran on the machine at that moment slows it (the load is recorded beside it).
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from models.flops import flops_per_spike

MEASURE_SECONDS = 0.2  # per backend: enough for a stable rate on a fast CNN, cheap on every export
MEASURE_MAX_BATCHES = 32
BF16_AGREEMENT = 0.995  # bfloat16 labels against float32's, on every row of each dataset
BF16_ACCURACY_POINTS = 0.2  # and accuracy within this many points of float32's


class BFloat16Network:
    """A float32 network run in bfloat16 (weights and activations; about 3 significant
    digits): called like the network, ``(x float32, task) -> float32 logits``. Fast where the
    CPU computes bfloat16 natively (AVX512-BF16, AMX), slow where it does not: the speed the
    export records says which."""

    def __init__(self, network):
        import copy

        import torch

        self.network = copy.deepcopy(network).to(torch.bfloat16).eval()

    def __call__(self, x, task):
        import torch

        return self.network(x.to(torch.bfloat16), task).float()

    def eval(self):  # already in eval mode; called like a network's
        return self


def bfloat16_check(network, tasks) -> dict:
    """Whether the network may run in bfloat16: its labels against float32's on every row of
    each task, and both accuracies. ``tasks``: (name, network input float32, labels) per task.
    Usable when every task agrees on >= :data:`BF16_AGREEMENT` of its rows and its accuracy is
    within :data:`BF16_ACCURACY_POINTS` points (the rows trained the network: a check that
    the two agree, not an estimate of accuracy on new spikes)."""
    import torch

    from tuning.training import predict_labels

    reduced = BFloat16Network(network)
    per_task = []
    for t, (name, x, y) in enumerate(tasks):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        full, low = predict_labels(network, x, t), predict_labels(reduced, x, t)
        per_task.append({"task": name, "rows": int(len(y)), "agreement": float(np.mean(full == low)),
                         "accuracy_float32": float(np.mean(full == y)),
                         "accuracy_bfloat16": float(np.mean(low == y))})
    usable = all(r["agreement"] >= BF16_AGREEMENT
                 and abs(r["accuracy_float32"] - r["accuracy_bfloat16"]) * 100 <= BF16_ACCURACY_POINTS
                 for r in per_task)
    return {"usable": usable, "tasks": per_task,
            "rule": f"labels agree with float32 on >= {100 * BF16_AGREEMENT:g}% of each dataset's rows and accuracy "
                    f"within {BF16_ACCURACY_POINTS:g} points"}


def _rate(run_batch, x: np.ndarray, batch: int, seconds: float = MEASURE_SECONDS,
          max_batches: int = MEASURE_MAX_BATCHES) -> float:
    """Spikes per second of ``run_batch`` over batches of ``x``, for about ``seconds`` (at most
    ``max_batches`` batches)."""
    run_batch(x[:min(len(x), batch)])  # warm-up: first-call allocations and kernel choice
    done, started = 0, time.perf_counter()
    for k in range(max_batches):
        start = (k * batch) % len(x)
        part = x[start:start + batch]
        run_batch(part)
        done += len(part)
        if time.perf_counter() - started >= seconds:
            break
    return done / max(time.perf_counter() - started, 1e-9)


def measure_speed(network, session, x: np.ndarray, task: int, output_name: str, batch: dict,
                  bfloat16: bool = False, seconds: float = MEASURE_SECONDS,
                  max_batches: int = MEASURE_MAX_BATCHES) -> dict:
    """The ``speed`` record of bundle.json: ``network`` (torch) and ``session`` (its ONNX
    Runtime session) timed on ``x``, normalised and resampled network input float32 (rows,
    columns), a few thousand rows of the training data, in batches of ``batch[backend]``;
    ``bfloat16``: time the ``torch-bf16`` backend too (the bundle passed its check);
    each backend timed for about ``seconds``, at most ``max_batches`` batches (the export's short
    glance by default; a benchmark asks for longer)."""
    import torch

    x = np.ascontiguousarray(x, dtype=np.float32)
    network.eval()

    def torch_batch(part):
        with torch.inference_mode():
            network(torch.from_numpy(part), task)

    def onnx_batch(part):
        session.run([output_name], {session.get_inputs()[0].name: part})

    def rate(run_batch, backend):
        return _rate(run_batch, x, batch[backend], seconds, max_batches)

    rates = {"torch": rate(torch_batch, "torch"), "onnx": rate(onnx_batch, "onnx")}
    if bfloat16:
        reduced = BFloat16Network(network)

        def bf16_batch(part):
            with torch.inference_mode():
                reduced(torch.from_numpy(part), task)

        rates["torch-bf16"] = rate(bf16_batch, "torch-bf16")
    fastest = max(rates, key=rates.get)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "flops_per_spike": flops_per_spike(network, x.shape[1], task),
        "spikes_per_s": {name: round(rate) for name, rate in rates.items()},
        "fastest_backend": fastest,
        "batch": dict(batch),
        "threads": {"torch": torch.get_num_threads(),
                    "onnx": session.get_session_options().intra_op_num_threads or "default (physical cores)"},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "load_1min": None if load is None else round(load, 2)},
        "note": "the network's work on normalised waveforms, measured once at export (about "
                f"{seconds:g} s a backend); predict adds reading and writing the CSV",
    }


def speed_line(speed: dict | None) -> str:
    """``112,000 spikes/s (onnx; torch 98,000), 0.35 MFLOP a spike`` or ``""``."""
    if not speed:
        return ""
    rates = speed["spikes_per_s"]
    fastest = speed.get("fastest_backend") or max(rates, key=rates.get)
    others = ", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items() if name != fastest)
    return (f"{rates[fastest]:,.0f} spikes/s ({fastest}{'; ' + others if others else ''}), "
            f"{speed['flops_per_spike'] / 1e6:.2g} MFLOP a spike")
