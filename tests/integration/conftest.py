"""Run the real daemon as a subprocess on temp folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]


def toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


class HotfolderProcess:
    """A daemon on ``root``; folders are dicts of [[folders]] keys."""

    def __init__(
        self,
        root: Path,
        folders: list[dict[str, Any]],
        http: dict[str, Any] | None = None,
        workflows: list[dict[str, Any]] | None = None,
        cleanup: dict[str, Any] | None = None,
        **daemon: Any,
    ) -> None:
        self.root = root
        self.config = root / "hotfolder.toml"
        self.log = root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [
            "[daemon]",
            'state_dir = "state"',
            "workers = 2",
            "rescan_interval = 30",
            'plugins = ["tests.integration.faulty"]',
        ]
        for key, value in daemon.items():
            lines = [line for line in lines if not line.startswith(f"{key} =")]
            lines.append(f"{key} = {toml_value(value)}")
        http = {"listen": "", **(http or {})}
        lines += ["[http]"] + [f"{k} = {toml_value(v)}" for k, v in http.items()]
        # Tests that do not test cleanup must not have it remove anything under them.
        cleanup = {"enabled": False, **(cleanup or {})}
        lines += ["[cleanup]"] + [f"{k} = {toml_value(v)}" for k, v in cleanup.items()]
        for workflow in workflows or []:
            workflow = dict(workflow)
            profiles = workflow.pop("profiles", {})
            lines.append("[[workflows]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in workflow.items()]
            for profile, values in profiles.items():
                lines.append(f"[workflows.profiles.{profile}]")
                lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in values.items()]
        for folder in folders:
            folder = {"settle": 0.5, "path": folder["name"], **folder}
            options = folder.pop("options", {})
            lines.append("[[folders]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in folder.items()]
            if options:
                lines.append("[folders.options]")
                lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in options.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def dir(self, folder: str, sub: str = "in") -> Path:
        return self.root / folder / sub

    def start(self, **extra_env: str) -> HotfolderProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO), "HOTFOLDER_LOG_LEVEL": "DEBUG", **extra_env}
        self._log_handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hotfolder", "run", "--config", str(self.config)],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.root,
        )
        offset = self.log.stat().st_size if self.log.exists() else 0
        wait_for(
            lambda: b"hotfolder started" in self.log.read_bytes()[offset:] or self._died(),
            timeout=60,
            what="daemon start",
        )
        assert self.proc.poll() is None, self.log.read_text(errors="replace")
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log_handle.close()
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
        self._log_handle.close()

    def files(self, folder: str, sub: str) -> list[str]:
        directory = self.dir(folder, sub)
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir())

    def statuses(self, folder: str, sub: str = "out") -> list[dict[str, Any]]:
        directory = self.dir(folder, sub)
        if not directory.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(directory.glob("*.status.json"))]

    def finished(self, folder: str) -> int:
        return len(self.statuses(folder, "out")) + len(self.statuses(folder, "error"))

    def wait_finished(self, folder: str, count: int, timeout: float = 60) -> None:
        wait_for(
            lambda: self.finished(folder) >= count,
            timeout=timeout,
            what=f"{count} finished jobs in {folder}",
        )


@pytest.fixture
def hotfolder(tmp_path: Path) -> Iterator[type[HotfolderProcess]]:
    """Build daemons on tmp_path; every started one is stopped at the end."""
    started: list[HotfolderProcess] = []

    class Factory(HotfolderProcess):
        def __init__(self, folders: list[dict[str, Any]], **kwargs: Any) -> None:
            super().__init__(tmp_path, folders, **kwargs)
            started.append(self)

    yield Factory
    for process in started:
        if process.proc is not None and process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(30)


# --- scale-out: real brokers and Celery workers (tests/integration/brokers.py) ---------


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server on loopback, without persistence, for one test."""
    from tests.integration.brokers import redis_server

    with redis_server(tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def rabbitmq_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private RabbitMQ node for the session (it takes seconds to boot); tests use own queues."""
    from tests.integration.brokers import rabbitmq_server

    with rabbitmq_server(tmp_path_factory.mktemp("rabbitmq")) as url:
        yield url


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    """Start ``hotfolder worker`` processes on a daemon's config; all are killed at the end."""
    from tests.integration.brokers import worker_factory

    start, started = worker_factory(tmp_path)
    yield start
    for worker in started:
        worker.kill()
