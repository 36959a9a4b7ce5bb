"""``benchmarks/selection.py``, ``levers.py`` and ``ensemble.py`` in their quick forms on a tiny
dataset (no Ray: both train in this process), writing into a temporary RESULTS.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import ensemble, levers, selection  # noqa: E402


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
