"""Predict throughput of the bundle a lab gets: every inference path tried, side by side, and
the ``predict`` command end to end on a 1,000,000-spike CSV.

The bundle: ``--bundle`` (for instance ``results/Classic CNN PyTorch/Model/A12`` after
``scripts/tune.sh cnn A12``); without it, the default ``python -m tuning tune cnn A12`` runs
first, in a temporary folder (tens of minutes on two cores), and its bundle is measured.
``--quick`` (tests): a small CNN trained for one epoch by the export's own final-model code.

The spikes: ``--spikes`` rows drawn (seeded) from the dataset's waveforms plus Gaussian
noise (5% of their standard deviation), float32, in memory; each keeps its source row's
label, so every path's accuracy is measured too.

The paths (:data:`PATHS`): what ``load_model(bundle, backend).predict_proba`` does (the kept
paths: ``torch`` and ``onnx``), and the variants tried against them: other batch sizes
(the old 16,384), one thread, TorchScript frozen for inference, the network in bfloat16, and
ONNX Runtime on a static int8 quantisation of the model (QDQ, per-channel weights,
calibrated on 2,048 training waveforms; all layers, or all but the first and the last).
Reduced precision is usable only if its labels agree with the float model's on >= 99.5% of
the spikes and its accuracy is within 0.2 points. Each measurement runs in a fresh Python
process: load, one warm-up call, then ``predict_proba`` on chunks of ``--chunk`` spikes (as
``predict`` does), timed from the first chunk to the last; the paths alternate order over
``--reps`` repetitions; the table shows the median and the range.

Also reported: FLOPs per spike (:func:`models.flops.flops_per_spike`) and the share
of the machine's measured peak (a 2,048 x 2,048 float32 matrix product in torch on
``--threads`` threads) each path reaches. The end-to-end row runs ``python -m tuning predict``
on a CSV of ``--cli-spikes`` spikes (no labels) with the fastest kept backend, against that
backend's in-memory rate (target: >= 60%).

    python -m benchmarks.predict_throughput --bundle "results/Classic CNN PyTorch/Model/A12"
    python -m benchmarks.predict_throughput            # runs the default tune first
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

SECTION = "predict_throughput"
TARGET = 100_000  # spikes per second on 2 cores
END_TO_END_SHARE = 0.6  # predict on a CSV: at least this share of the in-memory rate
AGREEMENT = 0.995  # a quantised model's labels against the float model's
ACCURACY_POINTS = 0.2  # a quantised model's accuracy within this many points of the float model's
KEPT = ("torch", "onnx")
PATHS = {  # name: (backend, batch (None: the kept INFERENCE_BATCH), threads (None: --threads), variant)
    "torch": ("torch", None, None, ""),
    "onnx": ("onnx", None, None, ""),
    "torch, batch 16384": ("torch", 16384, None, ""),
    "torch, batch 256": ("torch", 256, None, ""),
    "torch, batch 4096": ("torch", 4096, None, ""),
    "torch, 1 thread": ("torch", None, 1, ""),
    "torch, TorchScript frozen": ("torch", None, None, "torchscript"),
    "torch, bfloat16": ("torch", None, None, "bf16"),
    "onnx, batch 16384": ("onnx", 16384, None, ""),
    "onnx, int8 (static QDQ)": ("onnx", None, None, "int8"),
    "onnx, int8, first and last layer float": ("onnx", None, None, "int8-inner"),
}
QUICK_PATHS = ("torch", "onnx", "torch, batch 16384", "torch, bfloat16", "onnx, int8 (static QDQ)")
REDUCED_PRECISION = ("bf16", "int8", "int8-inner")  # judged by the agreement rule, not kept by speed alone
QUICK_CONFIG = {"family": "cnn", "normalisation": "global"}
"""The CNN family's default network (models.cnn's defaults), for --quick."""
CALIBRATION_ROWS = 2048


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="A12", help="dataset the spikes are drawn from (and the tune runs on)")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--bundle", default=None, help="measure this bundle (default: run the default tune first)")
    p.add_argument("--spikes", type=int, default=None, help="spikes of the kept paths (default 1,000,000)")
    p.add_argument("--variant-spikes", type=int, default=None,
                   help="spikes of the variants tried (default 200,000; a slow variant need not sort a million)")
    p.add_argument("--cli-spikes", type=int, default=None,
                   help="spikes of the end-to-end CSV run (default 1,000,000; 0: skip)")
    p.add_argument("--chunk", type=int, default=50_000, help="spikes per predict_proba call (predict's chunk)")
    p.add_argument("--threads", type=int, default=2, help="inference threads (default 2: this machine's cores)")
    p.add_argument("--reps", type=int, default=None, help="default 3")
    p.add_argument("--paths", default=None, help="comma list of paths to measure (default: all)")
    p.add_argument("--results-md", default=None,
                   help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true",
                   help="a small bundle trained for one epoch; 20,000 spikes, 1 repetition, 2,000 end to end")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one measurement of this path
    p.add_argument("--labels-out", default=None, help=argparse.SUPPRESS)  # internal: its predicted classes
    args = p.parse_args(argv)
    defaults = dict(spikes=20_000, variant_spikes=20_000, cli_spikes=2_000, reps=1) if args.quick else \
        dict(spikes=1_000_000, variant_spikes=200_000, cli_spikes=1_000_000, reps=3)
    for name, value in defaults.items():  # --quick shrinks only what was not given
        if getattr(args, name) is None:
            setattr(args, name, value)
    names = [n.strip() for n in args.paths.split(",")] if args.paths else \
        list(QUICK_PATHS if args.quick else PATHS)
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        p.error(f"unknown path(s) {', '.join(unknown)}; choose from: {'; '.join(PATHS)}")
    args.paths = [n for n in names if n in KEPT] + [n for n in names if n not in KEPT]
    return args


def make_spikes(dataset, n: int, seed: int = 0, chunk: int = 50_000):
    """float32 (n, length) waveforms and their source rows' class ids, filled a chunk at a time
    so that making them does not set the peak."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scale = 0.05 * float(dataset.X.std())
    X = np.empty((n, dataset.X.shape[1]), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    for i in range(0, n, chunk):
        rows = rng.integers(0, dataset.n_rows, min(chunk, n - i))
        X[i:i + len(rows)] = dataset.X[rows] + rng.normal(0, scale, (len(rows), X.shape[1])).astype(np.float32)
        y[i:i + len(rows)] = dataset.y[rows]
    return X, y


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def quantised_onnx(bundle: Path, dataset, out: Path, keep_ends_float: bool = False) -> Path:
    """The bundle's ONNX model quantised to int8 (static, QDQ, per-channel weights),
    calibrated on the first :data:`CALIBRATION_ROWS` training waveforms (normalised as the
    bundle does)."""
    from tuning.bundle.model_bundle import ONNX_FILE, load_model, prepare

    model = load_model(bundle, backend="onnx")
    x = prepare(dataset.X[:CALIBRATION_ROWS], model._normalisers[0], model._network_length, model.n_channels)
    # onnxruntime.quantization after the bundle's network is built: it must not shadow this project's modules
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    class Batches(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"waveforms": x[i:i + 256]} for i in range(0, len(x), 256)])

        def get_next(self):
            return next(self._batches, None)

    import onnx

    prepared = out.with_suffix(".pre.onnx")
    quant_pre_process(str(bundle / ONNX_FILE), str(prepared))
    nodes = [n for n in onnx.load(str(prepared)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    exclude = [nodes[0].name, nodes[-1].name] if keep_ends_float and len(nodes) > 2 else []
    quantize_static(str(prepared), str(out), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    return out


def worker(args) -> int:
    """One measurement of path ``args.worker`` in this fresh process; prints one JSON line."""
    import numpy as np

    from tuning.bundle import model_bundle
    from tuning.data.readers import load_dataset

    backend, batch, threads, variant = PATHS[args.worker]
    dataset = load_dataset(Path(args.data_dir) / f"{args.dataset}.csv", min_rows_per_class=1)
    X, y = make_spikes(dataset, args.spikes)
    if batch is not None:
        model_bundle.INFERENCE_BATCH = {**model_bundle.INFERENCE_BATCH, backend: batch}  # read at each call
    model = model_bundle.load_model(args.bundle, backend=backend, threads=threads or args.threads)
    if variant == "torchscript":
        model._network = _frozen(model._network, model.n_channels * model._network_length)
    elif variant == "bf16":
        from tuning.bundle.speed import BFloat16Network

        model._network = BFloat16Network(model._network)  # the product's torch-bf16, on any bundle
    elif variant.startswith("int8"):
        model._network = model_bundle.onnx_session(Path(args.int8[variant]).read_bytes(), threads or args.threads)
    model.predict_proba(X[:1000])  # warm-up: first-call allocations and kernel selection
    before = peak_rss_mib()
    labels = np.empty(len(X), dtype=np.int64)
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(X), args.chunk):
        labels[i:i + args.chunk] = model.predict_proba(X[i:i + args.chunk]).argmax(1)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if args.labels_out:
        np.save(args.labels_out, labels)
    print(json.dumps({"path": args.worker, "spikes": len(X), "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "accuracy": float(np.mean(labels == y)), "peak_mib": peak_rss_mib(), "before_mib": before}))
    return 0


def _frozen(network, columns: int):
    """The network traced for head 0 and frozen for inference (TorchScript), called as the bundle calls it."""
    import torch

    class Head0(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x, 0)

    with torch.no_grad():
        traced = torch.jit.trace(Head0(network).eval(), torch.zeros(8, columns))
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    return lambda x, _task: frozen(x)


def measure(args, path: str, bundle: Path, spikes: int, labels_out: Path | None, int8: dict) -> dict:
    command = [sys.executable, "-m", "benchmarks.predict_throughput", "--worker", path, "--bundle", str(bundle),
               "--dataset", args.dataset, "--data-dir", args.data_dir, "--spikes", str(spikes),
               "--chunk", str(args.chunk), "--threads", str(args.threads)]
    if labels_out is not None:
        command += ["--labels-out", str(labels_out)]
    env = dict(os.environ)
    if int8:
        env["PREDICT_THROUGHPUT_INT8"] = json.dumps({k: str(v) for k, v in int8.items()})
    result = subprocess.run(command, capture_output=True, text=True, cwd=common.ROOT, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{path} worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def end_to_end(args, bundle: Path, backend: str, folder: Path, dataset) -> dict:
    """``python -m tuning predict`` on a CSV of ``--cli-spikes`` spikes (no labels)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    source, out = folder / "spikes.csv", folder / "predictions.csv"
    X, _ = make_spikes(dataset, args.cli_spikes, seed=1)
    table = pa.table({f"s{i}": np.round(X[:, i].astype(np.float64), 2) for i in range(X.shape[1])})
    pa_csv.write_csv(table, str(source), pa_csv.WriteOptions(quoting_style="none"))
    del X, table
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    code = ("import sys, time, torch; torch.set_num_threads(int(sys.argv[1])); "
            "from benchmarks.predict_throughput import peak_rss_mib; "
            "from tuning.cli import main; t = time.perf_counter(); c = time.process_time(); "
            "rc = main(['predict', sys.argv[2], sys.argv[3], '--out', sys.argv[4], '--no-progress', "
            "'--backend', sys.argv[5]]); "
            "print('SECONDS', time.perf_counter() - t, time.process_time() - c, peak_rss_mib()); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, str(args.threads), str(bundle), str(source), str(out),
                             backend], capture_output=True, text=True, cwd=common.ROOT, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"predict failed:\n{result.stderr[-3000:]}")
    seconds, cpu, peak = (float(v) for v in result.stdout.split("SECONDS", 1)[1].split())
    with open(out, "rb") as stream:
        rows = sum(1 for _ in stream) - 1
    return {"spikes": rows, "seconds": seconds, "cpu_seconds": cpu, "peak_mib": peak,
            "csv_mib": source.stat().st_size / 2**20, "out_mib": out.stat().st_size / 2**20}


def peak_gflops(threads: int, size: int = 2048, reps: int = 5) -> float:
    """The machine's float32 peak as torch reaches it: the best of ``reps`` size x size matrix products."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(reps))
    finally:
        torch.set_num_threads(previous)
    return 2 * size ** 3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def default_tune_bundle(args, folder: Path) -> Path:
    """Run the default ``tune cnn DATASET`` (what ``scripts/tune.sh cnn A12`` runs) into
    ``folder``; its bundle."""
    command = [sys.executable, "-m", "tuning", "tune", "cnn", args.dataset, "--data-dir", args.data_dir,
               "--results-dir", str(folder / "results"), "--storage", str(folder / "ray_results")]
    print(f"running the default tune first: {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=common.ROOT, check=True)
    return folder / "results" / "Classic CNN PyTorch" / "Model" / args.dataset


def build_quick_bundle(dataset, folder: Path, threads: int) -> Path:
    import pandas as pd

    from tuning import atomic
    from tuning.bundle import model_bundle

    final = model_bundle.train_final("cnn", QUICK_CONFIG, [dataset], seed=0, max_epochs=1, patience=1,
                                     metric="accuracy", inner_val_fraction=0.15, threads=threads)
    target = folder / "Model" / dataset.name
    empty = pd.DataFrame({"dataset": []})
    atomic.write_all(model_bundle.plan_bundle(target, family="cnn", approach="Classic CNN PyTorch",
                                              config=QUICK_CONFIG, datasets=[dataset], final=final,
                                              full_split=empty, one_split=empty,
                                              source={"benchmark": "predict_throughput"}))
    return target


def _spread(values) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        args.int8 = json.loads(os.environ.get("PREDICT_THROUGHPUT_INT8", "{}"))
        return worker(args)
    import numpy as np

    import models
    from tuning.bundle.model_bundle import load_model
    from models.flops import flops_per_spike
    from tuning.data.readers import load_dataset

    started_at = time.time()
    dataset = load_dataset(Path(args.data_dir) / f"{args.dataset}.csv", min_rows_per_class=1)
    folder = Path(tempfile.mkdtemp(prefix="predict_tp_"))
    runs: dict[str, list[dict]] = {p: [] for p in args.paths}
    spikes_of = {p: (args.spikes if p in KEPT else args.variant_spikes) for p in args.paths}
    try:
        with common.LoadSampler() as load:
            if args.bundle:
                bundle = Path(args.bundle)
            elif args.quick:
                bundle = build_quick_bundle(dataset, folder, args.threads)
            else:
                bundle = default_tune_bundle(args, folder)
            model = load_model(bundle)
            n_parameters = models.count_parameters(model._network)
            flops = flops_per_spike(model._network, model.n_channels * model._network_length)
            peak = peak_gflops(args.threads)
            variants = {PATHS[p][3] for p in args.paths}
            int8 = {v: quantised_onnx(bundle, dataset, folder / f"{v}.onnx", keep_ends_float=v == "int8-inner")
                    for v in ("int8", "int8-inner") if v in variants}
            for rep in range(args.reps):
                for path in (args.paths if rep % 2 == 0 else args.paths[::-1]):
                    labels_out = folder / f"labels_{args.paths.index(path)}.npy" if rep == 0 else None
                    runs[path].append(measure(args, path, bundle, spikes_of[path], labels_out, int8))
                    print(runs[path][-1], flush=True)
            labels = {p: np.load(folder / f"labels_{args.paths.index(p)}.npy") for p in args.paths}
            rates = {p: args.spikes / statistics.median(r["seconds"] for r in runs[p]) for p in KEPT if p in runs}
            fastest = max(rates, key=rates.get)
            cli = end_to_end(args, bundle, PATHS[fastest][0], folder, dataset) if args.cli_spikes else None
            if cli:
                print(cli, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    reference = labels["torch"] if "torch" in labels else None
    accuracy_ref = statistics.median(r["accuracy"] for r in runs["torch"]) if "torch" in runs else None
    rows = []
    for path in args.paths:
        spikes = spikes_of[path]
        seconds = [r["seconds"] for r in runs[path]]
        rate = spikes / statistics.median(seconds)
        cpu = spikes / statistics.median(r["cpu_seconds"] for r in runs[path])
        agree = float(np.mean(labels[path] == reference[:len(labels[path])])) if reference is not None else None
        accuracy = statistics.median(r["accuracy"] for r in runs[path])
        if path in KEPT:
            verdict = "kept (default)"
        elif PATHS[path][3] in REDUCED_PRECISION:
            passes = agree is not None and agree >= AGREEMENT and abs(accuracy - accuracy_ref) * 100 <= ACCURACY_POINTS
            kept_rate = rates.get(PATHS[path][0])
            speedup = f"; {rate / kept_rate:.2f}x the float {PATHS[path][0]} path" if kept_rate else ""
            verdict = ("passes the agreement rule" if passes else "fails the agreement rule: not kept") + speedup
        else:
            kept_rate = rates.get(PATHS[path][0])
            verdict = "faster than the kept path" if kept_rate and rate > kept_rate else "slower: not kept"
        rows.append([path, f"{spikes:,}", f"{rate:,.0f}", _spread([spikes / s for s in seconds]), f"{cpu:,.0f}",
                     f"{100 * rate * flops / (peak * 1e9):.1f}%",
                     "" if agree is None else f"{100 * agree:.2f}%",
                     f"{100 * accuracy:.2f}", f"{max(r['peak_mib'] for r in runs[path]):.0f}", verdict])
    if cli:
        share = cli["spikes"] / cli["seconds"] / rates[fastest]
        rows.append([f"`predict` command, CSV {cli['csv_mib']:.0f} MiB in, {cli['out_mib']:.0f} MiB out ({fastest})",
                     f"{cli['spikes']:,}", f"{cli['spikes'] / cli['seconds']:,.0f}", "1 run",
                     f"{cli['spikes'] / cli['cpu_seconds']:,.0f}", "", "", "", f"{cli['peak_mib']:.0f}",
                     f"{100 * share:.0f}% of {fastest}'s in-memory rate (target >= {100 * END_TO_END_SHARE:.0f}%)"])
    header = ["path", "spikes", "spikes / s (median)", f"range over {args.reps}", "spikes / CPU-second",
              "share of peak", "labels agree with torch", "accuracy %", "peak RSS MiB", "verdict"]
    table = common.markdown_table(header, rows)
    print(table)
    best = rates[fastest]
    source = f"given: {args.bundle}" if args.bundle else \
        ("--quick: the CNN default size trained 1 epoch" if args.quick else
         f"the default `python -m tuning tune cnn {args.dataset}` run first, in a temporary folder")
    body = "\n".join([
        "## Predict throughput (`benchmarks/predict_throughput.py`)", "",
        common.provenance(common.script_command(__file__, argv), load, started_at),
        f"- Bundle: {model.family} ({source}); {n_parameters:,} parameters, input {model.input_length()} samples, "
        f"config {json.dumps({k: v for k, v in model.metadata['config'].items() if k.startswith('cnn_')})}",
        f"- {flops / 1e6:.3f} MFLOP a spike (a multiply-add counts 2); peak of this machine: {peak:.0f} GFLOP/s "
        f"(float32 matrix product, {args.threads} threads); share of peak = spikes/s x FLOPs / peak",
        f"- Spikes: waveforms drawn from {args.dataset} plus noise, float32 in memory, each with its source "
        f"row's label (accuracy); kept paths {args.spikes:,}, variants {args.variant_spikes:,}; chunks of "
        f"{args.chunk:,}; {args.threads} threads unless the path says; {args.reps} repetitions, paths "
        "alternated, each in a fresh process",
        "- spikes / s is wall-clock, shared with whatever else ran (see the load); spikes / CPU-second "
        "counts the measuring process's CPU time (all its threads)",
        f"- **Fastest kept path: {fastest}, {best:,.0f} spikes/s** "
        f"({'meets' if best >= TARGET else 'misses'} the {TARGET:,} target)"
        + (f"; `predict` end to end {cli['spikes'] / cli['seconds']:,.0f} spikes/s = "
           f"{100 * cli['spikes'] / cli['seconds'] / best:.0f}% of it "
           f"({'meets' if cli['spikes'] / cli['seconds'] >= END_TO_END_SHARE * best else 'misses'} the "
           f"{100 * END_TO_END_SHARE:.0f}% target)" if cli else ""),
        f"- Reduced precision (bfloat16, int8): usable only if its labels agree with float32 torch's on >= "
        f"{100 * AGREEMENT:.1f}% of the spikes and its accuracy is within {ACCURACY_POINTS} points", "",
        table,
    ])
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
