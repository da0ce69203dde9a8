#!/usr/bin/env bash
# Create .venv (if missing) and install tissue_inn with the pinned CPU torch.
# Usage: bash scripts/setup_env.sh [extras]   e.g. "test"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch is pinned: an open range pulls a multi-GB CUDA build. GPU users: install the CUDA build of 2.13.0.
.venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
if [ "${1:-}" != "" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e ".[$1]"
else
  .venv/bin/pip install -q --disable-pip-version-check -e .
fi
