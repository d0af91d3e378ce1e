"""Shared test helpers: waiting on conditions with a deadline, never a fixed sleep."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hotfolder.workdirs import SPARE_PREFIX, is_internal

T = TypeVar("T")


def job_dirs(jobs: Path) -> list[str]:
    """Names of the job work dirs in ``jobs`` (a work area's ``jobs`` folder).

    Emptied directories kept for the next job (``.spare-``) and finished ones being
    emptied (``.trash-``) hold nothing of a job and are left out; a spare holding a
    file is an error.
    """
    if not jobs.is_dir():
        return []
    names = []
    for entry in jobs.iterdir():
        if not is_internal(entry.name):
            names.append(entry.name)
        elif entry.name.startswith(SPARE_PREFIX):
            files = [p for p in entry.rglob("*") if not p.is_dir()]
            assert not files, f"a spare work dir holds files: {files}"
    return sorted(names)


def wait_for(
    condition: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``condition`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(
    url: str, method: str = "GET", token: str | None = None
) -> tuple[int, dict[str, Any]]:
    """Call the daemon's HTTP API; return the status code and the JSON body (or {})."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body else {}


def drop(path: Path, data: bytes) -> None:
    """Write under a temp name (excluded by the built-in filters), then rename: like a copy tool."""
    temp = path.with_name(path.name + ".part")
    temp.write_bytes(data)
    temp.rename(path)


def drop_manifest(path: Path, **fields: Any) -> None:
    """Drop a ``*.job.json`` manifest holding ``fields`` as JSON."""
    drop(path, json.dumps(fields).encode())


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``hotfolder ARGS --config CONFIG`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "hotfolder", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
