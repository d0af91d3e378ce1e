"""The daemon's own ceiling: jobs per second when conversions cost nothing.

Run from the repository root: ``.venv/bin/python -m bench.ceiling``
(``--jobs N``). Needs Debian's ``redis-server``.

The ``bench-noop`` workflow (``bench/noop.py``, loaded through the plugin
seam) copies a few bytes, so what is measured is hotfolder itself: intake,
claim, journal, queue, dispatch (to its own processes or through Redis to
Celery workers), publishing and status files. ``--jobs`` tiny files are renamed
into the input folder at once; jobs per second over the busy span (first
``startedAt`` to last ``finishedAt``). Two runs: the embedded pool (2 worker
processes) and Celery (2 workers with one process each, ``max_in_flight`` 8).

For Celery, the Redis traffic per job is read from ``INFO commandstats`` and
``INFO stats`` before and after the run, minus what an idle set-up of the same
length costs (heartbeats, census). The daemon process's own CPU time per job
says what one daemon could take with cores to itself: on this 2-core machine
the daemon, Redis and the workers share the cores, so the jobs/s figures are
a floor. ``load_before`` records the machine's load average: other work on
the machine lowers every figure. Results: ``bench/results/ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cluster import Cluster, busy_span, load_average, process_cpu_seconds

RESULTS = Path(__file__).resolve().parent / "results" / "ceiling.json"
IDLE_WINDOW = 10.0


def _redis_counters(url: str) -> dict[str, float]:
    import redis

    client = redis.Redis.from_url(url)
    stats = client.info("stats")
    commands = client.info("commandstats")
    counters = {
        "net_in_bytes": float(stats["total_net_input_bytes"]),
        "net_out_bytes": float(stats["total_net_output_bytes"]),
    }
    for name, values in commands.items():
        counters[name.removeprefix("cmdstat_")] = float(values["calls"])
    client.close()
    return counters


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after}


def measure(scratch: Path, executor: str, jobs: int) -> dict[str, Any]:
    """Run ``jobs`` no-op jobs through the daemon with ``executor``; return the figures."""
    root = scratch / executor
    root.mkdir()
    cluster = Cluster(root)
    figures: dict[str, Any] = {"executor": executor, "jobs": jobs, "load_before": load_average()}
    try:
        url = cluster.redis()
        celery = {"broker": url, "max_in_flight": 8, "visibility_timeout": 600}
        cluster.configure(executor, celery)
        if executor == "celery":
            cluster.start_workers(2)
        cluster.start_daemon()
        assert cluster.daemon is not None
        idle = None
        if executor == "celery":
            # What the set-up costs doing nothing (heartbeats, census), to subtract.
            time.sleep(2)
            start = _redis_counters(url)
            time.sleep(IDLE_WINDOW)
            idle = _delta(start, _redis_counters(url))
        before = _redis_counters(url) if executor == "celery" else {}
        cpu = process_cpu_seconds(cluster.daemon.pid)
        started = time.monotonic()
        cluster.drop(["x"] * jobs)
        statuses = cluster.wait_done(jobs, 60 + jobs / 5)
        wall = time.monotonic() - started
        figures["daemon_cpu_ms_per_job"] = round(
            1000 * (process_cpu_seconds(cluster.daemon.pid) - cpu) / jobs, 3
        )
        span = busy_span(statuses)
        figures["busy_seconds"] = round(span, 3)
        figures["jobs_per_second"] = round(jobs / span, 1)
        figures["load_after"] = load_average()
        if idle is not None:
            used = _delta(before, _redis_counters(url))
            scale = wall / IDLE_WINDOW
            per_job = {
                key: (value - scale * idle.get(key, 0.0)) / jobs for key, value in used.items()
            }
            commands = {
                key: round(value, 2)
                for key, value in sorted(per_job.items())
                if not key.startswith("net_") and value >= 0.05
            }
            figures["redis_per_job"] = {
                "commands": round(sum(commands.values()), 1),
                "bytes_in": round(per_job["net_in_bytes"]),
                "bytes_out": round(per_job["net_out_bytes"]),
                "by_command": commands,
            }
    finally:
        cluster.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run both executors and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000, help="no-op jobs per run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="hotfolder-ceiling-") as scratch:
        for executor in ("pool", "celery"):
            run = measure(Path(scratch), executor, args.jobs)
            print(json.dumps(run), flush=True)
            runs.append(run)
    document = {
        "benchmark": "ceiling",
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "workload": "bench-noop (copies a 1-byte file), settle 0.3 s",
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
