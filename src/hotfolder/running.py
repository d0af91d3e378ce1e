"""Whether a daemon runs on a state dir: a lock each running daemon holds.

Every daemon holds a shared ``flock`` on ``<state_dir>/daemon.lock`` while it
runs; the kernel drops it when the process ends, however it ends (``kill -9``
included). Read-only commands ask for an exclusive lock without waiting: they
get it only when no daemon runs. Several daemons may share a state dir, so the
daemons' own locks are shared, never exclusive.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

LOCK_NAME = "daemon.lock"


def hold(state_dir: Path) -> IO[bytes]:
    """Take this daemon's shared lock; keep the returned file open while running."""
    handle = (state_dir / LOCK_NAME).open("ab")
    fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    return handle


def daemon_running(state_dir: Path) -> bool:
    """True while some daemon holds its lock on ``state_dir``."""
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # never started here, or the state dir cannot be read
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


REPORT_NAME = "intake.json"
#: The service status (workers, health), refreshed every second while running.
STATUS_NAME = "status.json"


def write_report(state_dir: Path, report: dict[str, Any], name: str = REPORT_NAME) -> None:
    """Leave what intake sees (files it keeps out) for read-only commands; atomic."""
    target = state_dir / name
    temporary = target.with_name(f".{name}.tmp")
    temporary.write_text(json.dumps(report, indent=1), encoding="utf-8")
    temporary.replace(target)


def read_report(state_dir: Path, name: str = REPORT_NAME) -> dict[str, Any]:
    """The running daemon's intake report ({} when there is none)."""
    try:
        data = json.loads((state_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
