"""A real two-node Ray cluster on this machine, started and stopped by
``scripts/start_local_cluster.sh`` (head 1 CPU + worker 1 CPU, token auth), and one smoke
search through the CLI with ``--address``:

* the trials run on both nodes (node ids in the trial results and the export rows),
* one trial raises once (``SPIKESORT_TUNE_FAULT_ONCE``, set for the driver only, so it also
  checks that the driver forwards it to the cluster's workers) and is retried from its
  checkpoint, and the search completes and exports,
* the driver joins with ``RAY_AUTH_MODE`` unset (tuning.search.ray_runtime turns token mode on),
* ``stop`` leaves no process of the cluster behind.

Two trials are parked at epoch 1 (``SPIKESORT_TUNE_HOLD_AT``) until both are running, so
that they must be on different nodes (one CPU each) however fast the trials are. The script
keeps the nodes in a short run folder of their own (Ray's socket paths must stay under 107
characters) and stops exactly the processes it started; the test never calls ``ray stop``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "start_local_cluster.sh"
SAMPLES, EPOCHS = 4, 4
WAIT_LIMIT_S = 300  # a guard against hanging, not a speed requirement

pytestmark = pytest.mark.cluster


def cluster_pids(run_dir: str) -> list[int]:
    """Processes carrying the script's marker for this run folder (the nodes and their workers)."""
    entry = f"SPIKESORT_LOCAL_CLUSTER_NODE={run_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if entry in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def local_cluster():
    """Head + one worker, one CPU each; stopped (and checked gone) after the module."""
    run_dir = tempfile.mkdtemp(prefix="sstc-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env.update(SPIKESORT_CLUSTER_DIR=run_dir, RAY_USAGE_STATS_ENABLED="0")
    try:
        started = subprocess.run([str(SCRIPT), "1", "1"], env=env, capture_output=True, text=True,
                                 timeout=WAIT_LIMIT_S)
        assert started.returncode == 0, started.stdout + started.stderr
        address = Path(run_dir, "address").read_text().strip()
        pids = Path(run_dir, "pids").read_text().split()
        assert len(pids) == 2 and address.startswith("127.0.0.1:")
        assert f"--address {address}" in started.stdout and "start_local_cluster.sh stop" in started.stdout
        print(f"\nlocal cluster: {Path(run_dir, 'timings').read_text().strip()}")
        yield {"address": address, "dir": run_dir, "env": env, "output": started.stdout}
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, text=True,
                                 timeout=WAIT_LIMIT_S)
        left = cluster_pids(run_dir)
        for pid in left:  # not expected; never leave them running
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(run_dir, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert left == [], f"processes of the local cluster left after stop: {left}"


@pytest.fixture(scope="module")
def cluster_search(local_cluster, tmp_path_factory):
    """``tune ffn T2`` through the CLI on the cluster, with one injected fault; its folders."""
    from conftest import TINY_LENGTH, TINY_ROWS_PER_CLASS, _write_csv, make_waveforms

    root = tmp_path_factory.mktemp("cluster_search")
    data = root / "data"  # T2 of the tiny_dataset_dir fixture (which is per test, not per module)
    X, y = make_waveforms(2, TINY_ROWS_PER_CLASS, seed=2)
    _write_csv(data / "T2.csv", [f"s{i}" for i in range(TINY_LENGTH)] + ["label"],
               ([f"{v:.2f}" for v in x] + [str(int(c))] for x, c in zip(X, y)))
    hold, storage, results = root / "hold", root / "ray_results", root / "results"
    hold.mkdir()
    env = {**local_cluster["env"], "SPIKESORT_TUNE_HOLD_AT": f"1:{hold}",
           "SPIKESORT_TUNE_FAULT_ONCE": f"2:{root / 'fault_marker'}"}
    env.pop("SPIKESORT_CLUSTER_DIR")
    command = [sys.executable, "-m", "tuning", "tune", "ffn", "T2", "--samples", str(SAMPLES),
               "--max-epochs", str(EPOCHS), "--grace-period", str(EPOCHS), "--folds", "2", "--repeats", "1",
               "--data-dir", str(data), "--address", local_cluster["address"], "--storage", str(storage),
               "--results-dir", str(results)]
    with open(root / "tune.log", "w") as log:
        driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + WAIT_LIMIT_S
            while len(list(hold.glob("*.held"))) < 2:  # both slots busy: one trial per node
                assert driver.poll() is None, (root / "tune.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "two trials never ran at once"
                time.sleep(0.2)
            held_nodes = {p.read_text().split()[1] for p in hold.glob("*.held")}
            (hold / "release").touch()
            code = driver.wait(timeout=WAIT_LIMIT_S)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
    output = (root / "tune.log").read_text()
    assert code == 0, output[-3000:]
    (experiment,) = storage.glob("ffn-T2-*")
    return {"experiment": experiment, "results": results, "held_nodes": held_nodes, "output": output,
            "log": (experiment / "tune.log").read_text(), "fault_marker": root / "fault_marker"}


def trial_results(experiment: Path) -> dict[str, pd.DataFrame]:
    return {folder.name.removeprefix("trial_"):
            pd.DataFrame([json.loads(line) for line in (folder / "result.json").read_text().splitlines()])
            for folder in sorted(experiment.glob("trial_*"))}


def test_trials_run_on_both_nodes_and_the_search_exports(cluster_search):
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(cluster_search["experiment"]))
    assert len(analysis.trials) == SAMPLES
    assert {t.status for t in analysis.trials} == {"TERMINATED"}

    results = trial_results(cluster_search["experiment"])
    trial_nodes = set().union(*(set(r["node_id"]) for r in results.values()))
    assert len(cluster_search["held_nodes"]) == 2  # the two trials running at once, one per node
    assert trial_nodes == cluster_search["held_nodes"]
    spread = {node[:8]: sum(node in set(r["node_id"]) for r in results.values()) for node in trial_nodes}
    print(f"\ntrials that ran (at least one epoch) on each node: {spread}")

    approach = cluster_search["results"] / "Classic FFN PyTorch"
    best = pd.read_csv(approach / "Best Performance Results" / "Classic_FFN_best_performers.csv")
    assert best["dataset"].tolist() == ["T2"] and bool(best["search_complete"].iloc[0])
    assert int(best["n_trials"].iloc[0]) == SAMPLES
    folds = pd.read_csv(approach / "Individual Dataset Results" / "Classic_FFN_full_split_metrics_T2.csv",
                        dtype={"node_id": str})
    assert len(folds) == 2 and set(folds["node_id"]) <= trial_nodes  # reruns ran on the cluster


def test_a_crashing_trial_is_retried_from_its_checkpoint(cluster_search):
    failed_trial, failed_epoch = cluster_search["fault_marker"].read_text().split()
    assert failed_epoch == "2"
    # The console says that the trial failed and is retried; Tune's traceback is in the log.
    assert re.search(rf"^trial {failed_trial} failed after \d+ epochs \(failure 1\); Tune restarts it",
                     cluster_search["output"], re.MULTILINE), cluster_search["output"][-3000:]
    assert "injected fault after epoch 2" in cluster_search["log"]
    history = trial_results(cluster_search["experiment"])[failed_trial]
    # Retried from the checkpoint of epoch 2: epochs 3 and 4 follow, none repeated.
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert history["training_iteration"].tolist() == list(range(1, EPOCHS + 1))
    from ray.tune import ExperimentAnalysis

    (trial,) = [t for t in ExperimentAnalysis(str(cluster_search["experiment"])).trials
                if t.trial_id == failed_trial]
    assert trial.status == "TERMINATED" and trial.run_metadata.num_failures == 1


def test_the_script_refuses_a_second_cluster_in_the_same_folder(local_cluster):
    again = subprocess.run([str(SCRIPT), "1", "1"], env=local_cluster["env"], capture_output=True,
                           text=True, timeout=WAIT_LIMIT_S)
    assert again.returncode == 1 and "stop it first" in again.stderr
    assert Path(local_cluster["dir"], "address").read_text().strip() == local_cluster["address"]


def test_two_replicates_of_a_study_run_side_by_side_on_the_cluster(local_cluster, tmp_path):
    """Two study drivers (``--only-replicate 0`` and ``1``) share the cluster: each replicate's
    trial is parked after epoch 1 until both are, so both replicates are running at once (on
    the two nodes); a third run without ``--only-replicate`` gathers both records, runs no
    search and writes the report."""
    from conftest import write_tiny_datasets

    data = write_tiny_datasets(tmp_path / "data")
    hold, logs = tmp_path / "hold", tmp_path / "logs"
    hold.mkdir()
    logs.mkdir()
    env = {**local_cluster["env"], "SPIKESORT_TUNE_HOLD_AT": f"1:{hold}"}
    env.pop("SPIKESORT_CLUSTER_DIR")
    study = [sys.executable, "-m", "tuning", "study", "--families", "ffn", "--datasets", "T2", "--replicates", "2",
             "--samples", "1", "--max-epochs", "2", "--grace-period", "2", "--time-budget", "0", "--folds", "2",
             "--repeats", "1", "--data-dir", str(data), "--address", local_cluster["address"],
             "--storage", str(tmp_path / "ray_results"), "--results-dir", str(tmp_path / "results")]
    drivers = []
    try:
        for r in (0, 1):
            with open(logs / f"replicate-{r}.log", "w") as log:
                drivers.append(subprocess.Popen([*study, "--only-replicate", str(r), "--no-export"], cwd=REPO, env=env,
                                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True))
        deadline = time.monotonic() + WAIT_LIMIT_S
        while len(list(hold.glob("*.held"))) < 2:  # a trial of each replicate, running at once
            for r, driver in enumerate(drivers):
                assert driver.poll() is None, (logs / f"replicate-{r}.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the two replicates never ran at once"
            time.sleep(0.2)
        held_nodes = {p.read_text().split()[1] for p in hold.glob("*.held")}
        (hold / "release").touch()
        codes = [driver.wait(timeout=WAIT_LIMIT_S) for driver in drivers]
    finally:
        for driver in drivers:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
    assert codes == [0, 0], [(logs / f"replicate-{r}.log").read_text()[-2000:] for r in (0, 1)]
    assert len(held_nodes) == 2  # one CPU per node: the two replicates' trials on the two nodes
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "results" / "Study" / "Replicates").rglob("*.json"))]
    assert [r["replicate"] for r in records] == [0, 1]
    first, second = records
    assert first["started_at"] < second["ended_at"] and second["started_at"] < first["ended_at"]  # overlapping
    gather = subprocess.run([*study, "--no-export"], cwd=REPO, env={k: v for k, v in env.items()
                                                                    if k != "SPIKESORT_TUNE_HOLD_AT"},
                            capture_output=True, text=True, timeout=WAIT_LIMIT_S)
    assert gather.returncode == 0, gather.stderr[-3000:]
    assert gather.stderr.count("reused") == 2
    assert "| T2 | ffn | 2 |" in gather.stdout  # the spread of ffn's pick over both replicates
