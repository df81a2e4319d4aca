#!/usr/bin/env bash
# Command 2: set up (Debian espeak-ng + chromium, .venv with dev requirements and the Ray extra) and
# run the test suite.
#   scripts/test.sh              every test (what CI runs)
#   scripts/test.sh --quick      the fast lane for development: -m "not slow" (pytest.ini says what
#                                slow means)
# Any other arguments go to pytest: scripts/test.sh --quick tests/test_store.py -x
set -euo pipefail
cd "$(dirname "$0")/.."
lane=()
if [ "${1:-}" = "--quick" ]; then
  shift
  lane=(-m "not slow")
fi
scripts/setup.sh --system --dev --ray
exec .venv/bin/python -m pytest ${lane[@]+"${lane[@]}"} "$@"
