#!/usr/bin/env bash
# Set up from nothing and run the daemon on the bundled example config.
# Drop files into var/*/in/ and find results in var/*/out/ (failures in var/*/error/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hotfolder run --config config/hotfolder.toml "$@"
