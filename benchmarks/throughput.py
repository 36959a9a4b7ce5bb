"""Training throughput: the project's loop inside a Ray trial against a bare PyTorch loop,
and the share of a small experiment's wall time spent in training epochs.

Part 1, side by side. One fixed CNN configuration (``CONFIG``; the model from
``models.build_model``), one dataset's tuning split (train rows for training, validation
rows for scoring), the same batch size, one torch thread on both sides:

* ``project``: one Ray Tune trial of the project's own trainable (``tuning.search.driver.
  make_trainable`` -> ``tuning.search.trainable.train_trial`` -> ``tuning.training.fit``), which
  validates, reports and checkpoints after every epoch;
* ``bare``: in this process, the textbook loop: ``randperm`` -> index the batch ->
  forward -> cross-entropy -> backward -> Adam step; then one forward pass over the
  validation rows and its accuracy;
* ``bare, Ray worker``: the same bare loop as a plain Ray task (1 CPU): a Ray worker
  process, which Ray starts at niceness 15 (``RAY_worker_niceness``), without Tune;
* ``fit, no Ray``: ``tuning.training.fit`` called in this process, no Ray trial around it
  (separates the loop's own cost from the cost of running inside Ray).

The four take turns (the order rotated from one repetition to the next) for ``--reps``
repetitions of ``--epochs`` epochs; the first epoch of every run (warm-up) is left out.
Figures, in training samples per second (training rows x epochs / seconds):

* ``train step``: the optimiser loop only (the project's ``train_seconds``, measured inside
  ``fit`` around one epoch's steps; the bare loop's own timer around the same part);
* ``whole epoch``: training + validation + (project) metrics, checkpoint and report, from
  the arrival times of consecutive epoch results at the Tune driver; for the bare loop,
  its training + validation time.

Part 2: a 16-trial smoke-sized experiment (the project's TPE + ASHA, ``--smoke-epochs``
epochs, grace 1) on the same dataset. Training share = sum over trials of the final
``train_seconds`` / (experiment wall time x concurrent trial slots); epoch share uses the
sum of ``time_this_iter_s`` (each epoch's training, validation, metrics, checkpoint and
report, as Ray times them) instead. The wall time is ``run_experiment``'s, from building
the trainable to the summary of the results; the rest is broken down from the driver's
event times.

    python -m benchmarks.throughput
    python -m benchmarks.throughput --profile      # where the project loop's time goes
    python -m benchmarks.throughput --experiments ray_results/cnn-A12-*   # finished runs

``--experiments`` skips the measurements above and computes, from finished experiment
folders, the same training share over the span of their trials (first trial's start to
the last result; one-second resolution): how the fixed costs of part 2 weigh in a
full-size search. It writes its own section.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import shutil
import time
from pathlib import Path


from benchmarks import common

SECTION = "throughput"
TARGET_RATIO = 0.9
TARGET_SHARE = 0.8

CONFIG = {
    "family": "cnn", "cnn_n_blocks": 2, "cnn_channels_b0": 16, "cnn_kernel_b0": 5,
    "cnn_channels_b1": 32, "cnn_kernel_b1": 5, "cnn_pool": "max", "batch_norm": True, "dropout": 0.1,
    "cnn_global_pool": "avg", "cnn_dense_units": 64, "lr": 1e-3, "weight_decay": 1e-5,
    "optimizer": "adam", "normalisation": "global", "class_weighted_loss": False,
}
"""A mid-sized point of the cnn space (2 conv blocks, 16/32 channels, dense 64, Adam)."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="A4", help="dataset (default A4)")
    p.add_argument("--data-dir", default=str(common.ROOT / "data"))
    p.add_argument("--batch-sizes", default="32,128", help="comma list (default 32,128)")
    p.add_argument("--epochs", type=int, default=20, help="epochs per run; the first is warm-up (default 20)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per side (default 3)")
    p.add_argument("--smoke-trials", type=int, default=16)
    p.add_argument("--smoke-epochs", type=int, default=4)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--results-md", default=None,
                   help="RESULTS.md to update (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--profile", action="store_true",
                   help="also profile fit() and the bare loop in this process (cProfile) and print the top entries")
    p.add_argument("--experiments", nargs="+", default=None,
                   help="only compute the training share of these finished experiment folders")
    p.add_argument("--quick", action="store_true", help="1 repetition of 2 epochs, a 2-trial experiment")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.epochs, args.smoke_trials, args.smoke_epochs = 1, 2, 2, 2
        args.batch_sizes = args.batch_sizes.split(",")[0]
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first is left out)")
    return args


