"""`pip install .` (not only editable) must ship resources/, models/, configs/ and the sample inside the package."""

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
        "tissue_inn/resources/samples/colon_sample.h5",
        "tissue_inn/cli/__init__.py",
    ):
        assert needed in names, needed
    shipped = [p for p in (ROOT / "models").glob("*/model_card.json")]
    for card in shipped:
        assert f"tissue_inn/models/{card.parent.name}/model_card.json" in names
        assert f"tissue_inn/models/{card.parent.name}/model.safetensors" in names
    configs = sorted(p.name for p in (ROOT / "configs").glob("*.toml"))
    assert configs, "the checkout has configs/*.toml"
    for name in configs:
        assert f"tissue_inn/configs/{name}" in names, name
    assert any(n.endswith("entry_points.txt") for n in names)


def test_sdist_carries_configs_scripts_and_the_science_notes(tmp_path):
    pytest.importorskip("hatchling")
    import tarfile

    r = subprocess.run([sys.executable, "-c", f"from hatchling.build import build_sdist; print(build_sdist({str(tmp_path)!r}))"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    names = {n.split("/", 1)[1] for n in tarfile.open(tmp_path / r.stdout.strip().splitlines()[-1]).getnames() if "/" in n}
    for needed in ("configs/train_cinn.toml", "scripts/setup_env.sh", "scripts/setup_plan.py", "docs/SCIENCE.md",
                   "resources/samples/colon_sample.h5", "pyproject.toml"):
        assert needed in names, needed


def test_config_command_prints_and_writes_a_shipped_template(tmp_path, capsys):
    from tissue_inn.cli import main

    assert main(["config"]) == 0
    listed = capsys.readouterr().out
    assert "train_cinn" in listed and "train_inn" in listed
    assert main(["config", "train_cinn"]) == 0
    assert capsys.readouterr().out == (ROOT / "configs" / "train_cinn.toml").read_text()
    out = tmp_path / "mine.toml"
    assert main(["config", "configs/train_inn.toml", "-o", str(out)]) == 0
    assert out.read_text() == (ROOT / "configs" / "train_inn.toml").read_text()
    assert main(["config", "train_inn", "-o", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["config", "kidney"]) == 2
    assert "train_cinn" in capsys.readouterr().err


def test_sample_names_the_shipped_image(tmp_path, monkeypatch):
    from tissue_inn.cli.infer import resolve_image

    assert resolve_image(Path("sample")).name == "colon_sample.h5" and resolve_image(Path("sample")).is_file()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample").write_text("a file of that name wins")
    assert resolve_image(Path("sample")) == Path("sample")
    assert resolve_image(Path("other.h5")) == Path("other.h5")


def test_messages_name_no_internal_arguments():
    """What users read (our errors, warnings, printed lines) speaks in CLI flags ("pass --force"), not Python
    keyword arguments ("pass force=True"). Programming errors (ValueError for a wrong call) may name arguments."""
    import ast
    import re

    import tissue_inn.errors as errors

    user_errors = set(errors.__all__)
    speakers = {"warn", "print", "say"}
    advice = re.compile(r"\b(pass|use|set|give)\s+[a-z_]+=\S|\([a-z_]+=(True|False|None)\)")

    def name_of(func) -> str:
        return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""

    offenders = []
    for path in (ROOT / "tissue_inn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            call = node.exc if isinstance(node, ast.Raise) else node
            if not isinstance(call, ast.Call):
                continue
            name = name_of(call.func)
            if not (name in speakers or (isinstance(node, ast.Raise) and name in user_errors)):
                continue
            for sub in ast.walk(call):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and advice.search(sub.value):
                    offenders.append(f"{path.relative_to(ROOT)}:{sub.lineno}: {sub.value[:80]}")
    assert not offenders, offenders
