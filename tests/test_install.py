"""The setup script's decisions (scripts/setup_plan.py): which torch build, and when pip can be skipped.

The download itself is not tested; the pip resolutions below are shaped like ``pip install --report``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("setup_plan", ROOT / "scripts" / "setup_plan.py")
plan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plan)


def _report(*packages: tuple[str, str]) -> dict:
    return {"install": [{"metadata": {"name": n, "version": v}} for n, v in packages]}


PYPI_LINUX = _report(("torch", "2.13.0"), ("nvidia-cublas-cu12", "12.8.4.1"), ("triton", "3.5.0"),
                     ("sympy", "1.14.0"))
LOCAL_CPU = _report(("torch", "2.13.0+cpu"), ("sympy", "1.14.0"), ("filelock", "3.20.0"))
MAC_LIKE = _report(("torch", "2.13.0"), ("sympy", "1.14.0"))


@pytest.mark.parametrize(
    ("env", "gpu", "expected"),
    [({}, False, "cpu"), ({}, True, "cuda"), ({"TISSUE_INN_TORCH": "auto"}, True, "cuda"),
     ({"TISSUE_INN_TORCH": "cpu"}, True, "cpu"), ({"TISSUE_INN_TORCH": "CUDA"}, False, "cuda"),
     ({"TISSUE_INN_TORCH": " "}, False, "cpu")],
)
def test_choice_follows_gpu_and_override(env, gpu, expected):
    assert plan.resolve_choice(plan.requested_choice(env), gpu) == expected


def test_unknown_choice_is_refused_with_the_options():
    with pytest.raises(plan.SetupError, match="auto, cpu, cuda"):
        plan.requested_choice({"TISSUE_INN_TORCH": "rocm"})


def test_cpu_uses_cpu_index_when_the_configured_source_gives_cuda():
    args, why = plan.torch_install_args("cpu", PYPI_LINUX)
    assert args == ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert "CPU" in why


def test_cpu_keeps_a_configured_cpu_source_offline():
    for report in (LOCAL_CPU, MAC_LIKE):
        args, _ = plan.torch_install_args("cpu", report)
        assert args == ["torch==2.13.0"]


def test_cpu_falls_back_to_cpu_index_when_source_unreachable():
    args, why = plan.torch_install_args("cpu", None)
    assert "--index-url" in args and plan.CPU_INDEX in args and "failed" in why


def test_cuda_uses_configured_source_and_warns_when_it_only_has_cpu():
    args, why = plan.torch_install_args("cuda", PYPI_LINUX)
    assert args == ["torch==2.13.0"] and "CUDA" in why
    args, why = plan.torch_install_args("cuda", LOCAL_CPU)
    assert args == ["torch==2.13.0"] and why.startswith("warning") and plan.ENV_INDEX in why


def test_explicit_index_wins():
    args, _ = plan.torch_install_args("cpu", PYPI_LINUX, index="https://example.org/whl/cu128")
    assert args[-1] == "https://example.org/whl/cu128"


def test_pulls_cuda_detects_labels_and_libraries():
    assert plan.pulls_cuda(PYPI_LINUX)
    assert plan.pulls_cuda(_report(("torch", "2.13.0+cu128")))
    assert not plan.pulls_cuda(LOCAL_CPU) and not plan.pulls_cuda(MAC_LIKE) and not plan.pulls_cuda({})


@pytest.mark.parametrize(
    ("version", "nvidia", "expected"),
    [("2.13.0+cpu", False, "cpu"), ("2.13.0+cu128", False, "cuda"), ("2.13.0", True, "cuda"),
     ("2.13.0", False, "cpu"), ("2.12.0+cpu", False, None), (None, False, None)],
)
def test_installed_build(version, nvidia, expected):
    assert plan.build_of_version(version, nvidia) == expected


def test_stamp_skips_pip_only_when_pyproject_extras_and_torch_match():
    py = b"[project]\nname='x'\n"
    stamp = plan.stamp_content(py, {"test"}, "cpu")
    assert plan.stamp_satisfies(stamp, py, set(), "cpu")  # launch after a test setup: nothing to do
    assert plan.stamp_satisfies(stamp, py, {"test"}, "cpu")
    assert not plan.stamp_satisfies(stamp, py + b"# changed\n", set(), "cpu")
    assert not plan.stamp_satisfies(stamp, py, {"test", "docs"}, "cpu")
    assert not plan.stamp_satisfies(stamp, py, set(), "cuda")
    assert not plan.stamp_satisfies(None, py, set(), "cpu")


def test_check_action_reads_the_stamp(tmp_path, monkeypatch):
    """The script's `check` answers from the stamp file alone (no pip)."""
    root = tmp_path / "proj"
    (root / "scripts").mkdir(parents=True)
    (root / ".venv").mkdir()
    (root / "scripts" / "setup_plan.py").write_bytes((ROOT / "scripts" / "setup_plan.py").read_bytes())
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    env = {"PATH": "/usr/bin:/bin", "TISSUE_INN_TORCH": "cpu"}
    cmd = [sys.executable, str(root / "scripts" / "setup_plan.py")]
    assert subprocess.run([*cmd, "check", "test"], env=env).returncode == 1
    assert subprocess.run([*cmd, "stamp", "test"], env=env).returncode == 0
    assert json.loads((root / ".venv" / plan.STAMP_NAME).read_text())["torch"] == "cpu"
    assert subprocess.run([*cmd, "check", ""], env=env).returncode == 0
    out = subprocess.run([*cmd, "extras", "gui"], env=env, capture_output=True, text=True).stdout
    assert out.strip() == "gui,test"
    (root / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert subprocess.run([*cmd, "check", ""], env=env).returncode == 1
    r = subprocess.run([*cmd, "check", ""], env={**env, "TISSUE_INN_TORCH": "rocm"}, capture_output=True, text=True)
    assert r.returncode == 2 and "TISSUE_INN_TORCH" in r.stderr
