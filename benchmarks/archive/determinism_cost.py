"""Wall-time cost of ``--deterministic`` (trials one at a time) against the default (as
many trials at once as the CPUs allow), on the same small search, side by side.

Archived, settled: RESULTS.md section ``determinism_cost`` (written at commit f036bc7):
1.41x the default's wall time for cnn on A12, 1.22x for ffn on A4.
``git show COMMIT:benchmarks/determinism_cost.py`` is the script as it ran then; this copy still runs
(``python -m benchmarks.archive.determinism_cost``) and is tested only with ``pytest --archive``.

The two settings alternate (default first in odd rounds, deterministic first in even ones)
so that they share the machine's conditions; each experiment is the project's own
(``tuning.search.driver.run_experiment``), without the export.

    python -m benchmarks.archive.determinism_cost                 # ffn on A4, 2 rounds
    python -m benchmarks.archive.determinism_cost --quick --data-dir DIR --dataset T2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time


from benchmarks import common

SECTION = "determinism_cost"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="ffn")
    p.add_argument("--dataset", default="A4")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--max-epochs", type=int, default=6)
    p.add_argument("--grace-period", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="experiments per setting (default 2)")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--results-md", default=None,
                   help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--quick", action="store_true", help="2 trials x 1 epoch, one round")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.max_epochs, args.grace_period, args.rounds = 2, 1, 1, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from tuning.data.readers import load_datasets
    from tuning.search.driver import TuneSettings, run_experiment

    started_at = time.time()
    (dataset,) = load_datasets([args.dataset], args.data_dir)
    storage = tempfile.mkdtemp(prefix="determinism_cost_")
    walls: dict[bool, list[float]] = {False: [], True: []}
    try:
        with common.LoadSampler() as load, common.ray_runtime(args.num_cpus):
            for i in range(args.rounds):
                for deterministic in ((False, True) if i % 2 == 0 else (True, False)):
                    settings = TuneSettings(samples=args.samples, max_epochs=args.max_epochs,
                                            grace_period=args.grace_period, data_dir=args.data_dir,
                                            storage=storage, verbose=0, deterministic=deterministic)
                    t = time.monotonic()
                    run_experiment(args.family, [dataset], settings)
                    walls[deterministic].append(time.monotonic() - t)
                    print(f"--- round {i}: deterministic={deterministic}: {walls[deterministic][-1]:.0f} s", flush=True)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    default, det = statistics.mean(walls[False]), statistics.mean(walls[True])
    rows = [["default (as many trials at once as CPUs)", args.num_cpus, " / ".join(f"{w:.0f}" for w in walls[False]),
             f"{default:.0f}"],
            ["--deterministic (one trial at a time)", 1, " / ".join(f"{w:.0f}" for w in walls[True]), f"{det:.0f}"]]
    text = (f"**--deterministic / default wall time: {det / default:.2f}** ({args.family} on {args.dataset}, "
            f"{args.samples} trials x {args.max_epochs} epochs, ASHA grace {args.grace_period}, "
            f"{args.num_cpus} CPUs, {args.rounds} round(s) each, alternating).")
    table = common.markdown_table(["setting", "trials at once", "wall s per experiment", "mean wall s"], rows)
    print(table)
    print(text)
    body = "\n".join(["## Cost of --deterministic (`benchmarks/archive/determinism_cost.py`)", "",
                      common.provenance(common.script_command(__file__, argv), load, started_at), "",
                      text, "", table, "",
                      "On a loaded machine the default's parallel trials share the same busy cores, so "
                      "the ratio understates the cost on an idle one (there: up to the number of "
                      "trial slots, less worker start-up, which both pay). The two settings also train "
                      "different trials (what TPE and ASHA see differs), so their epoch counts differ."])
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
