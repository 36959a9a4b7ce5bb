"""GPU: trials per hour with 1, 0.5 and 0.25 GPUs per trial on the same experiment.

One experiment (``--family`` on ``--dataset``, ``--samples`` trials of ``--epochs``
epochs) is run once per GPU fraction through the project's driver
(``tuning.search.driver.run_experiment``, trials on ``cuda`` when Ray gives them a GPU). To make
the runs the same work, the sampler is ``optuna.samplers.RandomSampler(seed)`` (the same
configurations in the same order whatever the concurrency) and the scheduler FIFO (every
trial runs every epoch). With fractions, Ray packs 1 / fraction trials on each GPU (CPUs
permitting: each trial also takes ``--cpus-per-trial``).

Trials per hour = trials / wall seconds x 3600; epochs per hour likewise.

Without a CUDA device it prints why and exits 0 without writing anything.

    python -m benchmarks.gpu_trials_per_hour
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time


from benchmarks import common

SECTION = "gpu"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="cnn")
    p.add_argument("--dataset", default="A12")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--fractions", default="1,0.5,0.25", help="GPUs per trial (default 1,0.5,0.25)")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray runtime (default: all)")
    p.add_argument("--results-md", default=None,
                   help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true", help="4 trials x 2 epochs")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.epochs = 4, 2
    return args


def cuda_available() -> tuple[bool, str]:
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is a dependency
        return False, f"torch is not importable ({err})"
    if not torch.cuda.is_available():
        return False, (f"no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}, "
                       f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return True, torch.cuda.get_device_name(0)


def main(argv=None) -> int:
    args = parse_args(argv)
    ok, device = cuda_available()
    if not ok:
        print(f"skipped: {device}; this benchmark needs a GPU.")
        return 0
    import optuna
    import ray
    from ray.tune.schedulers import FIFOScheduler

    from tuning.data.readers import load_datasets
    from tuning.search.driver import TuneSettings, concurrent_trials, run_experiment
    from tuning.data.splits import min_rows_per_class

    started_at = time.time()
    dataset = load_datasets(args.dataset, args.data_dir, None, min_rows_per_class(5))[0]
    fractions = [float(f) for f in args.fractions.split(",")]
    storage = tempfile.mkdtemp(prefix="gpu_tph_")
    rows = []
    try:
        with common.LoadSampler() as load, common.ray_runtime(args.num_cpus or os.cpu_count()):
            n_gpus = int(ray.cluster_resources().get("GPU", 0))
            for fraction in fractions:
                settings = TuneSettings(samples=args.samples, max_epochs=args.epochs, seed=args.seed,
                                        gpus_per_trial=fraction, cpus_per_trial=args.cpus_per_trial,
                                        storage=storage, verbose=0)
                slots = concurrent_trials(settings)
                t0 = time.monotonic()
                outcome = run_experiment(args.family, [dataset], settings,
                                         sampler=optuna.samplers.RandomSampler(seed=args.seed),
                                         scheduler=FIFOScheduler())
                wall = time.monotonic() - t0
                rows.append([f"{fraction:g}", slots, outcome.n_trials, outcome.n_errored, f"{wall:.0f}",
                             f"{outcome.n_trials / wall * 3600:.0f}",
                             f"{outcome.n_trials * args.epochs / wall * 3600:.0f}",
                             f"{100 * outcome.best_metrics.get('val_accuracy', float('nan')):.2f}"])
                print(rows[-1], flush=True)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    header = ["GPUs per trial", "trials at once", "trials", "errored", "wall s", "trials / hour",
              "epochs / hour", "best val acc %"]
    table = common.markdown_table(header, rows)
    print(table)
    body = "\n".join([
        "## GPU trials per hour (`benchmarks/gpu_trials_per_hour.py`)", "",
        common.provenance(common.script_command(__file__, argv), load, started_at),
        f"- GPU: {device} x {n_gpus}; {args.family} on {args.dataset}, {args.samples} trials x {args.epochs} "
        f"epochs, random sampler (seed {args.seed}) + FIFO, {args.cpus_per_trial:g} CPU per trial", "",
        table,
    ])
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
