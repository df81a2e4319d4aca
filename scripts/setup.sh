#!/usr/bin/env bash
# Shared set-up for the two README commands: a virtualenv in .venv with the pinned requirements, and
# (with --system) the Debian packages the tests need. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=0
want_ray=0
req=requirements.txt
for arg in "$@"; do
  case "$arg" in
    --system) want_system=1 ;;
    --dev) req=requirements-dev.txt ;;
    --ray) want_ray=1 ;;  # the optional Ray extra (precompute build --executor ray)
  esac
done

if [ "$want_system" = 1 ]; then
  missing=()
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "[setup] installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get install -y --no-install-recommends "${missing[@]}" \
      || { $sudo_cmd apt-get update && $sudo_cmd apt-get install -y --no-install-recommends "${missing[@]}"; }
  fi
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$(cat "$req" requirements.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing $req into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$req"
  touch "$stamp"
fi
if [ "$want_ray" = 1 ]; then
  ray_stamp=".venv/.installed-ray-$(cat requirements-ray.txt requirements.txt | sha1sum | cut -c1-12)"
  if [ ! -f "$ray_stamp" ]; then
    echo "[setup] installing requirements-ray.txt into .venv"
    .venv/bin/python -m pip install --quiet -r requirements-ray.txt
    touch "$ray_stamp"
  fi
fi
