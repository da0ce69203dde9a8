#!/usr/bin/env bash
# Set up the environment and open the app on the bundled sample image with the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/tissue-inn gui "$@"
