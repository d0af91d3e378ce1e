"""Throughput where the engine dominates: the daemon against direct calls.

For each set (multi-page PDFs through ``pdf-archive``, 12 MP photos through
``image-convert``) the same files are converted twice on the same machine in
the same run:

* direct: :func:`hotfolder.workflows.runner.run_job`, the function the
  daemon's workers run, called in a warmed-up process pool of the daemon's
  worker count, timed from the first submission to the last result;
* daemon: ``hotfolder run`` on a temp folder, timed from the first file
  renamed into in/ to the last status file placed in out/ (its ctime).

The daemon's time includes everything it does that a direct call does not:
noticing the files, ``settle``, the journal, publishing and archiving.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench import procstat
from bench.context import Context, copy_into, drop, last_change
from bench.daemon import Daemon
from bench.stats import Check, Result, summary

#: Target: the daemon takes at most this many times the direct time.
TARGET = 1.05


def _warm(_: int) -> int:
    # Import the engines (as the daemon's forkserver does) and hold the worker
    # a moment so that every pool process is started before the clock runs.
    import hotfolder.workflows.runner  # noqa: F401

    time.sleep(0.2)
    return os.getpid()


def _convert(spec: dict[str, object]) -> tuple[bool, float, str]:
    from hotfolder.models import JobSpec
    from hotfolder.workflows.runner import run_job

    outcome = run_job(JobSpec.model_validate(spec))
    return outcome.ok, outcome.engine_seconds, outcome.message


def _cpu(pids: list[int] | set[int]) -> float:
    return sum(info.cpu_seconds for info in map(procstat.stat, pids) if info is not None)


def direct(
    files: list[Path], workflow: str, root: Path, workers: int
) -> tuple[float, list[float], float]:
    """Convert ``files`` with run_job in a pool; return wall, per-job and worker CPU seconds."""
    specs = [
        {
            "job_id": f"direct-{index:05d}",
            "job_name": path.stem,
            "conversions": [{"workflow": workflow, "profile": "default"}],
            "inputs": [str(path)],
            "work_dir": str(root / "work" / f"{index:05d}"),
        }
        for index, path in enumerate(files)
    ]
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pids = set(pool.map(_warm, range(workers * 2)))
        assert len(pids) == workers, "the pool did not start every worker"
        os.sync()  # staged copies must not be flushed inside the measured time
        cpu_before = _cpu(pids)
        started = time.time()
        outcomes = list(pool.map(_convert, specs))
        wall = time.time() - started
        cpu = _cpu(pids) - cpu_before
    failed = [message for ok, _, message in outcomes if not ok]
    if failed:
        raise RuntimeError(f"{len(failed)} direct conversions failed, first: {failed[0]}")
    return wall, [seconds for _, seconds, _ in outcomes], cpu


def through_daemon(
    files: list[Path], workflow: str, root: Path, workers: int, settle: float
) -> tuple[float, list[float], dict[str, float]]:
    """Drop ``files`` into a running daemon; return wall, per-job durations and CPU seconds.

    CPU time is the main process's and the workers' over the run: on a machine
    whose cores the workers fill, what the main process uses, they lose.
    """
    daemon = Daemon(
        root,
        [{"name": "set", "path": "set", "workflow": workflow, "settle": settle, "timeout": 3600}],
        workers=workers,
        observer="native",
    )
    daemon.start()
    try:
        os.sync()
        pids = daemon.workers()
        main_before, workers_before = _cpu([daemon.pid]), _cpu(pids)
        first = drop(files, daemon.folder("set"))
        daemon.wait_finished(len(files), timeout=3600 + 30 * len(files))
        # A replaced worker (crash, recycling) would make this figure meaningless.
        same = daemon.workers() == pids
        cpu = {
            "main_cpu_seconds": round(_cpu([daemon.pid]) - main_before, 2),
            "workers_cpu_seconds": round(_cpu(pids) - workers_before, 2) if same else -1.0,
        }
    finally:
        daemon.stop()
    out = daemon.folder("set", "out")
    end = last_change([out], "*.status.json")
    statuses = [json.loads(p.read_text()) for p in out.glob("*.status.json")]
    failed = [s["message"] for s in statuses if s["status"] != "success"]
    failed += [p.name for p in daemon.folder("set", "error").glob("*.status.json")]
    if failed or len(statuses) != len(files):
        raise RuntimeError(f"{len(failed)} daemon jobs failed: {failed[:3]}")
    return end - first, [s["durationSeconds"] for s in statuses], cpu


def measure_set(
    ctx: Context, name: str, workflow: str, sources: list[Path], settle: float
) -> dict[str, object]:
    """Direct, then daemon, on fresh copies of ``sources``; the figures of one set."""
    root = ctx.fresh(f"throughput-{name}")
    direct_inputs = copy_into(sources, root / "direct" / "in")
    direct_wall, direct_jobs, direct_cpu = direct(
        direct_inputs, workflow, root / "direct", ctx.workers
    )
    staged = copy_into(sources, root / "daemon" / "stage")
    daemon_wall, daemon_jobs, daemon_cpu = through_daemon(
        staged, workflow, root / "daemon", ctx.workers, settle
    )
    return {
        "workflow": workflow,
        "files": len(sources),
        "input_megabytes": round(sum(p.stat().st_size for p in sources) / 1e6, 1),
        "direct_seconds": round(direct_wall, 3),
        "daemon_seconds": round(daemon_wall, 3),
        "ratio": round(daemon_wall / direct_wall, 4),
        "ratio_without_settle": round((daemon_wall - settle) / direct_wall, 4),
        "direct_job_seconds": summary(direct_jobs, 3),
        "daemon_job_seconds": summary(daemon_jobs, 3),
        "direct_workers_cpu_seconds": round(direct_cpu, 2),
        "daemon_workers_cpu_seconds": daemon_cpu["workers_cpu_seconds"],
        "daemon_main_cpu_seconds": daemon_cpu["main_cpu_seconds"],
    }


def run(ctx: Context, pdfs: int, photos: int, settle: float) -> Result:
    """Both sets; the daemon/direct ratio of each is checked against 1.05."""
    from bench import corpus

    started = time.monotonic()
    documents = ctx.documents(pdfs)
    pictures = ctx.photos(photos)
    generated = time.monotonic() - started
    sets: dict[str, dict[str, object]] = {}
    checks: list[Check] = []
    for name, workflow, sources in (
        ("pdf", "pdf-archive", documents),
        ("photo", "image-convert", pictures),
    ):
        if not sources:
            continue
        figures = measure_set(ctx, name, workflow, sources, settle)
        sets[name] = figures
        ratio = figures["ratio"]
        assert isinstance(ratio, float)
        checks.append(Check(f"{workflow}: daemon / direct", ratio, TARGET, unit="x"))
    kinds = [corpus.document_kind(seed) for seed in range(pdfs)]
    return Result(
        name="throughput",
        description=f"{pdfs} multi-page PDFs through pdf-archive and {photos} 12 MP photos "
        "through image-convert: daemon end to end against run_job in a process pool",
        parameters={
            "pdfs": pdfs,
            "photos": photos,
            "settle": settle,
            "workers": ctx.workers,
            "pdf_kinds": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
            "pdf_mean_pages": round(corpus.mean_pages(pdfs), 1),
            "photo_size": "4000x3000 JPEG q90, EXIF (a quarter rotated)",
        },
        figures={**sets, "corpus_seconds": round(generated, 1)},
        checks=checks,
    )
