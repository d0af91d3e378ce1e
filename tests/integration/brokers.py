"""Real brokers and real Celery workers for the scale-out tests.

Debian's ``redis-server`` (no persistence) and ``rabbitmq-server`` run on free
loopback ports in the test's temp dir; ``hotfolder worker`` processes run in
their own process groups, so that a ``kill -9`` takes a whole worker at once,
as a lost machine would. The fixtures using them live in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

from tests.helpers import free_port, job_dirs, wait_for
from tests.integration.conftest import REPO, HotfolderProcess, toml_value

#: How a worker is started.
WORKER_COMMAND = ["-m", "hotfolder", "worker"]
#: Where Debian installs the server itself (/usr/sbin's wrapper switches to the
#: rabbitmq user, which cannot read a test's temp dir).
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A private redis-server on loopback, without persistence; yields its URL."""
    server = shutil.which("redis-server")
    assert server, "redis-server is missing: apt-get install redis-server (scripts/test.sh does)"
    port = free_port()
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    with (directory / "redis.log").open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--appendonly", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return proc.poll() is not None

        try:
            wait_for(answers, timeout=20, what="redis-server")
            assert proc.poll() is None, (directory / "redis.log").read_text()
            yield url
        finally:
            client.close()
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def rabbitmq_server(directory: Path) -> Iterator[str]:
    """A private RabbitMQ node on loopback (its own data dir, ports and cookie); yields its URL."""
    assert RABBITMQ_SERVER.exists(), (
        "rabbitmq-server is missing: apt-get install rabbitmq-server (scripts/test.sh does)"
    )
    port, dist = free_port(), free_port()
    (directory / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"
    )
    (directory / "enabled_plugins").write_text("[].\n")
    env = {
        **os.environ,
        # The Erlang cookie is written to $HOME: keep it in the temp dir.
        "HOME": str(directory),
        "RABBITMQ_NODENAME": f"hftest{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
        "RABBITMQ_LOGS": "-",
    }
    log_path = directory / "rabbitmq.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(RABBITMQ_SERVER)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
            start_new_session=True,
        )
        try:
            # Erlang boots in 5-15 s here, longer on a loaded machine.
            wait_for(
                lambda: (
                    b"Server startup complete" in log_path.read_bytes() or proc.poll() is not None
                ),
                timeout=120,
                interval=0.2,
                what="rabbitmq-server",
            )
            assert proc.poll() is None, log_path.read_text(errors="replace")
            yield f"amqp://guest:guest@127.0.0.1:{port}//"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


class Worker:
    """One ``hotfolder worker`` process group (its Celery parent and pool processes)."""

    def __init__(self, config: Path, log: Path, concurrency: int) -> None:
        self.log = log
        self._handle = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *WORKER_COMMAND, "--config", str(config), "-n", str(concurrency)],
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=config.parent,
            # Its own process group: a kill takes the whole worker, like a lost machine.
            start_new_session=True,
        )
        #: The Celery node name starts with this (see hotfolder.worker).
        self.name = f"hotfolder-{self.proc.pid}@"

    def wait_ready(self) -> None:
        wait_for(
            lambda: b" ready." in self.log.read_bytes() or self.proc.poll() is not None,
            timeout=60,
            what=f"worker {self.name} ready",
        )
        assert self.proc.poll() is None, self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every process of the worker at once."""
        os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL every process of the worker at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._handle.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def worker_factory(directory: Path) -> tuple[Callable[..., list[Worker]], list[Worker]]:
    """A function starting workers on a daemon's config, and the list of those started."""
    started: list[Worker] = []

    def start(config: Path, count: int = 1, concurrency: int = 1) -> list[Worker]:
        fresh = [
            Worker(config, directory / f"worker{len(started) + i}.log", concurrency)
            for i in range(count)
        ]
        started.extend(fresh)
        return fresh

    return start, started


def celery_daemon(
    hotfolder: Callable[..., HotfolderProcess],
    broker: str,
    folders: list[dict[str, Any]],
    celery: dict[str, Any] | None = None,
    **daemon: Any,
) -> HotfolderProcess:
    """A daemon configured for the Celery executor on ``broker`` (not started)."""
    process = hotfolder(folders, executor="celery", **daemon)
    table = {
        "broker": broker,
        "visibility_timeout": 30,
        "restore_interval": 0.5,
        "max_in_flight": 4,
        **(celery or {}),
    }
    with process.config.open("a") as config:
        config.write("[celery]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()))
    return process


def start_all(daemon: HotfolderProcess, pool: list[Worker]) -> None:
    """Start the daemon once every worker is ready (its first census then counts them all)."""
    for worker in pool:
        worker.wait_ready()
    daemon.start()


def work_area_empty(daemon: HotfolderProcess, folder: str) -> bool:
    return not job_dirs(daemon.root / folder / ".hotfolder" / "jobs")


def metric(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None
