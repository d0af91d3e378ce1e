#!/usr/bin/env bash
# Set up from nothing and run the whole suite: lint, type check, unit and
# integration tests (the real daemon on temp folders).
set -euo pipefail
cd "$(dirname "$0")/.."
# Tools the tests drive for real: promtool and a Prometheus server, systemd-analyze,
# Redis and RabbitMQ servers for the Celery executor (the tests start their own,
# on free loopback ports; the packaged services are not used).
bash scripts/setup.sh prometheus systemd redis-server rabbitmq-server
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
