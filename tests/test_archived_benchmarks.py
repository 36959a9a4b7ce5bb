"""The settled studies of ``benchmarks/archive/`` in their quick forms on the tiny datasets,
writing into a temporary RESULTS.md. Marked ``archive``: they run only with ``pytest --archive``
(scripts/test.sh --archive), not in the default run or CI. ``selection``, ``levers``,
``ensemble`` and ``lever_cost`` train in this process; ``determinism_cost`` needs Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.archive import determinism_cost, ensemble, lever_cost, levers, selection

pytestmark = pytest.mark.archive


def _section(md: Path, name: str) -> str:
    text = md.read_text()
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    assert text.count(begin) == 1 and text.count(end) == 1, text
    return text[text.index(begin):text.index(end)]


def test_selection_then_levers_quick(module_tiny_dataset_dir, tmp_path):
    raw, md = tmp_path / "raw.json", tmp_path / "RESULTS.md"
    common = ["--data-dir", str(module_tiny_dataset_dir), "--results-md", str(md)]
    assert selection.main(["--quick", "--dataset", "T3", "--raw", str(raw), *common]) == 0
    saved = json.loads(raw.read_text())
    assert len(saved["trials"]) == 4 and all(0 <= t["full_split"] <= 1 for t in saved["trials"])
    assert all(len(t["history"]) == 3 and len(t["folds"]) == 2 for t in saved["trials"])
    text = md.read_text()
    assert "<!-- BEGIN selection-ffn-T3 -->" in text and "| window3 |" in text and "| best_epoch |" in text
    # The same tables again from the saved file, without training.
    assert selection.main(["--from-raw", str(raw), "--quick", "--results-md", str(tmp_path / "again.md")]) == 0
    assert "| window3 |" in (tmp_path / "again.md").read_text()

    assert levers.main(["--raw", str(raw), "--configs", "1", "--folds", "2", "--epochs", "2", "--quick",
                        *common]) == 0
    text = md.read_text()
    assert "<!-- BEGIN levers-ffn-T3 -->" in text and "| all three |" in text

    assert ensemble.main(["--raw", str(raw), "--k", "2", "--quick", *common]) == 0
    text = md.read_text()
    assert "<!-- BEGIN ensemble-ffn-T3 -->" in text and "| ensemble of 2 |" in text


def test_determinism_cost_quick(module_tiny_dataset_dir, ray_1cpu, tmp_path):
    md = tmp_path / "RESULTS.md"
    assert determinism_cost.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--dataset", "T2",
                                  "--results-md", str(md)]) == 0
    section = _section(md, determinism_cost.SECTION)
    assert "--deterministic / default wall time" in section and "- Machine: " in section


def test_lever_cost_quick_times_every_lever_against_off(module_tiny_dataset_dir, tmp_path):
    md = tmp_path / "RESULTS.md"
    assert lever_cost.main(["--quick", "--data-dir", str(module_tiny_dataset_dir), "--dataset", "T2",
                            "--results-md", str(md)]) == 0
    section = _section(md, lever_cost.SECTION)
    rows = {line.split("|")[2].strip(): line.split("|")[3:5] for line in section.splitlines()
            if line.startswith("| ffn |")}
    assert list(rows) == list(levers.LEVERS)  # one row per variant, in the levers benchmark's order
    assert all(float(ms) > 0 for ms, _ in rows.values())
    assert float(rows["off"][1]) == 1.0  # "off" against itself
    assert "- Machine: " in section
