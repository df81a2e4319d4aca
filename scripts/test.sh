#!/usr/bin/env bash
# Command 2: set up (Debian espeak-ng + chromium, .venv with dev requirements and the Ray extra) and
# run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --system --dev --ray
exec .venv/bin/python -m pytest "$@"
