"""Loading a large dataset: ``tuning.data.readers.load_dataset`` against a bare ``pandas.read_csv``.

One CSV of ``--rows`` spikes x ``--samples`` samples plus a label column (values with two
decimals, as the lab's files; default 1,000,000 x 64, about 450 MB) is written once to
``benchmarks/out/`` and reused. Each measurement runs in a fresh Python process that first
imports numpy, pandas, pyarrow and ``tuning.data.readers`` (its resident memory then is the
*baseline*), then times one of:

* ``bare``: ``pandas.read_csv(path)``, pandas' defaults (C reader, float64 columns), no checks;
* ``load_dataset``: the project's loader: every check, float32 waveforms, int64 labels
  (the pyarrow fast path for a well-formed file like this one).

The two alternate for ``--reps`` rounds (after one untimed read that brings the file into
the page cache). Figures: median seconds, and each process's peak resident memory
(``getrusage`` ``ru_maxrss``: everything the process held at its peak, baseline included),
against the final float32 array (rows x samples x 4 bytes).

Targets (issue 13): load_dataset's median time at most 2x bare's; its peak memory at most
3x the final array.

    python -m benchmarks.loader            # 1,000,000 x 64, 3 rounds
    python -m benchmarks.loader --quick    # 20,000 x 64, 1 round, prints only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


from benchmarks import common

SECTION = "loader"
TARGET_TIME_RATIO = 2.0
TARGET_MEMORY_RATIO = 3.0
READERS = ("bare", "load_dataset")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="spikes in the generated file")
    parser.add_argument("--samples", type=int, default=64, help="waveform samples per spike")
    parser.add_argument("--reps", type=int, default=3, help="rounds of (bare, load_dataset)")
    parser.add_argument("--out-dir", default=str(common.OUT_DIR), help="where the generated CSV is kept")
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 1 round; prints only")
    parser.add_argument("--results-md", default=None, help="write the section here instead of RESULTS.md")
    parser.add_argument("--measure", nargs=2, metavar=("READER", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.reps = min(args.rows, 20_000), 1
    return args


# ----------------------------------------------------------------------------- the file
def dataset_file(args) -> Path:
    """The benchmark CSV (written once per size; a finished file is renamed into place)."""
    path = Path(args.out_dir) / f"loader_{args.rows}x{args.samples}.csv"
    if path.is_file():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from tuning import atomic

    started = time.time()
    rng = np.random.default_rng(0)
    names = [f"s{k}" for k in range(args.samples)] + ["label"]
    schema = pa.schema([(n, pa.float64()) for n in names[:-1]] + [("label", pa.int64())])
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as sink:
        sink.write((",".join(names) + "\n").encode())  # pyarrow would quote the names
        with pa_csv.CSVWriter(sink, schema, write_options=options) as writer:
            for start in range(0, args.rows, 100_000):
                m = min(100_000, args.rows - start)
                labels = rng.integers(0, 6, size=m)
                waves = np.round(rng.normal(0.0, 30.0, size=(m, args.samples)) - 10.0 * labels[:, None], 2)
                columns = [pa.array(waves[:, k]) for k in range(args.samples)] + [pa.array(labels)]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.time() - started:.0f} s")
    return path


# ----------------------------------------------------------------------------- one measurement
def measure(reader: str, csv_path: str) -> dict:
    """Run in a fresh process: import, note the baseline, time one read, note the peak."""
    import numpy as np
    import pandas as pd
    import pyarrow.csv  # noqa: F401  (imported by both, so both baselines match)

    from tuning.data.readers import load_dataset

    baseline = _rss_bytes()
    started = time.perf_counter()
    if reader == "bare":
        frame = pd.read_csv(csv_path)
        shape = (len(frame), frame.shape[1] - 1)
    else:
        dataset = load_dataset(csv_path)
        assert dataset.X.dtype == np.float32
        shape = dataset.X.shape
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"reader": reader, "seconds": seconds, "peak_bytes": peak, "baseline_bytes": baseline,
            "rows": shape[0], "samples": shape[1]}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_measurement(reader: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.loader", "--measure", reader, str(path)], check=True,
                          capture_output=True, text=True, cwd=common.ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0
    started_at = time.time()
    path = dataset_file(args)
    path.read_bytes()  # into the page cache, so that neither side pays for the disk
    runs: list[dict] = []
    with common.LoadSampler() as load:
        for rep in range(args.reps):
            order = READERS if rep % 2 == 0 else READERS[::-1]
            for reader in order:
                runs.append(run_measurement(reader, path))
                print(f"round {rep + 1}: {reader:>12} {runs[-1]['seconds']:.2f} s, "
                      f"peak {runs[-1]['peak_bytes'] / 2**20:.0f} MiB")
    array_bytes = args.rows * args.samples * 4
    by = {r: [m for m in runs if m["reader"] == r] for r in READERS}
    assert all(m["rows"] == args.rows and m["samples"] == args.samples for m in runs)
    median = {r: statistics.median(m["seconds"] for m in by[r]) for r in READERS}
    peak = {r: max(m["peak_bytes"] for m in by[r]) for r in READERS}
    baseline = {r: statistics.median(m["baseline_bytes"] for m in by[r]) for r in READERS}
    time_ratio = median["load_dataset"] / median["bare"]
    memory_ratio = peak["load_dataset"] / array_bytes
    rows = [[reader, common.fmt(median[reader], 2), ", ".join(f"{m['seconds']:.2f}" for m in by[reader]),
             f"{peak[reader] / 2**20:.0f}", f"{baseline[reader] / 2**20:.0f}",
             f"{(peak[reader] - baseline[reader]) / 2**20:.0f}", f"{peak[reader] / array_bytes:.2f}"]
            for reader in READERS]
    table = common.markdown_table(["reader", "median s", "each round (s)", "peak RSS MiB",
                                   "baseline RSS MiB (after imports)", "peak - baseline MiB",
                                   "peak / final array"], rows)
    time_ok, memory_ok = time_ratio <= TARGET_TIME_RATIO, memory_ratio <= TARGET_MEMORY_RATIO
    verdict = (f"{'**Targets met**' if time_ok and memory_ok else '**Target not met**'}: "
               f"load_dataset / bare pandas.read_csv = {time_ratio:.2f}x in time (target <= {TARGET_TIME_RATIO:g}x"
               f"{'' if time_ok else ', missed'}); load_dataset's peak resident memory = {memory_ratio:.2f}x the "
               f"final float32 array of {array_bytes / 2**20:.0f} MiB (target <= {TARGET_MEMORY_RATIO:g}x"
               f"{'' if memory_ok else ', missed'}), the interpreter and its imports included.")
    print()
    print(table)
    print(verdict)
    size = path.stat().st_size / 2**20
    body = "\n\n".join([
        f"## Loading a large dataset ({args.rows:,} spikes x {args.samples} samples)",
        common.provenance(common.script_command(__file__, argv), load, started_at),
        f"One generated CSV, {size:.0f} MiB (two-decimal values, integer labels, from the page cache); "
        f"each measurement in a fresh process, the two readers alternating for {args.reps} rounds. "
        "`bare` is `pandas.read_csv(path)` with pandas' defaults and no checks; `load_dataset` is "
        "`tuning.data.readers.load_dataset(path)`: every check, float32 waveforms, int64 class ids.",
        table,
        verdict,
    ])
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
