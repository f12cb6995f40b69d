"""scripts/sr_experiment.py --scene nc: the four images (LR, bicubic, SR, HR) of the NC Landsat-7 scene
classified by the same per-pixel Random Forest and assessed at the same validation points."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sr_experiment_nc_writes_four_assessed_rows(nc, tmp_path):
    out = tmp_path / "nc"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "sr_experiment.py"), "--scene", "nc", "--data",
                          str(nc), "--output", str(out), "--sr-epochs", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(out / "comparison.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["row"] for row in rows] == ["a", "b", "c", "d"]
    assert [row["pixel"] for row in rows] == ["114 m", "28.5 m", "28.5 m", "28.5 m"]
    assert len({row["points"] for row in rows}) == 1 and int(rows[0]["points"]) > 100  # the same points
    for row in rows:
        assert -1 <= float(row["kappa"]) <= 1 and 0 <= float(row["OA"]) <= 1 and 0 <= float(row["macro F1"]) <= 1
    assert float(rows[-1]["kappa"]) > 0.3  # the HR map is a real land-cover map
    assert (out / "comparison.html").exists()
    # the question's pairs are tested for significance at the same points (Compare accuracy, McNemar)
    with open(out / "compared_significance.csv", newline="", encoding="utf-8") as stream:
        tests = {frozenset((row["first"], row["second"])): row for row in csv.DictReader(stream)}
    assert {frozenset(("SR", "bicubic")), frozenset(("SR", "HR"))} <= set(tests)
    for row in tests.values():
        assert 0 <= float(row["McNemar p"]) <= 1 and int(row["samples"]) == int(rows[0]["points"])
    assert "McNemar p" in run.stdout and (out / "compared.html").exists()
