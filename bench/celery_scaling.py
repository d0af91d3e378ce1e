"""Celery scale-out: throughput with 1, 2 and 4 worker processes.

Run from the repository root: ``.venv/bin/python -m bench.celery_scaling``
(``--jobs N``, ``--workers 1,2,4``). Needs Debian's ``redis-server``.

For each worker count a fresh setup is started: a private redis-server on a
free loopback port (no persistence), that many ``hotfolder worker`` processes
with one conversion process each (as if each were a machine of its own) and
the real daemon (``hotfolder run``) with ``executor = "celery"``. Then
``--jobs`` photos (2000x1500 JPEG) are renamed into the input folder at once
and converted to WebP, a CPU-bound conversion of about 0.3 s.

Throughput is jobs per second over the busy span: from the first job's
``startedAt`` to the last job's ``finishedAt`` (status files), so the settle
time before the first claim is not counted. On a machine with C cores it
should rise until about C workers and stay flat after that (the daemon and
Redis share the same cores). Each run waits for a calm machine and records how
much CPU other processes used meanwhile (``other_load_percent``): figures taken
beside other work are too low. Results: ``bench/results/celery_scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "celery_scaling.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def _machine_busy_seconds() -> float:
    """CPU seconds every process on the machine used since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and of its finished (waited) children and theirs."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _wait_quiet(limit: float = 300.0) -> None:
    # Other work on the machine steals the cores being measured: start when it is calm.
    deadline = time.monotonic() + limit
    while True:
        before, own, start = _machine_busy_seconds(), _own_seconds(), time.monotonic()
        time.sleep(2.0)
        used = _machine_busy_seconds() - before - (_own_seconds() - own)
        if used / ((time.monotonic() - start) * (os.cpu_count() or 1)) < 0.15:
            return
        if time.monotonic() > deadline:
            print("the machine stays busy; measuring anyway (see other_load_percent)")
            return


def _photo() -> bytes:
    # Blurred noise compresses like a photo: a small JPEG that is slow to re-encode.
    import io

    from PIL import Image, ImageFilter

    image = Image.effect_noise((2000, 1500), 40).convert("RGB").filter(ImageFilter.GaussianBlur(2))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _parse_time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Setup:
    """Redis, ``workers`` worker processes and the daemon on a scratch directory."""

    def __init__(self, root: Path, workers: int) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        port = _free_port()
        redis = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        self._spawn([*redis, "--save", "", "--appendonly", "no"], "redis.log")
        config = root / "hotfolder.toml"
        config.write_text(
            "\n".join(
                [
                    "[daemon]",
                    'state_dir = "state"',
                    'executor = "celery"',
                    "[http]",
                    'listen = ""',
                    "[cleanup]",
                    "enabled = false",
                    "[celery]",
                    f'broker = "redis://127.0.0.1:{port}/0"',
                    # Keeps every worker fed while results travel back.
                    f"max_in_flight = {2 * workers}",
                    "visibility_timeout = 600",
                    "[[folders]]",
                    'name = "photos"',
                    'path = "photos"',
                    'workflow = "image-convert"',
                    "settle = 0.3",
                    "timeout = 300",
                    "[folders.options]",
                    '"IMAGE.FORMAT" = "webp"',
                    "",
                ]
            )
        )
        hotfolder = [sys.executable, "-m", "hotfolder"]
        args = ["--config", str(config)]
        logs = [f"worker{i}.log" for i in range(workers)]
        for log in logs:
            self._spawn([*hotfolder, "worker", *args, "--concurrency", "1"], log)
        for log in logs:
            _wait(lambda log=log: b" ready." in (root / log).read_bytes(), 60, f"{log} ready")
        self._spawn([*hotfolder, "run", *args], "daemon.log")
        _wait(lambda: b"hotfolder started" in (root / "daemon.log").read_bytes(), 60, "daemon")

    def _spawn(self, argv: list[str], log: str) -> None:
        with (self.root / log).open("wb") as handle:
            proc = subprocess.Popen(
                argv, stdout=handle, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True
            )
        self.procs.append(proc)

    def close(self) -> None:
        """Stop the daemon, the workers and Redis, newest first."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def measure(scratch: Path, workers: int, jobs: int, photo: bytes) -> dict[str, Any]:
    """Convert ``jobs`` photos with ``workers`` worker processes; return the figures."""
    root = scratch / f"workers-{workers}"
    root.mkdir()
    _wait_quiet()
    busy, own, start = _machine_busy_seconds(), _own_seconds(), time.monotonic()
    setup = Setup(root, workers)
    try:
        stage = root / "photos" / "stage"
        stage.mkdir()
        names = [f"photo{i:03d}.jpg" for i in range(jobs)]
        for name in names:
            (stage / name).write_bytes(photo)
        inbox = root / "photos" / "in"
        dropped = time.time()
        for name in names:
            (stage / name).rename(inbox / name)
        out = root / "photos" / "out"
        _wait(lambda: len(list(out.glob("*.status.json"))) >= jobs, 60 + 5 * jobs, "results")
        finished = time.time()
        statuses = [json.loads(p.read_text()) for p in out.glob("*.status.json")]
    finally:
        setup.close()
    wall = time.monotonic() - start
    # What other processes used meanwhile: high values mean the figures are too low.
    other = _machine_busy_seconds() - busy - (_own_seconds() - own)
    failed = [s["name"] for s in statuses if s["status"] != "success"]
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed, e.g. {failed[0]}: see {root}")
    first = min(_parse_time(s["startedAt"]) for s in statuses)
    last = max(_parse_time(s["finishedAt"]) for s in statuses)
    span = last - first
    return {
        "workers": workers,
        "jobs": jobs,
        "busy_seconds": round(span, 3),
        "drop_to_last_seconds": round(finished - dropped, 3),
        "jobs_per_second": round(jobs / span, 3),
        "other_load_percent": round(max(0.0, 100 * other / (wall * (os.cpu_count() or 1))), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.celery_scaling", description=__doc__)
    parser.add_argument("--jobs", type=int, default=40, help="photos per run (default 40)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    photo = _photo()
    runs = []
    with tempfile.TemporaryDirectory(prefix="hotfolder-celery-bench-") as scratch:
        for workers in counts:
            run = measure(Path(scratch), workers, args.jobs, photo)
            print(
                f"{workers} worker(s): {run['jobs_per_second']:.2f} jobs/s "
                f"({run['jobs']} jobs in {run['busy_seconds']:.1f} s)",
                flush=True,
            )
            runs.append(run)
    base = runs[0]["jobs_per_second"]
    from celery import __version__ as celery_version

    document = {
        "benchmark": "celery_scaling",
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.system(),
            "celery": celery_version,
        },
        "workload": "image-convert JPEG 2000x1500 -> WebP, one conversion process per worker",
        "runs": runs,
        "speedup": {str(run["workers"]): round(run["jobs_per_second"] / base, 2) for run in runs},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
