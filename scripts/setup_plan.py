"""Decisions for ``scripts/setup_env.sh``: which torch build to install, and whether setup can be skipped.

Standard library only (it runs before anything is installed); it never imports torch.

torch build, chosen by ``TISSUE_INN_TORCH`` (default ``auto``):

- ``auto``: the CUDA build when ``nvidia-smi`` works (an NVIDIA GPU and its driver), else the CPU build;
- ``cpu``: PyTorch's CPU-only build. The configured pip source is asked first (``pip install --dry-run
  --report``); if it would pull CUDA packages (``nvidia-*``, ``triton``), as PyPI does on Linux, or cannot
  be reached, torch comes from PyTorch's CPU wheel index instead (:data:`CPU_INDEX`);
- ``cuda``: the default build from the configured source (PyPI's Linux wheel is the CUDA build).

``TISSUE_INN_TORCH_INDEX`` names another wheel index for torch (e.g. a specific CUDA version's).

Set up once: after a successful install a stamp in ``.venv`` records the hash of ``pyproject.toml``, the
installed extras and the torch build; while it matches, setup runs no pip at all (offline, instant).

Usage (from setup_env.sh): ``python scripts/setup_plan.py check|torch|stamp [EXTRAS]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TORCH_VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
ENV_CHOICE = "TISSUE_INN_TORCH"
ENV_INDEX = "TISSUE_INN_TORCH_INDEX"
CHOICES = ("auto", "cpu", "cuda")
STAMP_NAME = ".tissue_inn_setup.json"
_CUDA_PACKAGE = re.compile(r"^(nvidia[-_].*|triton|cuda[-_].*)$", re.IGNORECASE)


class SetupError(Exception):
    """A setting the user must fix (printed as one line by :func:`main`)."""


def requested_choice(environ: dict[str, str] | None = None) -> str:
    """The value of TISSUE_INN_TORCH, checked (default ``auto``)."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV_CHOICE, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise SetupError(f"{ENV_CHOICE}={value!r}: choose one of {', '.join(CHOICES)}")
    return value


def nvidia_gpu_present() -> bool:
    """True when ``nvidia-smi`` exists and lists at least one GPU (i.e. a GPU and a working driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        r = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and "GPU" in r.stdout


def resolve_choice(requested: str, gpu_present: bool) -> str:
    """``cpu`` or ``cuda``: ``auto`` becomes ``cuda`` exactly when an NVIDIA GPU with driver is present."""
    if requested == "auto":
        return "cuda" if gpu_present else "cpu"
    return requested


def pulls_cuda(report: dict) -> bool:
    """Whether a ``pip install --report`` resolution installs a CUDA build of torch or CUDA libraries."""
    for item in report.get("install", []):
        meta = item.get("metadata", {})
        name = str(meta.get("name", ""))
        if _CUDA_PACKAGE.match(name):
            return True
        if name.lower() == "torch" and "+cu" in str(meta.get("version", "")):
            return True
    return False


def torch_version_of(report: dict) -> str | None:
    for item in report.get("install", []):
        meta = item.get("metadata", {})
        if str(meta.get("name", "")).lower() == "torch":
            return str(meta.get("version"))
    return None


def torch_install_args(choice: str, report: dict | None, index: str | None = None) -> tuple[list[str], str]:
    """pip arguments that install torch for ``choice``, given the configured source's dry-run ``report``
    (None: the source could not be reached or resolved), and a sentence saying why."""
    spec = f"torch=={TORCH_VERSION}"
    if index:
        return [spec, "--index-url", index], f"torch from {index} ({ENV_INDEX})"
    if choice == "cuda":
        if report is not None and not pulls_cuda(report) and "+cpu" in (torch_version_of(report) or ""):
            return [spec], ("warning: the configured package source offers only the CPU build of torch; "
                            f"set {ENV_INDEX} to a CUDA wheel index of PyTorch to get the GPU build")
        return [spec], "CUDA build of torch (an NVIDIA GPU and driver were found)"
    if report is None:
        return [spec, "--index-url", CPU_INDEX], f"CPU build of torch from {CPU_INDEX} (configured source failed)"
    if pulls_cuda(report):
        return [spec, "--index-url", CPU_INDEX], f"CPU build of torch from {CPU_INDEX} (the default is CUDA)"
    return [spec], "CPU build of torch from the configured package source"


def dry_run_report(python: str) -> dict | None:
    """Ask the configured pip what ``pip install torch==VERSION`` would install (nothing is downloaded
    beyond metadata); None when it fails (no network, no such version)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [python, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--report", str(out),
               f"torch=={TORCH_VERSION}"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError):
            return None
        if r.returncode != 0 or not out.is_file():
            return None
        return json.loads(out.read_text())


