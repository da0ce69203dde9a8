#!/usr/bin/env bash
# Set up the environment and run lint, import contracts and the default test suite.
# Extra arguments go to pytest (e.g. -m slow for the physics validation and long training).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
.venv/bin/ruff check tissue_inn tests benchmarks scripts
.venv/bin/lint-imports
export QT_QPA_PLATFORM=offscreen
# pytest exits 5 when it collects no tests: with `set -e` that fails the run, as it should.
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
