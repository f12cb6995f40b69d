"""Does super-resolution help? (patchflow:comparesr) on the 1.5 m Spot-6-like Amsterdam scene, through
processing.run, with REPEATS=3: the building labels located from the OTBTF patches (scripts/amsterdam_labels.py),
the Random Forest with spatial features, x4 (LR 6 m), on the half of the scene that holds the buildings. The
labels cover only the patches, so the kappas are low; the test checks the experiment, not the answer: four
versions at their pixel sizes, three seeds each, intervals, the three tests, a sentence that says what the
figures say, nothing beside the inputs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from osgeo import gdal

CROP = (0, 448, 1024, 512)  # rows 448-959, every column: the buildings' labels are in rows 627-961
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


@pytest.mark.slow
def test_compare_sr_on_spot6_with_three_repeats(run_alg, spot6, tmp_path):
    import amsterdam_labels

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    whole = tmp_path / "buildings.tif"
    amsterdam_labels.make_labels(spot6, whole)
    hr, labels = inputs / "spot6.tif", inputs / "buildings.tif"  # the half of the scene that holds the buildings
    gdal.Translate(str(hr), str(spot6 / "fake_spot6.jp2"), srcWin=list(CROP))
    gdal.Translate(str(labels), str(whole), srcWin=list(CROP))
    before = sorted(os.listdir(spot6)), sorted(os.listdir(inputs))  # the labels' own .aux.xml: category names
    result = run_alg("comparesr", HR=str(hr), LABELS=str(labels), CLASSIFIER=2, SCALE=4,
                     REPEATS=3, SR_EPOCHS=3, SR_PATCH_SIZE=8, SAMPLES=50, RESAMPLES=500,
                     OUTPUT=str(tmp_path / "comparison"))
    with open(tmp_path / "comparison" / "comparison.json", encoding="utf-8") as stream:
        comparison = json.load(stream, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    versions = comparison["versions"]
    assert list(versions) == ["lr", "bicubic", "sr", "hr"]
    assert versions["lr"]["pixel_size"] == pytest.approx(6.0) and versions["hr"]["pixel_size"] == pytest.approx(1.5)
    for version in versions.values():
        kappas = version["kappa"]["repeats"]
        assert len(kappas) == 3 and version["kappa"]["sd"] is not None
        assert version["kappa"]["mean"] == pytest.approx(sum(kappas) / 3)
        low, high = version["intervals"]["kappa"]
        assert -1 <= low <= high <= 1
    gain = comparison["tests"][0]
    assert (gain["first"], gain["second"]) == ("sr", "bicubic")
    difference = versions["sr"]["kappa"]["mean"] - versions["bicubic"]["kappa"]["mean"]
    assert gain["kappa_difference"] == pytest.approx(difference,
                                                     abs=1e-9)
    assert result["SR_GAIN"] == pytest.approx(gain["kappa_difference"]) and result["ANSWER"] == comparison["answer"]
    assert "Random Forest" in comparison["answer"] and f"{abs(gain['kappa_difference']):.3f}" in comparison["answer"]
    best = max(version["kappa"]["mean"] for version in versions.values())
    assert ("no version maps the classes" in comparison["answer"]) == (best < 0.2)  # labels only in the patches
    assert (sorted(os.listdir(spot6)), sorted(os.listdir(inputs))) == before  # nothing beside the inputs
    print(f"\nspot6: {comparison['answer']}")
    for key, version in versions.items():
        print(f"{key:8} kappa {version['kappa']['mean']:.3f} ± {version['kappa']['sd']:.3f} "
              f"[{version['intervals']['kappa'][0]:.3f}, {version['intervals']['kappa'][1]:.3f}]")
