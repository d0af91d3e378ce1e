"""Backlog: a daemon started on an input folder that already holds ``count`` files.

Timed from the moment the daemon process is started. While it works through
the backlog for ``window`` seconds, a sampler reads every 100 ms:

* the main process's resident memory (/proc/<pid>/statm);
* each worker's state: idle means asleep reading its pipe (waiting for the
  next job); anything else (running, fsync, disk) is busy.

Targets: the first conversion starts within 3 s of the start, workers stay
busy (here: busy in at least 90 % of the samples taken until the window ends or
the last file is done, whichever is first), and the daemon's memory stays
under 250 MB.
"""

from __future__ import annotations

import os
import time

from bench import procstat
from bench.context import Context
from bench.daemon import Daemon, is_finish, is_start
from bench.stats import Check, Result

MB = 1024 * 1024


def run(ctx: Context, count: int, window: float, settle: float) -> Result:
    """Start on ``count`` waiting files and watch the first ``window`` seconds."""
    root = ctx.fresh("backlog")
    daemon = Daemon(
        root / "daemon",
        [{"name": "letters", "path": "letters", "workflow": "pdf-optimize", "settle": settle}],
        workers=ctx.workers,
        observer="native",
    )
    ctx.stage_letters(daemon.folder("letters"), count)
    os.sync()  # the 20,000 new files must not be flushed inside the measured time
    daemon.start(wait=False)
    workers: list[int] = []

    def probe() -> tuple[int, int, int]:
        nonlocal workers
        if len(workers) < ctx.workers:
            workers = daemon.workers()
        busy = sum(1 for pid in workers if not procstat.idle_worker(pid))
        return procstat.rss_bytes(daemon.pid), busy, len(workers)

    try:
        with procstat.Sampler(probe, 0.1) as sampler:
            daemon.wait_started()
            first_start = _first_start(daemon)
            time.sleep(max(0.0, first_start + window - time.time()))
    finally:
        daemon.stop()
    starts = [e.time for e in daemon.events(is_start)]
    done = [e.time for e in daemon.events(is_finish) if e.time <= first_start + window]
    # Busy is judged while there is a backlog: once the last file is done, workers
    # rightly wait, and samples of that idle tail say nothing about keeping them fed.
    end = max(done) if len(done) >= count else first_start + window
    in_window = [(t, v) for t, v in sampler.samples if first_start <= t <= end]
    # A worker slot counts as busy for the fraction of workers busy in that sample.
    busy = [v[1] / v[2] for _, v in in_window if v[2]]
    rss = [v[0] for _, v in sampler.samples]
    busy_fraction = sum(busy) / len(busy) if busy else 0.0
    until_first = min(starts) - daemon.started_at
    return Result(
        name="backlog",
        description=f"{count} one-page PDFs waiting in the input when the daemon starts",
        parameters={"count": count, "window": window, "settle": settle, "workers": ctx.workers},
        figures={
            "seconds_to_first_start": round(until_first, 3),
            "seconds_to_started_log": round(
                next(e.time for e in daemon.log.events if e.message.startswith("hotfolder started"))
                - daemon.started_at,
                3,
            ),
            "jobs_finished_in_window": len(done),
            "seconds_to_drain": round(end - first_start, 3) if len(done) >= count else None,
            "jobs_per_second": round(len(done) / (end - first_start), 1),
            "worker_busy_fraction": round(busy_fraction, 3),
            "rss_max_mb": round(max(rss) / MB, 1),
            "rss_last_mb": round(rss[-1] / MB, 1),
        },
        checks=[
            Check("first conversion after start", until_first, 3.0, unit="s"),
            Check("workers busy (share of samples)", busy_fraction, 0.9, kind="min"),
            Check("daemon RSS max", max(rss) / MB, 250, unit="MB"),
        ],
        samples={
            "time": [round(t - daemon.started_at, 2) for t, _ in sampler.samples[::5]],
            "rss_mb": [round(v[0] / MB, 1) for _, v in sampler.samples[::5]],
            "busy": [round(v[1] / v[2], 2) if v[2] else 0 for _, v in sampler.samples[::5]],
        },
    )


def _first_start(daemon: Daemon, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        starts = [e.time for e in daemon.events(is_start)]
        if starts:
            return min(starts)
        time.sleep(0.05)
    raise TimeoutError("no conversion started")
