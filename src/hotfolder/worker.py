"""``hotfolder worker``: a Celery worker that converts jobs of daemons with ``executor = "celery"``.

It reads the same config file as the daemon: the ``[celery]`` table (broker,
queue), the ``[daemon]`` plugins, ``max_jobs_per_worker`` and
``worker_memory_limit``, and the ``[[workflows]]`` chains, so it runs exactly
the workflow code the daemon would. Worker processes are forked from a
parent that has already imported the engines and loaded the plugins.

Also runnable as ``python -m hotfolder.worker --config F [--concurrency N]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from celery.signals import worker_process_init

from hotfolder.celery_app import make_app
from hotfolder.celery_settings import CelerySettings
from hotfolder.config import Settings
from hotfolder.errors import ExitCode, HotfolderError
from hotfolder.executor import prepare_worker_process
from hotfolder.memory import memory_limit

log = logging.getLogger("hotfolder.worker")


def run_worker(settings: Settings, celery: CelerySettings, concurrency: int | None = None) -> int:
    """Run a Celery worker until SIGTERM/SIGINT; return the exit code.

    ``settings`` must be fully loaded (``load_checked``): the plugins and
    ``[[workflows]]`` chains are registered in this process already.
    """
    daemon = settings.daemon
    processes = concurrency or max(1, os.cpu_count() or 1)
    _check_folders(settings)
    app = make_app(celery, max_jobs_per_worker=daemon.max_jobs_per_worker)
    # The same formula as the daemon's pool, over this worker's own processes.
    limit = memory_limit(daemon.worker_memory_limit, processes)
    _limit_children(limit.mb, processes)
    # Unique per process, so that several workers can run on one machine.
    name = f"hotfolder-{os.getpid()}@{socket.gethostname()}"
    log.info(
        "worker %s: %d process(es) on queue %s; memory limit %s",
        name,
        processes,
        celery.queue,
        limit.describe(),
    )
    app.worker_main(
        [
            "worker",
            f"--hostname={name}",
            f"--concurrency={processes}",
            "--pool=prefork",
            f"--queues={celery.queue}",
            f"--loglevel={daemon.log_level}",
            # Workers never need each other's events; revokes still reach them all.
            "--without-gossip",
            # The daemon declares a worker lost after celery.worker_lost_after s of silence.
            f"--heartbeat-interval={celery.heartbeat_interval}",
        ]
    )
    return int(ExitCode.OK)


def _check_folders(settings: Settings) -> None:
    # A worker that cannot see the shared folders fails every job it takes; say so
    # at start instead of in each job's status.
    for folder in settings.folders:
        if not folder.work_dir.is_dir():
            log.warning(
                "folder %s: its work area %s is not visible here; jobs of this folder "
                "fail on this worker until the shared storage is mounted at that path",
                folder.name,
                folder.work_dir,
            )


def _limit_children(memory_limit_mb: int, processes: int) -> None:
    def init(**_: Any) -> None:
        # Runs in each new worker process, before it takes a job. The OOM killer then
        # takes a conversion, not the Celery parent, which hands the job on again.
        prepare_worker_process(memory_limit_mb, processes)

    # weak=False: the receiver is a closure that nothing else keeps alive.
    worker_process_init.connect(init, weak=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hotfolder.worker --config F [--concurrency N]``."""
    parser = argparse.ArgumentParser(prog="hotfolder worker", description=__doc__)
    parser.add_argument("--config", "-c", help="config file (default: $HOTFOLDER_CONFIG)")
    parser.add_argument(
        "--concurrency", "-n", type=int, default=0, help="worker processes (default: CPUs)"
    )
    args = parser.parse_args(argv)
    from hotfolder.config import load_settings
    from hotfolder.loader import load_checked
    from hotfolder.logs import configure as configure_logging

    try:
        early = load_settings(args.config).daemon
        configure_logging(early.log_level, early.log_format)
        settings = load_checked(args.config)
        return run_worker(settings, settings.celery, args.concurrency or None)
    except HotfolderError as exc:
        print(f"hotfolder: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