# ----------------------------------------------------------------------------- data
def load_task(args):
    from tuning.data.readers import load_datasets
    from tuning.search.driver import TuneSettings
    from tuning.data.splits import min_rows_per_class, tuning_split
    from tuning.training import TaskData

    settings = TuneSettings()
    dataset = load_datasets(args.dataset, args.data_dir, None, min_rows_per_class(settings.folds))[0]
    split = tuning_split(dataset.y, 0, settings.val_fraction, settings.test_fraction)
    return dataset, TaskData.from_rows(dataset, split.train, split.val)


# ----------------------------------------------------------------------------- bare side
def bare_loop(task, config: dict, epochs: int, seed: int = 0) -> list[dict]:
    """The textbook loop over the same model and data; per-epoch train and total seconds."""
    import numpy as np
    import torch
    from torch import nn

    import models
    from tuning.data.preprocess import Normaliser

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    norm = Normaliser(config["normalisation"]).fit(task.X_train)
    X = torch.from_numpy(np.ascontiguousarray(norm.transform(task.X_train), dtype=np.float32))
    y = torch.tensor(task.y_train, dtype=torch.long)
    Xv = torch.from_numpy(np.ascontiguousarray(norm.transform(task.X_val), dtype=np.float32))
    yv = torch.tensor(task.y_val, dtype=torch.long)
    model = models.build_model("cnn", config, X.shape[1], [task.n_classes])
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    loss_fn = nn.CrossEntropyLoss()
    bs, n = int(config["batch_size"]), len(y)
    out = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            if len(idx) < 2:
                continue
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx], 0), y[idx])
            loss.backward()
            opt.step()
        t1 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            float((model(Xv, 0).argmax(1) == yv).float().mean())
        out.append({"train_s": t1 - t0, "epoch_s": time.perf_counter() - t0})
    return out


