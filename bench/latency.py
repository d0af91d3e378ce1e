"""Latency from a file's arrival to the start of its conversion.

One-page PDFs are renamed into an idle daemon's input one at a time, at
random intervals (so that arrivals fall anywhere in the observer's cycle and
workers are free). Arrival is the moment of the rename; conversion start is
the job's ``startedAt`` in its status file, the moment the dispatcher handed
it to a worker. Both are wall-clock times on the same machine.

What is judged is the latency beyond ``settle``, which the daemon must wait
by design: native (inotify) p50 ≤ 50 ms and p99 ≤ 200 ms; polling every
``poll_interval`` seconds at most ``poll_interval`` + 100 ms.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime

from bench.context import Context
from bench.daemon import Daemon
from bench.stats import Check, Result, summary


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def measure(
    ctx: Context, observer: str, drops: int, settle: float, poll_interval: float
) -> list[float]:
    """Drop ``drops`` files one by one; return arrival-to-start latencies in seconds."""
    root = ctx.fresh(f"latency-{observer}")
    daemon = Daemon(
        root / "daemon",
        [{"name": "letters", "path": "letters", "workflow": "pdf-optimize", "settle": settle}],
        workers=ctx.workers,
        observer=observer,
        poll_interval=poll_interval,
    )
    staged = ctx.stage_letters(root / "stage", drops)
    daemon.start()
    # Let the start-up work (engine version probes) finish before the first arrival.
    time.sleep(2)
    rng = random.Random(f"latency-{observer}")
    arrivals: dict[str, float] = {}
    inbox = daemon.folder("letters")
    try:
        for path in staged:
            time.sleep(rng.uniform(0.1, 0.4))
            arrivals[path.name] = time.time()
            path.rename(inbox / path.name)
        daemon.wait_finished(drops, timeout=120 + drops * (settle + poll_interval))
    finally:
        daemon.stop()
    latencies = []
    for status_file in daemon.folder("letters", "out").glob("*.status.json"):
        status = json.loads(status_file.read_text())
        name = status["inputs"][0]["name"]
        latencies.append(_epoch(status["startedAt"]) - arrivals[name])
    if len(latencies) != drops:
        raise RuntimeError(f"{drops - len(latencies)} of {drops} latency jobs did not succeed")
    return latencies


def run(ctx: Context, drops: int, settle: float, poll_interval: float) -> Result:
    """Native and polling observers; latency beyond settle in milliseconds."""
    figures: dict[str, object] = {}
    samples: dict[str, list[float]] = {}
    checks: list[Check] = []
    for observer in ("native", "polling"):
        beyond = [(s - settle) * 1000 for s in measure(ctx, observer, drops, settle, poll_interval)]
        samples[observer] = [round(v, 1) for v in beyond]
        stats = summary(beyond, 1)
        figures[observer] = {"ms_beyond_settle": stats}
        if observer == "native":
            checks.append(Check("native p50 beyond settle", stats["p50"], 50, unit="ms"))
            checks.append(Check("native p99 beyond settle", stats["p99"], 200, unit="ms"))
        else:
            limit = poll_interval * 1000 + 100
            checks.append(Check("polling p99 beyond settle", stats["p99"], limit, unit="ms"))
            checks.append(Check("polling max beyond settle", stats["max"], limit, unit="ms"))
    return Result(
        name="latency",
        description=f"{drops} one-page PDFs renamed into an idle daemon one at a time: "
        "arrival to conversion start, beyond settle",
        parameters={"drops": drops, "settle": settle, "poll_interval": poll_interval},
        figures=figures,
        checks=checks,
        samples=samples,
    )
