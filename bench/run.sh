#!/usr/bin/env bash
# Run every benchmark (or: --only NAME..., --quick, --help); results go to bench/results/.
# Sets up from nothing first, like scripts/test.sh: the engines, the bench extra
# (matplotlib, for the plot) and inotify-tools (the shell recipe the daemon is
# compared with).
set -euo pipefail
cd "$(dirname "$0")/.."
HOTFOLDER_EXTRAS=dev,bench bash scripts/setup.sh inotify-tools
exec .venv/bin/python -m bench "$@"
