#!/usr/bin/env bash
# Command 2: set up (Debian espeak-ng + chromium, .venv with dev requirements) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --system --dev
exec .venv/bin/python -m pytest "$@"
