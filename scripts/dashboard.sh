#!/usr/bin/env bash
# Command 1: set up (first run only) and open the dashboard on the bundled store in data/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v espeak-ng >/dev/null 2>&1 || echo "[dashboard] espeak-ng is not installed: the Items" \
  "page cannot play synthesised speech (install it: sudo apt-get install espeak-ng, or" \
  "scripts/setup.sh --system)" >&2
exec .venv/bin/streamlit run dashboard/app.py "$@"