# ----------------------------------------------------------------------------- project side
def project_trial(dataset, config: dict, epochs: int, storage: str) -> list[dict]:
    """One Ray Tune trial of the project's trainable with a fixed config; per-epoch seconds."""
    from ray import tune

    from tuning.search.driver import TuneSettings, make_trainable

    settings = TuneSettings(max_epochs=epochs, seed=0, storage=storage)
    events = common.trial_event_log()
    tuner = tune.Tuner(
        make_trainable("cnn", [dataset], settings), param_space=dict(config),
        tune_config=tune.TuneConfig(num_samples=1, metric="val_accuracy", mode="max"),
        run_config=tune.RunConfig(storage_path=storage, verbose=0, callbacks=[events],
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )
    grid = tuner.fit()
    if grid.errors:
        raise RuntimeError(f"the benchmark trial failed: {grid.errors[0]}")
    rows, previous = [], None
    for r in sorted(events.results, key=lambda r: r["epoch"]):
        train_s = r["train_seconds"] - (previous["train_seconds"] if previous else 0.0)
        epoch_s = r["t"] - previous["t"] if previous else float("nan")  # driver-side, result to result
        rows.append({"train_s": train_s, "epoch_s": epoch_s, "iter_s": r["time_this_iter_s"]})
        previous = r
    return rows


def fit_no_ray(task, config: dict, epochs: int) -> list[dict]:
    """``tuning.training.fit`` in this process; per-epoch training and whole-epoch seconds."""
    import torch

    from tuning.training import fit

    torch.set_num_threads(1)
    rows, last = [], [time.perf_counter(), 0.0]

    def on_epoch(epoch, metrics, state):
        now = time.perf_counter()
        rows.append({"train_s": metrics["train_seconds"] - last[1], "epoch_s": now - last[0]})
        last[:] = [now, metrics["train_seconds"]]

    fit("cnn", config, [task], max_epochs=epochs, seed=0, on_epoch=on_epoch)
    return rows


SIDES = ("bare", "bare, Ray worker", "fit, no Ray", "project")


def bare_in_ray_worker(task, config: dict, epochs: int) -> tuple[list[dict], int]:
    """The bare loop as a Ray task; also returns the worker's niceness."""
    import ray

    @ray.remote(num_cpus=1)
    def run(task, config, epochs):
        import os

        from benchmarks.throughput import bare_loop
        return bare_loop(task, config, epochs), os.nice(0)

    return ray.get(run.remote(task, config, epochs))


def side_by_side(dataset, task, args, storage) -> tuple[list[list], list[dict]]:
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    n_train = len(task.y_train)
    measured = []
    for bs in batch_sizes:
        config = {**CONFIG, "batch_size": bs}
        for rep in range(args.reps):
            order = SIDES[rep % len(SIDES):] + SIDES[:rep % len(SIDES)]
            for side in order:
                cpu0, t0, extra = time.process_time(), time.monotonic(), {}
                if side == "bare":
                    rows = bare_loop(task, config, args.epochs)
                elif side == "bare, Ray worker":
                    rows, extra["worker_niceness"] = bare_in_ray_worker(task, config, args.epochs)
                elif side == "fit, no Ray":
                    rows = fit_no_ray(task, config, args.epochs)
                else:
                    rows = project_trial(dataset, config, args.epochs, storage)
                    # The Tune driver (this process, niceness 0) works while the trial trains.
                    extra["driver_cpu"] = (time.process_time() - cpu0) / (time.monotonic() - t0)
                kept = rows[1:]  # first epoch: warm-up (and no previous result to time the project's from)
                m = {"batch_size": bs, "rep": rep, "side": side,
                     "train_sps": n_train * len(kept) / sum(r["train_s"] for r in kept),
                     "epoch_sps": n_train * len(kept) / sum(r["epoch_s"] for r in kept)}
                if side == "project":
                    m["iter_sps"] = n_train * len(kept) / sum(r["iter_s"] for r in kept)
                m.update(extra)
                measured.append(m)
                print(f"  batch {bs} rep {rep} {side:16s}: train step {m['train_sps']:8.0f} samples/s, "
                      f"whole epoch {m['epoch_sps']:8.0f} samples/s", flush=True)
    table = []
    for bs in batch_sizes:
        def med(side, key):
            return statistics.median(m[key] for m in measured if m["batch_size"] == bs and m["side"] == side)

        # Per repetition, the project's run against the bare run next to it in time.
        pairs = [(p, b) for p in measured for b in measured if p["batch_size"] == b["batch_size"] == bs
                 and p["rep"] == b["rep"] and p["side"] == "project" and b["side"] == "bare"]
        per_rep = [p["epoch_sps"] / b["epoch_sps"] for p, b in pairs]
        table.append([bs, f"{med('bare', 'train_sps'):.0f}", f"{med('bare, Ray worker', 'train_sps'):.0f}",
                      f"{med('fit, no Ray', 'train_sps'):.0f}", f"{med('project', 'train_sps'):.0f}",
                      f"{med('fit, no Ray', 'train_sps') / med('bare', 'train_sps'):.2f}",
                      f"{med('project', 'train_sps') / med('bare, Ray worker', 'train_sps'):.2f}",
                      f"{med('project', 'train_sps') / med('bare', 'train_sps'):.2f}",
                      f"{med('bare', 'epoch_sps'):.0f}", f"{med('project', 'epoch_sps'):.0f}",
                      f"{med('project', 'epoch_sps') / med('bare', 'epoch_sps'):.2f}",
                      ", ".join(f"{r:.2f}" for r in per_rep)])
    return table, measured


SIDE_HEADER = ["batch", "bare train step /s", "bare in a Ray worker /s", "fit, no Ray /s", "project (Tune trial) /s",
               "ratio fit no Ray / bare", "ratio project / bare in a Ray worker", "ratio project / bare (train step)",
               "bare whole epoch /s", "project whole epoch /s", "ratio (whole epoch)", "whole-epoch ratio per rep"]


# ----------------------------------------------------------------------------- part 2
def smoke_share(dataset, args, storage) -> dict:
    from tuning.search.driver import TuneSettings, concurrent_trials, run_experiment

    settings = TuneSettings(samples=args.smoke_trials, max_epochs=args.smoke_epochs, grace_period=1, seed=0,
                            storage=storage, verbose=0)
    events = common.trial_event_log()
    started = time.monotonic()
    outcome = run_experiment("cnn", [dataset], settings, callbacks=[events])
    wall = time.monotonic() - started
    slots = concurrent_trials(settings)
    last = {}
    for r in events.results:
        last[r["trial"]] = r
    train = sum(r["train_seconds"] for r in last.values())
    iters = sum(r["time_this_iter_s"] for r in events.results)
    # A first result's time_this_iter_s also holds the trial's set-up in the worker (fetching the
    # bound data, building the model); estimate the per-epoch rest from the later epochs.
    previous, later, first_extra = {}, [], 0.0
    for r in sorted(events.results, key=lambda r: (r["trial"], r["epoch"])):
        extra = r["time_this_iter_s"] - (r["train_seconds"] - previous.get(r["trial"], 0.0))
        if r["trial"] in previous:
            later.append(extra)
        else:
            first_extra += extra
        previous[r["trial"]] = r["train_seconds"]
    per_epoch = statistics.mean(later) if later else 0.0
    setup = max(0.0, first_extra - per_epoch * len(last))
    # Where the rest goes, in slot-seconds (driver clock).
    fit_start = events.fit_start or started
    fit_end = events.fit_end or time.monotonic()
    fit_wall = fit_end - fit_start
    occupied = sum(events.ends.get(t, last[t]["t"]) - events.starts[t] for t in last if t in events.starts)
    # Idle slot time: give each trial the slot that freed most recently before it started.
    free = [fit_start] * slots
    first_gap = between = 0.0
    for tid in sorted(events.starts, key=events.starts.get):
        begin = events.starts[tid]
        candidates = [i for i in range(slots) if free[i] <= begin + 1e-6] or [min(range(slots), key=free.__getitem__)]
        i = max(candidates, key=free.__getitem__)
        gap = max(0.0, begin - free[i])
        if free[i] == fit_start:
            first_gap += gap
        else:
            between += gap
        free[i] = events.ends.get(tid, last[tid]["t"] if tid in last else begin)
    tail = sum(max(0.0, fit_end - f) for f in free)
    return {"trials": outcome.n_trials, "stopped": outcome.n_stopped_early, "epochs": len(events.results),
            "wall": wall, "fit_wall": fit_wall, "slots": slots, "train": train, "iters": iters,
            "train_share": train / (wall * slots), "iter_share": iters / (wall * slots),
            "occupied": occupied, "setup": setup, "first_gap": first_gap, "between": between, "tail": tail,
            "outside_fit": wall - fit_wall}


def share_rows(s: dict) -> list[list]:
    cap = s["wall"] * s["slots"]
    pct = lambda x: f"{100 * x / cap:.1f}%"  # noqa: E731
    accounted = s["occupied"] + s["first_gap"] + s["between"] + s["tail"] + s["outside_fit"] * s["slots"]
    return [
        ["training steps (sum of final `train_seconds`)", f"{s['train']:.1f}", pct(s["train"])],
        ["validation + metrics + checkpoint + report (sum of `time_this_iter_s` minus training and set-up)",
         f"{s['iters'] - s['train'] - s['setup']:.1f}", pct(s["iters"] - s["train"] - s["setup"])],
        ["trial set-up in the worker, inside the first epoch's `time_this_iter_s` (data fetch, model build)",
         f"{s['setup']:.1f}", pct(s["setup"])],
        ["rest of the trials' lifetimes (trial started to its end: result round trips, stop)",
         f"{s['occupied'] - s['iters']:.1f}", pct(s["occupied"] - s["iters"])],
        ["each slot's first trial: `Tuner.fit` start to trial start (worker process start, imports)",
         f"{s['first_gap']:.1f}", pct(s["first_gap"])],
        ["between trials in a slot: end of one to start of the next (suggestion, actor reuse/reset)",
         f"{s['between']:.1f}", pct(s["between"])],
        ["after each slot's last trial to the end of `Tuner.fit`", f"{s['tail']:.1f}", pct(s["tail"])],
        ["outside `Tuner.fit` (trainable set-up, run record, summary) x slots",
         f"{s['outside_fit'] * s['slots']:.1f}", pct(s["outside_fit"] * s["slots"])],
        ["unaccounted (overlaps/rounding of the slot assignment)", f"{cap - accounted:.1f}", pct(cap - accounted)],
        ["**total: wall x slots**", f"{cap:.1f}", "100%"],
    ]


# ----------------------------------------------------------------------------- profile
def profile(dataset, task, args) -> str:
    """cProfile of fit() and of the bare loop, same config, in this process."""
    import cProfile
    import io
    import pstats

    import torch

    from tuning.training import fit

    torch.set_num_threads(1)
    config = {**CONFIG, "batch_size": int(args.batch_sizes.split(",")[0])}
    text = []
    for name, call in (("fit", lambda: fit("cnn", config, [task], max_epochs=args.epochs, seed=0)),
                       ("bare", lambda: bare_loop(task, config, args.epochs))):
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        call()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        text.append(f"== {name}: {time.perf_counter() - t0:.2f} s\n{out.getvalue()}")
    return "\n".join(text)


def experiment_share(folder: Path, num_cpus: int) -> list:
    """Training share of a finished experiment, from its trials' result.json files."""
    import json

    record = json.loads((folder / "spikesort_run.json").read_text())
    settings = record["settings"]
    slots = max(1, int((settings.get("num_cpus") or num_cpus) // settings.get("cpus_per_trial", 1)))
    train = iters = 0.0
    starts, ends, epochs, trials = [], [], 0, 0
    for result in folder.glob("trial_*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        trials += 1
        epochs += len(rows)
        train += float(rows[-1]["train_seconds"])
        iters += sum(float(r["time_this_iter_s"]) for r in rows)
        starts.append(rows[0]["timestamp"] - rows[0]["time_total_s"])
        ends.append(rows[-1]["timestamp"])
    span = max(ends) - min(starts)
    return [folder.name, trials, epochs, f"{span:.0f}", slots, f"{100 * train / (span * slots):.1f}%",
            f"{100 * iters / (span * slots):.1f}%"]


def experiments_main(args, argv) -> int:
    started_at = time.time()
    rows = [experiment_share(Path(f), args.num_cpus) for f in args.experiments if Path(f, "spikesort_run.json").is_file()]
    table = common.markdown_table(["experiment", "trials", "epochs", "span s", "slots", "training steps",
                                   "whole epochs"], rows)
    print(table)
    body = "\n".join([
        "### Training share of full-size experiments (`benchmarks/throughput.py --experiments`)", "",
        common.provenance(common.script_command(__file__, argv), None, started_at),
        "", table, "",
        "Same definition as part 2 (sum of trials' final `train_seconds`, or of `time_this_iter_s`, over "
        "span x slots), the span running from the first trial's start to the last result (Ray's one-second "
        "timestamps), so the worker processes' start-up before the first trial is not in it.",
    ])
    common.write_section(args, SECTION + "_experiments", body)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.experiments:
        return experiments_main(args, argv)
    started_at = time.time()
    dataset, task = load_task(args)
    storage = tempfile.mkdtemp(prefix="throughput_")
    try:
        with common.LoadSampler() as load, common.ray_runtime(args.num_cpus):
            print(f"Part 1: {dataset.name}, {len(task.y_train)} training rows, {len(task.y_val)} validation rows")
            table, measured = side_by_side(dataset, task, args, storage)
            print(f"Part 2: {args.smoke_trials}-trial experiment, {args.smoke_epochs} epochs, grace 1")
            share = smoke_share(dataset, args, storage)
            prof = profile(dataset, task, args) if args.profile else None
    finally:
        shutil.rmtree(storage, ignore_errors=True)

    side_md = common.markdown_table(SIDE_HEADER, table)
    share_md = common.markdown_table(["where the slot-seconds went", "seconds", "share"], share_rows(share))
    ratios = [float(row[10]) for row in table]
    train_ratios = [float(row[7]) for row in table]
    worker_ratios = [float(row[6]) for row in table]
    loop_ratios = [float(row[5]) for row in table]
    niceness = sorted({m["worker_niceness"] for m in measured if "worker_niceness" in m})
    driver_cpu = statistics.median(m["driver_cpu"] for m in measured if "driver_cpu" in m)
    v1 = ("**Target met**" if min(ratios) >= TARGET_RATIO else "**Target not met**") + \
        (f": whole-epoch throughput of the project loop in a Ray trial / bare PyTorch = "
         f"{', '.join(f'{r:.2f}' for r in ratios)} (batch {args.batch_sizes}; target >= {TARGET_RATIO}); "
         f"train step alone {', '.join(f'{r:.2f}' for r in train_ratios)} in the Ray trial, "
         f"{', '.join(f'{r:.2f}' for r in loop_ratios)} for `fit` outside Ray, "
         f"{', '.join(f'{r:.2f}' for r in worker_ratios)} against the bare loop in a Ray worker "
         f"(Ray workers ran at niceness {', '.join(map(str, niceness))}; the Tune driver used a median "
         f"{100 * driver_cpu:.0f}% of a CPU while the trial ran).")
    v2 = ("**Target met**" if share["train_share"] >= TARGET_SHARE else "**Target not met**") + \
        (f": {100 * share['train_share']:.1f}% of the experiment's slot-seconds were training steps, "
         f"{100 * share['iter_share']:.1f}% whole epochs (target >= {100 * TARGET_SHARE:.0f}%): "
         f"{share['trials']} trials ({share['stopped']} stopped by ASHA), {share['epochs']} epochs, "
         f"wall {share['wall']:.1f} s x {share['slots']} slots.")
    print()
    print(side_md)
    print(v1)
    print()
    print(share_md)
    print(v2)
    if prof:
        print(prof)
    body = "\n".join([
        "## Training throughput (`benchmarks/throughput.py`)", "",
        common.provenance(common.script_command(__file__, argv), load, started_at),
        f"- Part 1: {dataset.name} tuning split ({len(task.y_train)} training rows, {len(task.y_val)} "
        f"validation rows), fixed cnn config `{ {k: v for k, v in CONFIG.items() if k != 'family'} }`, "
        f"1 torch thread each side, {args.reps} repetitions x {args.epochs} epochs per side and batch size "
        f"(first epoch of each run left out), alternated; medians of training samples per second.",
        f"- Part 2: {args.smoke_trials} trials x {args.smoke_epochs} epochs (TPE + ASHA, grace 1) on "
        f"{dataset.name}, {share['slots']} trials at once.", "",
        v1, "", side_md, "",
        "*train step*: the optimiser loop of one epoch (project: `train_seconds` from `fit`). *whole epoch*: "
        "training + validation (+ for the project: metrics, checkpoint, `tune.report`), project timed "
        "between consecutive results' arrival at the Tune driver.", "",
        v2, "", share_md, "",
        "Training share = sum over trials of the final `train_seconds` / (wall x slots); wall = "
        "`run_experiment` from building the trainable to the summary, slots = trials at once.",
    ])
    common.write_section(args, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
