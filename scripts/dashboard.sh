#!/usr/bin/env bash
# Command 1: set up (first run only) and open the dashboard on the bundled store in data/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/streamlit run dashboard/app.py "$@"
