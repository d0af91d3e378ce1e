#!/bin/sh
# Run every benchmark (or: --only NAME..., --quick, --help); results go to bench/results/.
set -e
cd "$(dirname "$0")/.."
exec .venv/bin/python -m bench "$@"
