"""The real daemon as a subprocess on a benchmark's own folders, and its JSON log.

Every benchmark runs ``hotfolder run --config <generated toml>`` exactly as an
operator would, with the log in JSON so that job start and end times can be
read back to the millisecond without guessing at a text format.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import procstat


def hotfolder_command() -> list[str]:
    """The console script next to the running interpreter (the project's virtualenv)."""
    script = Path(sys.executable).parent / "hotfolder"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hotfolder"]


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # JSON strings, numbers and lists of them are valid TOML too.
    return json.dumps(value)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``condition`` until it holds; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class LogEvent:
    """One line of the daemon's JSON log."""

    time: float
    level: str
    logger: str
    message: str
    job_id: str | None


@dataclass
class LogFollower:
    """Reads the lines the daemon appended since the last call (cheap: no rescans)."""

    path: Path
    offset: int = 0
    partial: bytes = b""
    events: list[LogEvent] = field(default_factory=list)
    #: Jobs that reached a final state so far (counted as lines arrive).
    finished: int = 0

    def poll(self) -> list[LogEvent]:
        """New events since the last poll (also kept in :attr:`events`)."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        fresh = []
        for line in lines:
            event = _parse(line)
            if event is not None:
                fresh.append(event)
                self.finished += is_finish(event)
        self.events += fresh
        return fresh


def _parse(line: bytes) -> LogEvent | None:
    try:
        data: dict[str, Any] = json.loads(line)
        moment = datetime.fromisoformat(data["time"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return None  # tracebacks and other non-JSON output of third-party code
    return LogEvent(moment, data["level"], data["logger"], data["message"], data.get("jobId"))


def is_start(event: LogEvent) -> bool:
    """The dispatcher handed a job to a worker."""
    return event.logger == "hotfolder.dispatch" and event.message.startswith("processing ")


def is_finish(event: LogEvent) -> bool:
    """A job reached its final state and is published."""
    return event.logger == "hotfolder.dispatch" and event.message.split(" ", 1)[0] in (
        "success",
        "failed",
        "aborted",
    )


class Daemon:
    """A ``hotfolder run`` subprocess with its config, folders and log under ``root``."""

    def __init__(
        self,
        root: Path,
        folders: list[dict[str, Any]],
        *,
        workers: int,
        http: str = "",
        **daemon: object,
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = root / "hotfolder.toml"
        self.log_path = root / "daemon.log"
        self.log = LogFollower(self.log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        settings: dict[str, object] = {
            "state_dir": "state",
            "workers": workers,
            "log_format": "json",
            **daemon,
        }
        lines = ["[daemon]", *(f"{k} = {_toml(v)}" for k, v in settings.items())]
        lines += ["[http]", f"listen = {_toml(http)}"]
        # Nothing may be deleted under a benchmark, and the schedule is no part of it.
        lines += ["[cleanup]", "enabled = false"]
        for folder in folders:
            folder = dict(folder)
            options = folder.pop("options", {})
            lines.append("[[folders]]")
            lines += [f"{k} = {_toml(v)}" for k, v in folder.items()]
            if options:
                lines.append("[folders.options]")
                lines += [f"{json.dumps(k)} = {_toml(v)}" for k, v in options.items()]
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def pid(self) -> int:
        """The daemon's main process id."""
        assert self.proc is not None
        return self.proc.pid

    def folder(self, name: str, sub: str = "in") -> Path:
        """A folder's input (or ``out``, ``error``, ``archive``) directory."""
        return self.root / name / sub

    def start(self, wait: bool = True, timeout: float = 120) -> None:
        """Start the daemon; with ``wait``, return once it logged that it started."""
        # The caller's HOTFOLDER_* variables must not change what is measured.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTFOLDER_")}
        self._log_handle = self.log_path.open("ab")
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [*hotfolder_command(), "run", "--config", str(self.config)],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            env=env,
        )
        if wait:
            self.wait_started(timeout)

    def wait_started(self, timeout: float = 120) -> None:
        """Block until the daemon logged "hotfolder started" (raise if it died)."""

        def started() -> bool:
            self.log.poll()
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.tail()}")
            return any(e.message.startswith("hotfolder started") for e in self.log.events)

        wait_until(started, timeout, "the daemon to start")

    def tail(self, lines: int = 20) -> str:
        """The end of the log, for error messages."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def finished_jobs(self) -> int:
        """Jobs that reached a final state, read from the log."""
        self.log.poll()
        return self.log.finished

    def wait_finished(self, count: int, timeout: float, interval: float = 0.1) -> None:
        """Block until ``count`` jobs finished."""

        def done() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.tail()}")
            return self.finished_jobs() >= count

        wait_until(done, timeout, f"{count} finished jobs", interval)

    def events(self, predicate: Callable[[LogEvent], bool]) -> Iterator[LogEvent]:
        """Logged events matching ``predicate``."""
        self.log.poll()
        return (event for event in self.log.events if predicate(event))

    def workers(self) -> list[int]:
        """Pids of the worker processes: children of the daemon's forkserver."""
        servers = [pid for pid in procstat.children(self.pid) if "forkserver" in _cmdline(pid)]
        return [pid for server in servers for pid in procstat.children(server)]

    def stop(self, timeout: float = 120) -> None:
        """SIGTERM and wait (the daemon drains running jobs first)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log_handle.close()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