def installed_torch_build(python: str) -> str | None:
    """``cpu``/``cuda`` of the torch installed for ``python`` (None: none or another version)."""
    code = ("import importlib.metadata as m, json\n"
            "try: v = m.version('torch')\nexcept m.PackageNotFoundError: v = None\n"
            "nv = any((d.metadata['Name'] or '').lower().startswith('nvidia') for d in m.distributions())\n"
            "print(json.dumps([v, nv]))")
    r = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    version, has_nvidia = json.loads(r.stdout)
    return build_of_version(version, has_nvidia)


def build_of_version(version: str | None, has_nvidia_packages: bool) -> str | None:
    """``cpu``/``cuda`` from an installed torch version string (None if it is not TORCH_VERSION)."""
    if version is None or version.split("+")[0] != TORCH_VERSION:
        return None
    if "+cpu" in version:
        return "cpu"
    if "+cu" in version:
        return "cuda"
    return "cuda" if has_nvidia_packages else "cpu"


# ----------------------------------------------------------------------------------------- stamp
def stamp_content(pyproject: bytes, extras: set[str], torch_build: str) -> dict:
    return {"pyproject_sha256": hashlib.sha256(pyproject).hexdigest(), "extras": sorted(extras),
            "torch": torch_build}


def parse_extras(text: str) -> set[str]:
    return {e.strip() for e in text.split(",") if e.strip()}


def stamp_satisfies(stamp: dict | None, pyproject: bytes, extras: set[str], torch_build: str) -> bool:
    """True when the recorded setup covers this request: same pyproject, same torch build, the extras
    requested are among those installed."""
    if not isinstance(stamp, dict):
        return False
    want = stamp_content(pyproject, extras, torch_build)
    return (stamp.get("pyproject_sha256") == want["pyproject_sha256"] and stamp.get("torch") == torch_build
            and extras <= set(stamp.get("extras", [])))


def read_stamp(venv: Path) -> dict | None:
    try:
        return json.loads((venv / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    venv = root / ".venv"
    python = str(venv / "bin" / "python")
    action = argv[0] if argv else "check"
    extras = parse_extras(argv[1] if len(argv) > 1 else "")
    pyproject = (root / "pyproject.toml").read_bytes()
    try:
        requested = requested_choice()
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    choice = resolve_choice(requested, nvidia_gpu_present() if requested == "auto" else False)
    stamp = read_stamp(venv)
    if action == "check":  # exit 0: set up already, nothing to do
        return 0 if stamp_satisfies(stamp, pyproject, extras, choice) else 1
    if action == "extras":  # the extras to install: those asked for plus those already installed
        old = set(stamp.get("extras", [])) if isinstance(stamp, dict) else set()
        print(",".join(sorted(extras | old)))
        return 0
    if action == "torch":
        installed = installed_torch_build(python)
        index = os.environ.get(ENV_INDEX) or None
        if installed == choice and not index:
            return 0
        report = None if index else dry_run_report(python)
        args, why = torch_install_args(choice, report, index)
        print(f"setup: {why}", file=sys.stderr)
        if installed not in (None, choice):
            args.append("--force-reinstall")
        return subprocess.run([python, "-m", "pip", "install", "-q", *args]).returncode
    if action == "stamp":
        (venv / STAMP_NAME).write_text(json.dumps(stamp_content(pyproject, extras, choice)))
        return 0
    print(f"error: unknown action {action!r} (check, extras, torch, stamp)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
