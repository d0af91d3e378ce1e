"""What the dispatcher needs of an executor: the embedded pool or Celery.

Both :class:`hotfolder.executor.WorkerPool` and
:class:`hotfolder.celery_executor.CeleryExecutor` satisfy this protocol; the
dispatcher and the daemon use nothing else of them, so that an executor can be
chosen in the config without either knowing which one runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hotfolder.config import Settings, WorkflowSettings
from hotfolder.errors import ToolMissing
from hotfolder.models import JobOutcome, JobSpec

log = logging.getLogger("hotfolder.executor")

#: A finished job: what was submitted and what came back.
Result = tuple[JobSpec, JobOutcome]


@dataclass(frozen=True)
class WorkerView:
    """One worker as the daemon sees it (``hotfolder status``, ``GET /status``)."""

    #: The worker's name (a Celery node name, or ``local`` for the embedded pool).
    name: str
    host: str
    #: Conversion processes (0: not known yet).
    processes: int
    #: Jobs of this daemon it holds right now.
    jobs: int
    #: Wall-clock time of its last heartbeat (None: not known).
    last_heartbeat: float | None
    #: ``alive``, ``lost`` (silent for ``worker_lost_after``) or ``down``.
    state: str = "alive"

    def document(self) -> dict[str, Any]:
        """The JSON form (camelCase, like the status files)."""
        return {
            "name": self.name,
            "host": self.host,
            "processes": self.processes,
            "jobs": self.jobs,
            "lastHeartbeat": self.last_heartbeat,
            "state": self.state,
        }


class Executor(Protocol):
    """Runs job specs somewhere and reports their outcomes, one thread driving it.

    :meth:`submit`, :meth:`poll`, :meth:`kill_job` and :meth:`stop` are called
    from the dispatcher's thread only; :meth:`wake`, :meth:`alive` and
    :meth:`alive_count` may be called from any thread.
    """

    #: How many jobs may run at once (queue sizing uses it).
    size: int
    #: Set by the dispatcher: called (in its thread, from :meth:`poll`) with a job id
    #: when the executor sends a job again because its worker was lost.
    on_attempt: Callable[[str], None]
    #: Workers declared lost since the start (a counter for metrics).
    workers_lost: int

    def start(self) -> None:
        """Get ready to take jobs."""

    def free_slots(self) -> int:
        """How many more jobs :meth:`submit` takes right now."""

    def submit(self, spec: JobSpec, timeout: float) -> None:
        """Start ``spec``; it is stopped and fails with ``timeout`` after ``timeout`` s."""

    def poll(self, timeout: float) -> list[Result]:
        """Wait up to ``timeout`` s; return finished jobs, crashes and timeouts included."""

    def progress(self) -> dict[str, tuple[int, int]]:
        """(pages done, pages) per running job reported since the last call (may be empty)."""

    def wake(self) -> None:
        """Make a :meth:`poll` in progress return now."""

    def kill_job(self, job_id: str) -> bool:
        """Stop a running job (cancel); its result is dropped. False if not running."""

    def stop(self, drain: float) -> list[Result]:
        """Wait up to ``drain`` s for running jobs, then stop; return what finished."""

    def alive(self) -> bool:
        """True when the executor can run jobs (for /healthz)."""

    def alive_count(self) -> int:
        """How many worker processes are running."""

    def reconfigure(self, plugins: Sequence[str], workflows: Sequence[WorkflowSettings]) -> None:
        """New plugins or workflow chains after a reload."""

    def workers(self) -> list[WorkerView]:
        """The workers this executor sees right now (any thread)."""


def make_executor(settings: Settings) -> Executor:
    """The embedded worker pool, or Celery workers (``[daemon] executor``)."""
    daemon = settings.daemon
    if daemon.executor == "celery":
        # Imported only here: the default executor never loads Celery.
        try:
            from hotfolder.celery_executor import CeleryExecutor
        except ImportError as exc:
            raise ToolMissing(
                f"executor = 'celery' needs Celery ({exc}); install hotfolder[celery]"
            ) from None
        return CeleryExecutor(settings.celery, plugins=daemon.plugins, workflows=settings.workflows)
    from hotfolder.executor import WorkerPool
    from hotfolder.memory import memory_limit

    limit = memory_limit(daemon.worker_memory_limit, daemon.workers)
    log.info("worker memory limit: %s", limit.describe())
    return WorkerPool(
        daemon.workers,
        max_jobs_per_worker=daemon.max_jobs_per_worker,
        memory_limit_mb=limit.mb,
        plugins=daemon.plugins,
        workflows=settings.workflows,
        logging_setup=(daemon.log_level, daemon.log_format),
    )
