#!/usr/bin/env bash
# Set up hotfolder from nothing: system packages the engines need, then a virtualenv
# in .venv with hotfolder and its test/dev tools. Safe to run again; it only adds
# what is missing. HOTFOLDER_EXTRAS names the pyproject extras to install
# (comma-separated; default: dev), e.g. HOTFOLDER_EXTRAS=dev,bench for bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the workflows use (scripts/debian-packages.txt) plus any given as
# arguments (the test suite's tools), installed only when missing.
mapfile -t listed < <(grep -v '^#' scripts/debian-packages.txt | grep -v '^$')
need=()
for pkg in "${listed[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${HOTFOLDER_EXTRAS:-dev}]"
