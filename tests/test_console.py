"""The console of a search (tuning/search/console.py): a line per ended trial, a progress line
(redrawn on a terminal, plain lines now and then elsewhere), the log file, and
``--verbose`` bringing Ray's own output back.

The reporter tests drive :class:`ConsoleReporter`, a ``tune.Callback``, with Ray Tune's own
``Trial`` objects (stubs: no Ray runtime) through the hooks Tune's loop calls (``setup``,
``on_step_end``, ``on_trial_complete`` / ``on_trial_error`` / ``on_trial_recover``,
``on_experiment_end``); the CLI tests run real searches.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys

import pytest
from ray.tune.experiment import Trial

from tuning.search import console
from tuning.search.console import ConsoleReporter, estimate_left_s, format_duration, progress_text

METRIC, MAX_EPOCHS = "val_accuracy", 4


def trial(trial_id: str, scores: list[float], status: str) -> Trial:
    t = Trial("train_trial", config={}, trial_id=trial_id, stub=True)
    for epoch, score in enumerate(scores, start=1):
        t.update_last_result({METRIC: score, "training_iteration": epoch})
    t.set_status(status)
    return t


def reporter(tty: bool, log_path=None, total: int = 3, scheduler: str = "ASHA") -> tuple[ConsoleReporter, io.StringIO]:
    out = io.StringIO()
    r = ConsoleReporter(METRIC, "max", total, MAX_EPOCHS, log_path, stream=out, tty=tty, scheduler=scheduler)
    r.setup(stop=None, num_samples=total, total_num_samples=total)
    return r, out


def end(r: ConsoleReporter, trials: list[Trial]) -> None:
    """What Tune calls as these trials end (in id order), then as the experiment ends."""
    for t in sorted(trials, key=lambda t: t.trial_id):
        if t.status == "ERROR":
            r.on_trial_error(iteration=1, trials=trials, trial=t)
        elif t.status == "TERMINATED":
            r.on_trial_complete(iteration=1, trials=trials, trial=t)
    r.on_experiment_end(trials=trials)


@pytest.fixture
def redraw_every_step(monkeypatch):
    monkeypatch.setattr(console, "TTY_REDRAW_S", 0.0)


def test_durations_and_estimate():
    assert [format_duration(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]
    # No estimate before a trial has ended.
    assert estimate_left_s(60, 10, [], [3], 4) is None
    # Ended trials trained 2 epochs on average; one running at 1 epoch, one not started:
    # 1 + 2 = 3 epochs left, at 10 epochs per 60 s -> 18 s.
    assert estimate_left_s(60, 10, [1, 3], [1], 4) == pytest.approx(18.0)
    line = progress_text(2, 1, 4, "val_accuracy 0.9000", 60, 18)
    assert line == "2/4 trials done, 1 running | best val_accuracy 0.9000 | 1m00s elapsed, ~18s left"
    assert progress_text(4, 0, 4, None, 90, None).endswith("1m30s elapsed")


def test_terminal_gets_one_redrawn_progress_line_and_a_line_per_ended_trial(redraw_every_step):
    r, out = reporter(tty=True)
    running = [trial("a_00000", [0.5], "RUNNING"), trial("a_00001", [0.6, 0.7], "RUNNING")]
    r.on_step_end(iteration=1, trials=running)
    r.on_step_end(iteration=2, trials=running)
    ended = [trial("a_00000", [0.5], "TERMINATED"), trial("a_00001", [0.6, 0.7, 0.8, 0.75], "TERMINATED"),
             trial("a_00002", [0.4], "ERROR")]
    r.on_trial_complete(iteration=3, trials=ended, trial=ended[0])
    assert "[1/3] trial a_00000" in out.getvalue()  # a trial that ended is reported at once
    end(r, ended)
    text = out.getvalue()
    # The progress line is redrawn in place (carriage return, erase to the end of line) ...
    assert text.startswith("\r0/3 trials done, 2 running | best val_accuracy 0.7000 | ")
    assert text.count("\r0/3 trials done") == 2
    # ... erased before a trial's line, which stays on its own line.
    lines = [l for l in re.split(r"\r\x1b\[K|\n", text) if l]
    trial_lines = [l for l in lines if l.startswith("[")]
    assert trial_lines[0] == "[1/3] trial a_00000: 1 epoch, best val_accuracy 0.5000, stopped early by ASHA"
    assert trial_lines[1] == "[2/3] trial a_00001: 4 epochs, best val_accuracy 0.8000, ran to the end"
    assert trial_lines[2].startswith("[3/3] trial a_00002 errored after 1 epoch (details: ")
    # The last progress line is kept (a newline, not erased) and is the last thing printed.
    assert text.endswith("\n") and "3/3 trials done, 0 running | best val_accuracy 0.8000" in text.splitlines()[-1]


def test_without_a_terminal_progress_is_plain_lines_now_and_then():
    r, out = reporter(tty=False)
    running = [trial("b_00000", [0.5], "RUNNING"), trial("b_00001", [0.6], "PENDING")]
    for step in range(5):  # steps within the first minute print no progress line
        r.on_step_end(iteration=step, trials=running)
    assert out.getvalue() == ""
    first = [trial("b_00000", [0.5, 0.6, 0.7, 0.9], "TERMINATED"), trial("b_00001", [0.6], "RUNNING")]
    r.on_trial_complete(iteration=6, trials=first, trial=first[0])
    end(r, [first[0], trial("b_00001", [0.6, 0.65], "TERMINATED")])
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[:2] == ["[1/3] trial b_00000: 4 epochs, best val_accuracy 0.9000, ran to the end",
                         "[2/3] trial b_00001: 2 epochs, best val_accuracy 0.6500, stopped early by ASHA"]
    assert len(lines) == 3 and lines[2].startswith("2/3 trials done, 0 running | best val_accuracy 0.9000 | ")


def test_a_resumed_search_does_not_report_its_old_trials_again():
    r, out = reporter(tty=False, total=2)
    r.on_step_end(iteration=1, trials=[trial("c_00000", [0.5, 0.6, 0.7, 0.8], "TERMINATED"),
                                       trial("c_00001", [0.4], "PENDING")])
    end(r, [trial("c_00000", [0.5, 0.6, 0.7, 0.8], "TERMINATED"), trial("c_00001", [0.4, 0.5], "TERMINATED")])
    lines = out.getvalue().splitlines()
    assert lines[0] == "1 of 2 trials had already ended before this run"
    assert [l for l in lines if l.startswith("[")] == [
        "[2/2] trial c_00001: 2 epochs, best val_accuracy 0.5000, stopped early by ASHA"]


def test_a_crash_that_tune_retries_gets_a_line():
    r, out = reporter(tty=False, total=1)
    crashing = trial("d_00000", [0.5, 0.6], "RUNNING")
    r.on_step_end(iteration=1, trials=[crashing])
    crashing.run_metadata.num_failures = 1  # Tune restarts it from its checkpoint
    r.on_trial_recover(iteration=2, trials=[crashing], trial=crashing)
    r.on_step_end(iteration=3, trials=[crashing])
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "trial d_00000 failed after 2 epochs (failure 1); Tune restarts it from its last checkpoint. Cause: "), lines


def test_reporter_pickles_without_its_stream():
    # Tune saves the reporter with the experiment (tuner.pkl): a stream cannot be pickled.
    r, _ = reporter(tty=True)
    copy = pickle.loads(pickle.dumps(r))
    assert copy.stream is sys.stdout and copy.objective == METRIC


@pytest.mark.subprocess
def test_verbose_brings_back_rays_own_output(tiny_dataset_dir, tmp_path):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    command = [sys.executable, "-m", "tuning", "tune", "ffn", "T2", "--data-dir", str(tiny_dataset_dir),
               "--storage", str(tmp_path / "ray_results"), "--samples", "2", "--max-epochs", "1",
               "--grace-period", "1", "--folds", "2", "--repeats", "1", "--num-cpus", "2",
               "--no-export", "--verbose"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # Ray Tune's own output: its experiment box, each trial's configuration, its status table.
    assert "Configuration for experiment" in out and "started with configuration" in out, out[-3000:]
    assert "Trial status:" in out
    assert not re.search(r"^\[\d+/2\] trial ", out, re.MULTILINE)  # not the quiet console
    assert re.search(r"^Log: .+tune\.log$", out, re.MULTILINE)


def test_trial_lines_name_the_scheduler_and_a_trial_cut_before_its_first_epoch():
    r, out = reporter(tty=False, total=2, scheduler="HyperBand")
    r.on_step_end(iteration=1, trials=[trial("e_00000", [0.5], "RUNNING"), trial("e_00001", [], "PENDING")])
    end(r, [trial("e_00000", [0.5, 0.6], "TERMINATED"), trial("e_00001", [], "TERMINATED")])
    assert [l for l in out.getvalue().splitlines() if l.startswith("[")] == [
        "[1/2] trial e_00000: 2 epochs, best val_accuracy 0.6000, stopped early by HyperBand",
        "[2/2] trial e_00001: 0 epochs, no val_accuracy, ended before its first epoch"]


def test_the_console_is_the_same_under_tunes_new_output_engine(ray_2cpu, tiny_dataset_dir, tmp_path, monkeypatch,
                                                              capsys):
    """The console is a ``tune.Callback``, not a reporter of Tune's legacy output engine: run
    under the new engine (``RAY_AIR_NEW_OUTPUT`` left alone, as with a Tune that has dropped
    the legacy one), a search prints the same lines, then its summary. The new engine at
    ``verbose=0`` adds only its experiment box and path lines at the start."""
    from tuning.search.driver import TuneSettings, load_for_tuning, run_experiment

    monkeypatch.setattr(console, "QUIET_ENGINE", None)
    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)
    settings = TuneSettings(samples=2, max_epochs=2, grace_period=2, folds=2, repeats=1,
                            data_dir=str(tiny_dataset_dir), storage=str(tmp_path / "ray_results")).effective()
    (group,) = load_for_tuning("ffn", "T2", settings)
    outcome = run_experiment("ffn", group, settings)
    assert outcome.complete
    lines = capsys.readouterr().out.splitlines()
    trial_lines = [i for i, l in enumerate(lines)
                   if re.match(r"^\[\d/2\] trial \w+: 2 epochs, best val_accuracy \d\.\d{4}, ran to the end$", l)]
    assert len(trial_lines) == 2, lines
    done = [i for i, l in enumerate(lines) if l.startswith("2/2 trials done, 0 running | best val_accuracy ")]
    summary = lines.index("== ffn on T2: 2 trials, 0 stopped early by ASHA, 0 errored")
    assert max(trial_lines) < done[-1] < summary, lines
    assert not any("Trial status" in l or "started with configuration" in l for l in lines)
    tune_header = lines[:min(trial_lines)]
    assert all(not l or l[0] in "╭│├╰" or l.startswith(("View detailed results here", "To visualize"))
               for l in tune_header), tune_header
