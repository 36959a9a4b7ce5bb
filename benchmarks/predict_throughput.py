"""Predict throughput: a CNN model bundle sorting 1,000,000 spikes, torch and ONNX Runtime
side by side, with peak memory; and the ``predict`` command end to end (CSV in, CSV out).

The bundle: the CNN family's default size (``models.build_model("cnn", {})``: 2 conv blocks
of 16 and 32 channels, kernel 5, max pooling, global average pooling; global
normalisation), trained for ``--epochs`` by the export's own final-model code
(``tuning.bundle.model_bundle.train_final``) on ``--dataset`` and written with ``plan_bundle``; or any
bundle given with ``--bundle`` (for instance one a real export wrote). Throughput does not
depend on how well it was trained.

The spikes: ``--spikes`` rows drawn (seeded) from the dataset's waveforms plus Gaussian
noise (5% of their standard deviation), float32, in memory.

Each measurement runs in a fresh Python process (so each has its own peak memory):
``load_model(bundle, backend, threads=--threads)``, then ``predict_proba`` on chunks of
``--chunk`` spikes (as the ``predict`` command does), timed from the first chunk to the
last. Backends alternate for ``--reps`` repetitions; the table shows the median. Memory:
the process's peak resident set (``ru_maxrss``) and its rise during prediction (above the
peak after the spikes were made and the model loaded). Wall-clock and CPU-time rates are both shown. The end-to-end row runs
``python -m tuning predict`` on a CSV of ``--cli-spikes`` spikes (reading, checking,
predicting and writing, in chunks of 50,000).

    python -m benchmarks.predict_throughput
    python -m benchmarks.predict_throughput --bundle "results/Classic CNN PyTorch/Model/A12"
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
BACKENDS = ("torch", "onnx")
CNN_CONFIG = {"family": "cnn", "normalisation": "global"}
"""The CNN family's default network (models.cnn's defaults) with global normalisation."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="A12", help="dataset the bundle is trained on and spikes drawn from")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--bundle", default=None, help="use this bundle instead of training one")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the bundle's training (default 3)")
    p.add_argument("--spikes", type=int, default=None, help="default 1,000,000")
    p.add_argument("--cli-spikes", type=int, default=None,
                   help="spikes of the end-to-end CSV run (default 200,000; 0: skip)")
    p.add_argument("--chunk", type=int, default=50_000, help="spikes per predict_proba call")
    p.add_argument("--threads", type=int, default=2, help="inference threads (default 2: this machine's cores)")
    p.add_argument("--reps", type=int, default=None, help="default 3")
    p.add_argument("--results-md", default=None,
                   help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true", help="20,000 spikes, 1 repetition, 2,000 end to end")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one measurement
    p.add_argument("--labels-out", default=None, help=argparse.SUPPRESS)  # internal: its predicted classes
    args = p.parse_args(argv)
    defaults = dict(spikes=20_000, cli_spikes=2_000, reps=1, epochs=1) if args.quick else \
        dict(spikes=1_000_000, cli_spikes=200_000, reps=3, epochs=3)
    for name, value in defaults.items():  # --quick shrinks only what was not given
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def make_spikes(dataset, n: int, seed: int = 0, chunk: int = 50_000):
    """float32 (n, length), filled a chunk at a time so that making them does not set the peak."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scale = 0.05 * float(dataset.X.std())
    X = np.empty((n, dataset.length), dtype=np.float32)
    for i in range(0, n, chunk):
        rows = dataset.X[rng.integers(0, dataset.n_rows, min(chunk, n - i))]
        X[i:i + len(rows)] = rows + rng.normal(0, scale, rows.shape).astype(np.float32)
    return X


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(args) -> int:
    """One measurement in this fresh process; prints one JSON line."""
    import numpy as np

    from tuning.bundle.model_bundle import load_model
    from tuning.data.readers import load_dataset

    dataset = load_dataset(Path(args.data_dir) / f"{args.dataset}.csv", min_rows_per_class=1)
    X = make_spikes(dataset, args.spikes)
    model = load_model(args.bundle, backend=args.worker, threads=args.threads)
    model.predict_proba(X[:1000])  # warm-up: first-call allocations and kernel selection
    before = peak_rss_mib()
    labels = np.empty(len(X), dtype=np.int64)
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(X), args.chunk):
        labels[i:i + args.chunk] = model.predict_proba(X[i:i + args.chunk]).argmax(1)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if args.labels_out:
        np.save(args.labels_out, labels)
    print(json.dumps({"backend": args.worker, "spikes": len(X), "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "peak_mib": peak_rss_mib(), "before_mib": before}))
    return 0


def measure(args, backend: str, bundle: Path, labels_out: Path | None = None) -> dict:
    command = [sys.executable, "-m", "benchmarks.predict_throughput", "--worker", backend, "--bundle", str(bundle),
               "--dataset", args.dataset, "--data-dir", args.data_dir, "--spikes", str(args.spikes),
               "--chunk", str(args.chunk), "--threads", str(args.threads)]
    if labels_out is not None:
        command += ["--labels-out", str(labels_out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=common.ROOT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{backend} worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def end_to_end(args, bundle: Path, folder: Path, dataset) -> dict:
    """``python -m tuning predict`` on a CSV of ``--cli-spikes`` spikes (no labels)."""
    import numpy as np

    source, out = folder / "spikes.csv", folder / "predictions.csv"
    X = make_spikes(dataset, args.cli_spikes, seed=1)
    header = ",".join(f"s{i}" for i in range(X.shape[1]))
    np.savetxt(source, X, fmt="%.2f", delimiter=",", header=header, comments="")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    code = ("import sys, time, torch; torch.set_num_threads(int(sys.argv[1])); "
            "from benchmarks.predict_throughput import peak_rss_mib; "
            "from tuning.cli import main; t = time.perf_counter(); "
            "rc = main(['predict', sys.argv[2], sys.argv[3], '--out', sys.argv[4], '--no-progress']); "
            "print('SECONDS', time.perf_counter() - t, peak_rss_mib()); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, str(args.threads), str(bundle), str(source), str(out)],
                            capture_output=True, text=True, cwd=common.ROOT, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"predict failed:\n{result.stderr[-3000:]}")
    seconds, peak = (float(v) for v in result.stdout.split("SECONDS", 1)[1].split())
    rows = sum(1 for _ in open(out)) - 1
    return {"spikes": rows, "seconds": seconds, "peak_mib": peak, "csv_mib": source.stat().st_size / 2**20}


def build_bundle(args, dataset, folder: Path) -> Path:
    import pandas as pd

    from tuning import atomic
    from tuning.bundle import model_bundle

    final = model_bundle.train_final("cnn", CNN_CONFIG, [dataset], seed=0, max_epochs=args.epochs, patience=args.epochs,
                               metric="accuracy", inner_val_fraction=0.15, threads=args.threads)
    target = folder / "Model" / dataset.name
    empty = pd.DataFrame({"dataset": []})
    atomic.write_all(model_bundle.plan_bundle(target, family="cnn", approach="Classic CNN PyTorch", config=CNN_CONFIG,
                                        datasets=[dataset], final=final, full_split=empty, one_split=empty,
                                        source={"benchmark": "predict_throughput"}))
    return target


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    import models
    from tuning.bundle.model_bundle import load_model
    from tuning.data.readers import load_dataset

    started_at = time.time()
    dataset = load_dataset(Path(args.data_dir) / f"{args.dataset}.csv", min_rows_per_class=1)
    folder = Path(tempfile.mkdtemp(prefix="predict_tp_"))
    runs: dict[str, list[dict]] = {b: [] for b in BACKENDS}
    try:
        with common.LoadSampler() as load:
            bundle = Path(args.bundle) if args.bundle else build_bundle(args, dataset, folder)
            model = load_model(bundle)
            n_parameters = models.count_parameters(model._network)
            for rep in range(args.reps):
                for backend in (BACKENDS if rep % 2 == 0 else BACKENDS[::-1]):
                    labels_out = folder / f"labels_{backend}.npy" if rep == 0 else None
                    runs[backend].append(measure(args, backend, bundle, labels_out))
                    print(runs[backend][-1], flush=True)
            import numpy as np

            differ = int(np.sum(np.load(folder / "labels_torch.npy") != np.load(folder / "labels_onnx.npy")))
            cli = end_to_end(args, bundle, folder, dataset) if args.cli_spikes else None
            if cli:
                print(cli, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    rows = []
    for backend in BACKENDS:
        seconds = statistics.median(r["seconds"] for r in runs[backend])
        cpu = statistics.median(r["cpu_seconds"] for r in runs[backend])
        rate = args.spikes / seconds
        rows.append([backend, f"{args.spikes:,}", f"{seconds:.2f}", f"{rate:,.0f}",
                     f"{args.spikes / cpu:,.0f}", "met" if rate >= TARGET else "not met",
                     f"{max(r['peak_mib'] for r in runs[backend]):.0f}",
                     f"{max(r['peak_mib'] - r['before_mib'] for r in runs[backend]):.0f}"])
    if cli:
        rows.append([f"`predict` command, CSV {cli['csv_mib']:.0f} MiB (torch)", f"{cli['spikes']:,}",
                     f"{cli['seconds']:.2f}", f"{cli['spikes'] / cli['seconds']:,.0f}", "", "",
                     f"{cli['peak_mib']:.0f}", ""])
    header = ["backend", "spikes", "seconds (median)", "spikes / s", "spikes / CPU-second",
              f">= {TARGET:,} / s", "peak RSS MiB", "rise while predicting MiB"]
    table = common.markdown_table(header, rows)
    print(table)
    body = "\n".join([
        "## Predict throughput (`benchmarks/predict_throughput.py`)", "",
        common.provenance(common.script_command(__file__, argv), load, started_at),
        f"- Bundle: {model.family}, {n_parameters:,} parameters, input {model.input_length()} samples "
        f"({'given: ' + str(args.bundle) if args.bundle else f'the CNN default size, trained {args.epochs} epochs on ' + args.dataset}); "
        f"{args.threads} inference threads; chunks of {args.chunk:,} spikes; {args.reps} repetitions, "
        "backends alternated, each in a fresh process",
        f"- Spikes: {args.spikes:,} waveforms drawn from {args.dataset} plus noise, float32 in memory "
        f"({args.spikes * model.input_length() * 4 / 2**20:.0f} MiB, part of every peak); the two backends' "
        f"labels differ on {differ:,} of them",
        "- spikes / s is wall-clock, shared with whatever else ran (see the load); spikes / CPU-second "
        "counts the CPU time of the measuring process (all its threads), which the load does not change much",
        "- The last row is `python -m tuning predict` end to end on a CSV without labels: parsing and "
        "checking the text, predicting, writing the predictions CSV", "",
        table,
    ])
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
