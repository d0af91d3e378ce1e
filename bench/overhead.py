"""Per-job overhead on one-page PDFs, against the floor and against the shell recipe.

All three take the same ``count`` one-page letters (a few milliseconds of
pikepdf work each) and are timed from the first file renamed into in/ to the
last file placed in out/ or archive/ (the latest ctime there):

* the daemon, through ``pdf-optimize`` with its usual checks, status files
  and journal;
* the floor (:mod:`bench.floor`): read, write output and status with fsync,
  rename into place, move the original, fsync the folders, nothing else;
* the shell recipe (:mod:`bench.shell_recipe`): ``inotifywait -m | xargs -P``.

The daemon's time per job leaves out its ``settle`` wait, which every file
spends once, at the same time, before the first job; its end-to-end time,
settle included, is what the shell recipe is compared with.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bench import floor, shell_recipe
from bench.context import Context, drop, last_change
from bench.daemon import Daemon
from bench.stats import Check, Result


def run(ctx: Context, count: int, settle: float, shell: bool = True) -> list[Result]:
    """Measure daemon, floor and (when inotifywait exists) the shell recipe."""
    root = ctx.fresh("overhead")
    ctx.letters(min(count, 1000))  # generate before any clock runs

    engine_per_job = _engine(ctx, root / "engine", min(count, 200))
    floor_before = _floor(ctx, root / "floor-before", count)

    daemon = Daemon(
        root / "daemon",
        [{"name": "letters", "path": "letters", "workflow": "pdf-optimize", "settle": settle}],
        workers=ctx.workers,
        observer="native",
    )
    daemon.start()
    staged = ctx.stage_letters(root / "daemon" / "stage", count)
    os.sync()
    first = drop(staged, daemon.folder("letters"))
    try:
        daemon.wait_finished(count, timeout=max(600, count))
    finally:
        daemon.stop()
    floor_after = _floor(ctx, root / "floor-after", count)
    # fsync times on this disk drift by a factor of two within minutes; the mean
    # of a floor run just before and one just after brackets the daemon's run.
    floor_seconds = (floor_before + floor_after) / 2
    floor_per_job = floor_seconds / count
    out, archive = daemon.folder("letters", "out"), daemon.folder("letters", "archive")
    end = last_change([out, archive])
    statuses = [json.loads(p.read_text()) for p in out.glob("*.status.json")]
    succeeded = sum(1 for s in statuses if s["status"] == "success")
    daemon_wall = end - first
    daemon_per_job = (daemon_wall - settle) / count

    result = Result(
        name="overhead",
        description=f"{count} one-page PDFs through pdf-optimize: daemon time per job "
        "against the floor any correct hot folder pays per job",
        parameters={"count": count, "settle": settle, "workers": ctx.workers},
        figures={
            "floor_ms_per_job": round(floor_per_job * 1000, 3),
            "engine_ms_per_job_one_process": round(engine_per_job * 1000, 3),
            "daemon_ms_per_job": round(daemon_per_job * 1000, 3),
            "daemon_jobs_per_second": round(count / (daemon_wall - settle), 1),
            "daemon_jobs_per_second_with_settle": round(count / daemon_wall, 1),
            "daemon_seconds_with_settle": round(daemon_wall, 3),
            "floor_seconds_before": round(floor_before, 3),
            "floor_seconds_after": round(floor_after, 3),
            "succeeded": succeeded,
            "ratio_to_floor": round(daemon_per_job / floor_per_job, 3),
        },
        checks=[
            Check("daemon / floor per job", daemon_per_job / floor_per_job, 2.0, unit="x"),
            Check("jobs succeeded", succeeded, count, kind="min"),
        ],
    )
    results = [result]
    if shell:
        results.append(_shell(ctx, count, daemon_wall))
    return results


def _engine(ctx: Context, root: Path, count: int) -> float:
    """Seconds per job of run_job alone (conversion, checks, hashes), in this process.

    Not a target: it shows how much of the daemon's time per job is the
    engine's, which no publishing strategy can remove.
    """
    from hotfolder.models import JobSpec
    from hotfolder.workflows.runner import run_job

    inputs = ctx.stage_letters(root / "in", count)
    os.sync()
    started = time.perf_counter()
    for index, path in enumerate(inputs):
        spec = JobSpec(
            job_id=f"engine-{index}",
            job_name=path.stem,
            conversions=[{"workflow": "pdf-optimize"}],
            inputs=[str(path)],
            work_dir=str(root / "work" / str(index)),
        )
        if not run_job(spec).ok:
            raise RuntimeError(f"run_job failed on {path.name}")
    return (time.perf_counter() - started) / count


def _floor(ctx: Context, root: Path, count: int) -> float:
    inputs = ctx.stage_letters(root / "in", count)
    os.sync()
    return floor.run(inputs, root / "out", root / "archive")


def _shell(ctx: Context, count: int, daemon_wall: float) -> Result:
    base = ctx.fresh("shell")
    recipe = shell_recipe.ShellRecipe(base / "recipe", ctx.workers)
    staged = ctx.stage_letters(base / "stage", count)
    os.sync()
    recipe.start()
    first = drop(staged, base / "recipe" / "in")
    started = time.monotonic()
    try:
        recipe.wait_done(count, timeout=max(1800, count * 5))
    finally:
        recipe.stop()
    end = last_change([base / "recipe" / "out", base / "recipe" / "archive"])
    shell_wall = end - first
    outputs = sum(1 for p in (base / "recipe" / "out").iterdir() if not p.name.startswith("."))
    return Result(
        name="shell",
        description=f"the same {count} one-page PDFs: inotifywait -m | xargs -P {ctx.workers} "
        "running a pikepdf one-liner per file, against the daemon",
        parameters={"count": count, "workers": ctx.workers, "command": "python -c (pikepdf)"},
        figures={
            "shell_seconds": round(shell_wall, 3),
            "daemon_seconds": round(daemon_wall, 3),
            "shell_jobs_per_second": round(count / shell_wall, 1),
            "daemon_jobs_per_second": round(count / daemon_wall, 1),
            "speedup": round(shell_wall / daemon_wall, 2),
            "outputs": outputs,
            "waited_seconds": round(time.monotonic() - started, 1),
        },
        checks=[
            Check("shell time / daemon time", shell_wall / daemon_wall, 10.0, kind="min", unit="x")
        ],
    )
