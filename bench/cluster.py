"""A scale-out set-up for benchmarks: brokers, ``hotfolder worker`` processes and the daemon.

Everything runs on this machine in a scratch directory: a private redis-server
(and, for RabbitMQ, a private node of Debian's rabbitmq-server) on free
loopback ports, worker processes in their own process groups (so that one can
be killed whole, like a machine), and the daemon (``hotfolder run``) on a
generated config whose one folder uses the ``bench-noop`` workflow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.celery_scaling import _free_port, _parse_time, _wait

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
REPO = Path(__file__).resolve().parents[1]


class Cluster:
    """Brokers, workers and a daemon on ``root``; :meth:`close` stops them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.daemon: subprocess.Popen[bytes] | None = None
        self.config = root / "hotfolder.toml"
        self.folder = root / "noop"

    def spawn(self, argv: list[str], log: str, env: dict[str, str] | None = None) -> Any:
        """Start ``argv`` in its own process group, logging to ``log``."""
        with (self.root / log).open("ab") as handle:
            proc = subprocess.Popen(
                argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            )
        self.procs.append(proc)
        return proc

    def redis(self) -> str:
        """Start redis-server; return its URL."""
        port = _free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        self.spawn([*argv, "--appendonly", "no"], "redis.log")
        url = f"redis://127.0.0.1:{port}/0"
        import redis

        client = redis.Redis.from_url(url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        _wait(answers, 20, "redis-server")
        return url

    def rabbitmq(self) -> str:
        """Start a private RabbitMQ node; return its AMQP URL."""
        port, dist = _free_port(), _free_port()
        base = self.root / "rabbitmq"
        base.mkdir()
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n")
        (base / "enabled_plugins").write_text("[].\n")
        env = {
            "HOME": str(base),
            "RABBITMQ_NODENAME": f"hfbench{port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": "-",
        }
        self.spawn([str(RABBITMQ_SERVER)], "rabbitmq.log", env)
        log = self.root / "rabbitmq.log"
        _wait(lambda: b"Server startup complete" in log.read_bytes(), 180, "rabbitmq-server")
        return f"amqp://guest:guest@127.0.0.1:{port}//"

    def configure(self, executor: str, celery: dict[str, Any], workers: int = 2) -> None:
        """Write the config: one ``bench-noop`` folder, JSON logs, no HTTP, no cleanup."""
        lines = [
            "[daemon]",
            'state_dir = "state"',
            f'executor = "{executor}"',
            f"workers = {workers}",
            'plugins = ["bench.noop"]',
            "[http]",
            'listen = ""',
            "[cleanup]",
            "enabled = false",
            "[celery]",
            *(f"{key} = {json.dumps(value)}" for key, value in celery.items()),
            "[[folders]]",
            'name = "noop"',
            'path = "noop"',
            'workflow = "bench-noop"',
            "settle = 0.3",
            "timeout = 120",
            "",
        ]
        self.config.write_text("\n".join(lines))

    def start_workers(self, count: int, concurrency: int = 1) -> None:
        """Start ``count`` workers and wait until each is ready."""
        logs = []
        for _ in range(count):
            log = f"worker{len(self.workers)}.log"
            argv = [sys.executable, "-m", "hotfolder", "worker", "--config", str(self.config)]
            self.workers.append(self.spawn([*argv, "--concurrency", str(concurrency)], log))
            logs.append(log)
        for log in logs:
            _wait(lambda log=log: b" ready." in (self.root / log).read_bytes(), 90, f"{log}")

    def start_daemon(self) -> None:
        """Start ``hotfolder run`` and wait for its start line."""
        argv = [sys.executable, "-m", "hotfolder", "run", "--config", str(self.config)]
        self.daemon = self.spawn(argv, "daemon.log")
        log = self.root / "daemon.log"
        _wait(lambda: b"hotfolder started" in log.read_bytes(), 90, "daemon")

    def drop(self, contents: list[str]) -> float:
        """Write one small file per entry in a staging dir, rename all into in/; the time."""
        stage = self.folder / "stage"
        stage.mkdir(parents=True, exist_ok=True)
        names = [f"doc{i:05d}.txt" for i in range(len(contents))]
        for name, text in zip(names, contents, strict=True):
            (stage / name).write_text(text)
        inbox = self.folder / "in"
        _wait(inbox.is_dir, 30, "the input folder")
        dropped = time.time()
        for name in names:
            (stage / name).rename(inbox / name)
        return dropped

    def statuses(self) -> list[dict[str, Any]]:
        """Every status file in out/ and error/."""
        found = []
        for sub in ("out", "error"):
            for path in (self.folder / sub).glob("*.status.json"):
                found.append(json.loads(path.read_text()))
        return found

    def wait_done(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Wait until ``count`` jobs ended; fail loudly if any did not succeed."""
        _wait(lambda: len(self.statuses()) >= count, timeout, f"{count} results")
        statuses = self.statuses()
        failed = [s for s in statuses if s["status"] != "success"]
        if failed:
            raise SystemExit(f"{len(failed)} job(s) failed: {failed[0]['message']} ({self.root})")
        return statuses

    def running_on(self, worker: subprocess.Popen[bytes]) -> set[str]:
        """Job ids the daemon saw start on ``worker``."""
        text = (self.root / "daemon.log").read_text(errors="replace")
        pattern = rf'"job_id": "(\w+)"[^\n]*running on worker hotfolder-{worker.pid}@'
        plain = rf"\[job (\w+)\] running on worker hotfolder-{worker.pid}@"
        return set(re.findall(pattern, text)) | set(re.findall(plain, text))

    def close(self) -> None:
        """Stop everything, newest first."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def busy_span(statuses: list[dict[str, Any]]) -> float:
    """First ``startedAt`` to last ``finishedAt``."""
    first = min(_parse_time(s["startedAt"]) for s in statuses)
    return max(_parse_time(s["finishedAt"]) for s in statuses) - first


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    """The 1-minute load average (other engineers' work included)."""
    return float(Path("/proc/loadavg").read_text().split()[0])
