"""Failover: from ``kill -9`` of a worker to its jobs finishing on another, Redis and RabbitMQ.

Run from the repository root: ``.venv/bin/python -m bench.failover``
(``--runs N``). Needs Debian's ``redis-server`` and ``rabbitmq-server``.

``[celery]`` at its defaults (``worker_lost_after`` 15 s, ``visibility_timeout``
3,600 s) except ``max_in_flight = 4``, as in the issue that asked for this:
two ``hotfolder worker`` processes with one conversion process each, 20 jobs of
the ``bench-noop`` workflow that each take 1 s. As soon as one worker has
started a job, its whole process group is killed with SIGKILL (a machine that
vanished). Measured: seconds from the kill to the ``finishedAt`` of the last
job it held (held: started on it, not finished at the kill), and to the last of
all jobs. On Redis the daemon notices the silence and sends the job again; on
RabbitMQ the broker hands the unacknowledged job on as soon as the dead
worker's connection closes (the result backend is a second Redis there).
``load`` records the machine's load average: these are wall-clock figures.
Results: ``bench/results/failover.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.celery_scaling import _parse_time, _wait
from bench.cluster import Cluster, load_average

RESULTS = Path(__file__).resolve().parent / "results" / "failover.json"
JOBS = 20


def measure(root: Path, broker: str) -> dict[str, Any]:
    """One kill on ``broker`` (``redis`` or ``rabbitmq``); return the figures."""
    root.mkdir()
    cluster = Cluster(root)
    load = load_average()
    try:
        backend = cluster.redis()
        url = cluster.rabbitmq() if broker == "rabbitmq" else backend
        cluster.configure("celery", {"broker": url, "result_backend": backend, "max_in_flight": 4})
        cluster.start_workers(2)
        cluster.start_daemon()
        cluster.drop(["sleep:1"] * JOBS)
        victim = None

        def started() -> bool:
            nonlocal victim
            victim = next((w for w in cluster.workers if cluster.running_on(w)), None)
            return victim is not None

        _wait(started, 60, "a job on a worker")
        assert victim is not None
        finished = {s["jobId"] for s in cluster.statuses()}
        os.killpg(victim.pid, signal.SIGKILL)
        killed = time.time()
        held = cluster.running_on(victim) - finished
        statuses = cluster.wait_done(JOBS, 180)
    finally:
        cluster.close()
    ends = {s["jobId"]: _parse_time(s["finishedAt"]) for s in statuses}
    return {
        "broker": broker,
        "held_jobs": len(held),
        "seconds_to_held_finished": round(max(ends[j] for j in held) - killed, 2),
        "seconds_to_all_finished": round(max(ends.values()) - killed, 2),
        "attempts_of_held": sorted(s["attempts"] for s in statuses if s["jobId"] in held),
        "load": load,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the kills and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="kills per broker (default 3)")
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="hotfolder-failover-") as scratch:
        for broker in args.brokers.split(","):
            for number in range(args.runs):
                run = measure(Path(scratch) / f"{broker}{number}", broker)
                print(json.dumps(run), flush=True)
                runs.append(run)
    document = {
        "benchmark": "failover",
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "workload": f"{JOBS} bench-noop jobs of 1 s, 2 workers x 1 process, [celery] defaults "
        "(worker_lost_after 15, visibility_timeout 3600) but max_in_flight 4",
        "target_seconds": 20,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
