"""The test tiers of tests/conftest.py, run on a small inner suite in this process (pytester).

The inner suite gets a copy of the real conftest and setup.cfg, so these tests check the rules
the project's own suite runs under: ``--fast`` leaves out the marked tests and the users of the
Ray fixtures, and fails an unmarked test that starts a subprocess or a Ray runtime, even one
that swallows the refusal; ``archive`` tests run only with ``--archive``. Nothing here starts
a process or Ray: the inner guards refuse before anything is started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

INNER_TESTS = '''
import subprocess

import pytest


def test_plain():
    assert sum([1, 2]) == 3


def test_starts_a_subprocess():
    subprocess.run(["true"], check=True)


def test_swallows_the_refusal_of_ray():
    import ray

    try:
        ray.init(num_cpus=1)
    except Exception:
        pass


@pytest.fixture
def indirect_ray(ray_2cpu):
    return ray_2cpu


def test_uses_a_ray_fixture(indirect_ray):
    raise AssertionError("must not run in the fast tier")


@pytest.mark.subprocess
def test_marked_subprocess():
    raise AssertionError("must not run in the fast tier")


@pytest.mark.archive
def test_of_an_archived_benchmark():
    assert True
'''


@pytest.fixture
def inner(pytester):
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makefile(".cfg", setup=(ROOT / "setup.cfg").read_text())
    return pytester.makepyfile(test_inner_tiers=INNER_TESTS)


def test_fast_tier_runs_the_unmarked_and_fails_what_starts_a_process(inner, pytester):
    run = pytester.inline_run(inner, "--fast", "-p", "no:cacheprovider")
    run.assertoutcome(passed=1, failed=2)
    assert sorted(item.name for item in run.getcall("pytest_deselected").items) == [
        "test_marked_subprocess", "test_of_an_archived_benchmark", "test_uses_a_ray_fixture"]
    failures = {report.head_line: str(report.longrepr) for report in run.getfailures()}
    assert set(failures) == {"test_starts_a_subprocess", "test_swallows_the_refusal_of_ray"}
    assert ("fast tier: this test started a subprocess (['true'])" in failures["test_starts_a_subprocess"]
            and "Mark it @pytest.mark.subprocess" in failures["test_starts_a_subprocess"])
    assert ("fast tier: this test started a Ray runtime (ray.init)" in failures["test_swallows_the_refusal_of_ray"]
            and "Mark it @pytest.mark.ray" in failures["test_swallows_the_refusal_of_ray"])


def test_users_of_the_ray_fixtures_are_marked_ray_and_archive_needs_its_flag(inner, pytester):
    # Collection only: nothing runs, so the full tier's absence of guards starts nothing.
    ray_tests = pytester.runpytest_inprocess(inner, "-m", "ray", "--co", "-q", "-p", "no:cacheprovider")
    ray_tests.stdout.fnmatch_lines(["*test_uses_a_ray_fixture*", "1/6 tests collected (5 deselected)*"])
    with_archive = pytester.runpytest_inprocess(inner, "--archive", "--co", "-q", "-p", "no:cacheprovider")
    with_archive.stdout.fnmatch_lines(["*test_of_an_archived_benchmark*", "6 tests collected*"])


def test_unknown_markers_are_refused(pytester):
    """A typo in a tier marker would quietly keep a test in the fast tier: --strict-markers."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makefile(".cfg", setup=(ROOT / "setup.cfg").read_text())
    path = pytester.makepyfile(test_typo="import pytest\n\n@pytest.mark.subproces\ndef test_x():\n    pass\n")
    result = pytester.runpytest_inprocess(path, "--fast", "-p", "no:cacheprovider")
    assert result.ret != 0 and "'subproces' not found in `markers`" in result.stdout.str()
