"""Memory across many jobs: the daemon's resident memory must stay flat.

One-page PDFs are fed to a daemon at the rate it converts them (a feeder
keeps a few hundred files in in/, as a busy scanner would), for ``jobs``
jobs. The main process's RSS is read after every ``step`` finished jobs. The
first ``warmup`` jobs fill caches that are meant to fill (imports, SQLite's
page cache, the engines' first use), so growth is judged from there: the
largest RSS after warm-up may exceed the RSS at warm-up by at most 10 %.
"""

from __future__ import annotations

import time

from bench import procstat
from bench.context import Context
from bench.daemon import Daemon
from bench.stats import Check, Result

MB = 1024 * 1024


def run(ctx: Context, jobs: int, settle: float, warmup: int = 500, step: int = 100) -> Result:
    """Feed ``jobs`` jobs; RSS per ``step`` jobs; growth after ``warmup`` jobs."""
    root = ctx.fresh("memory")
    daemon = Daemon(
        root / "daemon",
        [{"name": "letters", "path": "letters", "workflow": "pdf-optimize", "settle": settle}],
        workers=ctx.workers,
        observer="native",
    )
    staged = ctx.stage_letters(root / "stage", jobs)
    inbox = daemon.folder("letters")
    daemon.start()
    rss_at_start = procstat.rss_bytes(daemon.pid)
    points: list[tuple[int, int]] = []
    worker_points: list[tuple[int, int]] = []
    fed = 0
    started = time.monotonic()
    try:
        while True:
            finished = daemon.finished_jobs()
            if finished >= (len(points) + 1) * step or finished >= jobs:
                points.append((finished, procstat.rss_bytes(daemon.pid)))
                worker_points.append(
                    (finished, max((procstat.rss_bytes(p) for p in daemon.workers()), default=0))
                )
            if finished >= jobs:
                break
            # Keep about 300 files waiting: enough to never starve the workers.
            while fed < jobs and fed - finished < 300:
                staged[fed].rename(inbox / staged[fed].name)
                fed += 1
            if time.monotonic() - started > 600 + jobs:
                raise TimeoutError(f"only {finished} of {jobs} jobs finished")
            time.sleep(0.05)
    finally:
        daemon.stop()
    after_warmup = [rss for done, rss in points if done >= warmup]
    base = after_warmup[0]
    growth = (max(after_warmup) - base) / base
    return Result(
        name="memory",
        description=f"{jobs} one-page PDFs fed steadily through pdf-optimize: daemon RSS",
        parameters={"jobs": jobs, "warmup": warmup, "step": step, "settle": settle},
        figures={
            "rss_at_start_mb": round(rss_at_start / MB, 1),
            "rss_after_warmup_mb": round(base / MB, 1),
            "rss_max_after_warmup_mb": round(max(after_warmup) / MB, 1),
            "rss_at_end_mb": round(points[-1][1] / MB, 1),
            "growth_after_warmup_percent": round(growth * 100, 2),
            "growth_from_start_percent": round(
                (points[-1][1] - rss_at_start) / rss_at_start * 100, 2
            ),
            "worker_rss_max_mb": round(max(rss for _, rss in worker_points) / MB, 1),
            "seconds": round(time.monotonic() - started, 1),
        },
        checks=[Check("RSS growth after warm-up", growth * 100, 10.0, unit="%")],
        samples={
            "jobs": [done for done, _ in points],
            "rss_mb": [round(rss / MB, 2) for _, rss in points],
            "worker_rss_mb": [round(rss / MB, 2) for _, rss in worker_points],
        },
    )
