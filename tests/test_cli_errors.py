"""Bad input through the real CLI: one ``error:`` line naming the file, exit code 2,
no traceback, and nothing started (no Ray, no experiment folder).

Every case runs ``python -m tuning`` in a subprocess from its own empty working folder,
with ``--storage`` and ``--results-dir`` inside it, so "Ray never started" is visible on
disk: no ``ray_results`` or ``results`` folder appears, and stderr holds nothing but the
one error line (a Ray start logs "Started a local Ray instance" there).

Most of a run is Python importing torch, Ray and pandas, so the selected cases run two at
a time (a module fixture); each case is still its own test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import _write_csv as write_csv, make_waveforms

LENGTH = 6
HEADER = [f"s{i}" for i in range(LENGTH)] + ["label"]
PARALLEL = 2


def good_rows(n_per_class: int = 8, n_classes: int = 2) -> list[list[str]]:
    X, y = make_waveforms(n_classes, n_per_class, length=LENGTH, seed=1)
    return [[f"{v:.2f}" for v in x] + [str(int(c))] for x, c in zip(X, y)]


def tune_args(work: Path, dataset: str, *extra: str, family: str = "ffn") -> list[str]:
    return ["tune", family, dataset, "--data-dir", str(work / "data"),
            "--storage", str(work / "ray_results"), "--results-dir", str(work / "results"),
            "--samples", "2", "--max-epochs", "2", "--grace-period", "1", "--folds", "2",
            "--repeats", "1", "--num-cpus", "2", *extra]


# Each case: work folder (holding an empty data/) -> (CLI arguments, fragments of the error line).
CASES = {}


def case(function):
    CASES[function.__name__.removeprefix("case_")] = function
    return function


@case
def case_missing_file(work):
    path = work / "data" / "nope.csv"
    return tune_args(work, str(path)), [str(path), "not found"]


@case
def case_empty_file(work):
    path = work / "data" / "E.csv"
    path.write_text("")
    return tune_args(work, "E"), [str(path), "empty"]


@case
def case_header_only(work):
    path = write_csv(work / "data" / "H.csv", HEADER, [])
    return tune_args(work, "H"), [str(path), "no data rows"]


@case
def case_ragged_row(work):
    rows = good_rows()
    rows[4] = rows[4][:-2]  # file line 6 (the header is line 1)
    path = write_csv(work / "data" / "R.csv", HEADER, rows)
    return tune_args(work, "R"), [str(path), "line 6", f"{LENGTH - 1} fields", f"header has {LENGTH + 1}"]


@case
def case_non_numeric_cell(work):
    rows = good_rows()
    rows[2][3] = "abc"  # line 4, column s3
    path = write_csv(work / "data" / "N.csv", HEADER, rows)
    return tune_args(work, "N"), [str(path), "line 4", "column 's3'", "'abc'", "not a number"]


@case
def case_nan_cell(work):
    rows = good_rows()
    rows[5][1] = "nan"  # line 7, column s1
    path = write_csv(work / "data" / "NaN.csv", HEADER, rows)
    return tune_args(work, "NaN"), [str(path), "line 7", "column 's1'", "not a finite number"]


@case
def case_inf_cell(work):
    rows = good_rows()
    rows[9][0] = "-inf"  # line 11, column s0
    path = write_csv(work / "data" / "Inf.csv", HEADER, rows)
    return tune_args(work, "Inf"), [str(path), "line 11", "column 's0'", "not a finite number"]


@case
def case_no_label_column(work):
    path = write_csv(work / "data" / "One.csv", ["s0"], [[f"{v}.5"] for v in range(20)])
    return tune_args(work, "One"), [str(path), "only one column"]


@case
def case_single_class(work):
    path = write_csv(work / "data" / "S.csv", HEADER, [r[:-1] + ["7"] for r in good_rows()])
    return tune_args(work, "S"), [str(path), "single class", "'label'"]


@case
def case_class_too_small_for_folds(work):
    rows = good_rows(n_per_class=12)
    rows = [r for r in rows if r[-1] == "0"] + [r for r in rows if r[-1] == "1"][:4]  # 5 folds need 5
    path = write_csv(work / "data" / "Small.csv", HEADER, rows)
    args = ["tune", "ffn", "Small", "--data-dir", str(work / "data"), "--storage", str(work / "ray_results"),
            "--results-dir", str(work / "results"), "--folds", "5", "--num-cpus", "2"]
    return args, [str(path), "class '1' has 4 rows", "at least 5", "--folds"]


@case
def case_unknown_dataset_name(work):
    write_csv(work / "data" / "A2.csv", HEADER, good_rows())
    return tune_args(work, "A99"), ["'A99'", str(work / "data" / "A99.csv"), "available", "A2"]


@case
def case_unknown_family(work):
    write_csv(work / "data" / "A2.csv", HEADER, good_rows())
    return tune_args(work, "A2", family="transformer"), ["'transformer'", "ffn, cnn, lstm"]


@case
def case_bad_metric(work):
    write_csv(work / "data" / "A2.csv", HEADER, good_rows())
    return tune_args(work, "A2", "--metric", "auc"), ["--metric 'auc'", "balanced_accuracy"]


@case
def case_negative_ensemble(work):
    write_csv(work / "data" / "A2.csv", HEADER, good_rows())
    return tune_args(work, "A2", "--ensemble", "-1"), ["--ensemble", "got -1"]


@case
def case_negative_race(work):
    write_csv(work / "data" / "A2.csv", HEADER, good_rows())
    return tune_args(work, "A2", "--race", "-1"), ["--race", "got -1"]


@case
def case_negative_max_mflop(work):
    write_csv(work / "data" / "A2.csv", HEADER, good_rows())
    return tune_args(work, "A2", "--max-mflop", "-1"), ["--max-mflop", "got -1"]


@case
def case_cap_no_network_fits(work):
    path = write_csv(work / "data" / "A2.csv", HEADER, good_rows())
    return (tune_args(work, "A2", "--max-mflop", "0.000001", family="cnn"),
            [str(path), "no cnn network", "--max-mflop none"])


@case
def case_export_empty_folder(work):
    empty = work / "data" / "empty_experiment"
    empty.mkdir()
    return (["export", str(empty), "--results-dir", str(work / "results"), "--num-cpus", "2"],
            [str(empty), "spikesort_run.json"])


@case
def case_export_folder_that_is_not_an_experiment(work):
    folder = work / "data"
    write_csv(folder / "A2.csv", HEADER, good_rows())
    return (["export", str(folder), "--results-dir", str(work / "results"), "--num-cpus", "2"],
            [str(folder), "not an experiment folder"])


@case
def case_results_dir_inside_a_file(work):
    write_csv(work / "data" / "A2.csv", HEADER, good_rows())
    blocker = work / "data" / "taken"
    blocker.write_text("a file, not a folder\n")
    args = tune_args(work, "A2")
    args[args.index("--results-dir") + 1] = str(blocker / "results")
    return args, ["--results-dir", str(blocker / "results"), f"inside {blocker}, which is a file"]


@case
def case_storage_is_a_file(work):
    write_csv(work / "data" / "A2.csv", HEADER, good_rows())
    blocker = work / "data" / "taken"
    blocker.write_text("a file, not a folder\n")
    args = tune_args(work, "A2")
    args[args.index("--storage") + 1] = str(blocker)
    return args, ["--storage", str(blocker), "is a file, not a folder"]


@case
def case_export_results_dir_inside_a_file(work):
    blocker = work / "data" / "taken"
    blocker.write_text("a file, not a folder\n")
    return (["export", str(work / "data"), "--results-dir", str(blocker / "results"), "--num-cpus", "2"],
            ["--results-dir", f"inside {blocker}, which is a file"])


def debug_case(work):
    path = work / "data" / "E.csv"
    path.write_text("")
    return ["--debug", *tune_args(work, "E")], [str(path)]


def debug_after_subcommand_case(work):
    path = work / "data" / "E.csv"
    path.write_text("")
    return [*tune_args(work, "E"), "--debug"], [str(path)]


def run_cli(work: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "tuning", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_results(request, tmp_path_factory) -> dict:
    """name -> (completed process, work folder, fragments), for the cases this session runs."""
    here = Path(request.node.fspath)
    wanted = set()
    for item in request.session.items:
        if Path(item.fspath) != here:
            continue
        params = getattr(item, "callspec", None)
        wanted.add(params.params["name"] if params and "name" in params.params else item.originalname)
    builders = {**CASES, "test_debug_shows_traceback": debug_case,
                "test_debug_after_the_subcommand_shows_traceback": debug_after_subcommand_case}
    prepared = {}
    for name in sorted(wanted & set(builders)):
        work = tmp_path_factory.mktemp(name)
        (work / "data").mkdir()
        prepared[name] = (work, *builders[name](work))
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {name: pool.submit(run_cli, work, args) for name, (work, args, _) in prepared.items()}
        return {name: (futures[name].result(), work, fragments)
                for name, (work, _, fragments) in prepared.items()}


def assert_nothing_started(work: Path) -> None:
    """Validation happens before Ray starts: no experiment or results folder anywhere."""
    assert not (work / "ray_results").exists()
    assert not (work / "results").exists()
    assert sorted(p.name for p in work.iterdir()) == ["data"]


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.subprocess
def test_bad_input_is_one_error_line(cli_results, name):
    result, work, fragments = cli_results[name]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert_nothing_started(work)


def check_debug(cli_results, name):
    result, work, fragments = cli_results[name]
    assert result.returncode not in (0, 2)  # the exception propagates instead
    assert "Traceback (most recent call last)" in result.stderr
    assert "tuning.errors.InputError" in result.stderr
    assert all(fragment in result.stderr for fragment in fragments)
    assert_nothing_started(work)


@pytest.mark.subprocess
def test_debug_shows_traceback(cli_results):
    check_debug(cli_results, "test_debug_shows_traceback")


@pytest.mark.subprocess
def test_debug_after_the_subcommand_shows_traceback(cli_results):
    check_debug(cli_results, "test_debug_after_the_subcommand_shows_traceback")


def test_resume_command_runs_as_typed(monkeypatch, tmp_path):
    """Through scripts/tune.sh when it started the run, else this Python (not a bare
    ``python``, which may not be the venv's); the unfinished datasets replace the argument."""
    from tuning.cli import LAUNCHER_ENV, resume_command

    argv = ["tune", "--debug", "cnn", "all", "--samples", "3", "--resume"]
    monkeypatch.delenv(LAUNCHER_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # the interpreter is outside it: its absolute path
    assert resume_command(argv, dataset="A3,A4", original="all", family="cnn") == (
        f"{sys.executable} -m tuning tune --debug cnn A3,A4 --samples 3 --resume")
    monkeypatch.setenv(LAUNCHER_ENV, "../repo/scripts/tune.sh")
    assert resume_command(argv, dataset="A3,A4", original="all", family="cnn") == (
        "../repo/scripts/tune.sh --debug cnn A3,A4 --samples 3 --resume")
    assert resume_command(["tune", "ffn", "A2"]) == "../repo/scripts/tune.sh ffn A2 --resume"
