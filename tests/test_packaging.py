"""`pip install .` (not only editable) must ship resources/ and models/ inside the package."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git for a clean source copy")
def test_wheel_contains_resources_and_models(tmp_path):
    pytest.importorskip("hatchling")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("tissue_inn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "tissue_inn/resources/tissues/colon.toml",
        "tissue_inn/resources/tissues/generic.toml",
        "tissue_inn/resources/cameras/spectrocam8.toml",
        "tissue_inn/resources/chromophores/hemoglobin_prahl.tsv",
        "tissue_inn/resources/chromophores/PROVENANCE.md",
    ):
        assert needed in names, needed
    shipped = [p for p in (ROOT / "models").glob("*/model_card.json")]
    for card in shipped:
        assert f"tissue_inn/models/{card.parent.name}/model_card.json" in names
        assert f"tissue_inn/models/{card.parent.name}/model.safetensors" in names
    assert any(n.endswith("entry_points.txt") for n in names)
