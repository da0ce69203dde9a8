#!/usr/bin/env bash
# Create .venv (if missing) and install tissue_inn with torch==2.13.0 — once. Later runs check a stamp in
# .venv (hash of pyproject.toml, extras, torch build) and return at once, offline, without calling pip;
# a changed pyproject.toml re-installs.
# Usage: bash scripts/setup_env.sh [extras]   e.g. "test"
# torch build: TISSUE_INN_TORCH=auto (default: CUDA build if nvidia-smi finds a GPU, else CPU) | cpu | cuda;
# TISSUE_INN_TORCH_INDEX=URL takes torch from another wheel index. Details: scripts/setup_plan.py, README.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${1:-}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if .venv/bin/python scripts/setup_plan.py check "$EXTRAS"; then
  exit 0  # set up already: no pip, works offline
fi
.venv/bin/python scripts/setup_plan.py torch
ALL_EXTRAS=$(.venv/bin/python scripts/setup_plan.py extras "$EXTRAS")
# The build backend lives in .venv, so that a later re-install (pyproject.toml changed) builds offline.
if ! .venv/bin/python -c "import hatchling, editables" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "hatchling>=1.25" editables
fi
if [ -n "$ALL_EXTRAS" ]; then
  .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation -e ".[$ALL_EXTRAS]"
else
  .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation -e .
fi
.venv/bin/python scripts/setup_plan.py stamp "$ALL_EXTRAS"
