"""Lost workers, seen from the daemon: their abandoned tasks, and the worker list for people.

A task whose worker was declared lost is *abandoned*: the job runs again under
a new task id, and whatever the old task still reports (its worker was only
paused, or cut off by the network, and comes back) is discarded with a log
line, and the execution directories it wrote are removed. Only the attempt
the daemon waits for is ever published.
"""

from __future__ import annotations

import glob
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hotfolder.celery_events import WorkerSeen
from hotfolder.executors import WorkerView

log = logging.getLogger("hotfolder.celery")


@dataclass
class _Abandoned:
    job_id: str
    work_dir: str
    worker: str
    since: float


class AbandonedTasks:
    """Task ids of lost workers, kept until they report or ``keep`` seconds pass.

    Thread-safe: the result watcher reads :meth:`ids` for its sweeps.
    """

    def __init__(self, keep: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._keep = keep
        self._clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, _Abandoned] = {}

    def add(self, task_id: str, job_id: str, work_dir: str, worker: str) -> None:
        """``task_id`` of ``job_id`` ran on ``worker``, now lost."""
        now = self._clock()
        with self._lock:
            self._tasks[task_id] = _Abandoned(job_id, work_dir, worker, now)
            # A worker gone for good never reports: its stored task is redelivered
            # after the visibility timeout at the latest, then revoked or stale.
            for old in [t for t, a in self._tasks.items() if a.since < now - self._keep]:
                del self._tasks[old]

    def __contains__(self, task_id: object) -> bool:
        with self._lock:
            return task_id in self._tasks

    def ids(self) -> list[str]:
        """Every abandoned task id."""
        with self._lock:
            return list(self._tasks)

    def discard(self, task_id: str, status: str) -> None:
        """The abandoned task ended (``status``): log it, remove what it wrote."""
        with self._lock:
            abandoned = self._tasks.pop(task_id, None)
        if abandoned is None:
            return
        # The directories are named after the task: the attempt being waited
        # for converts in a directory of its own and is never touched here.
        removed = 0
        for path in Path(abandoned.work_dir).glob(f"{glob.escape(task_id)}.*"):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        log.warning(
            "late result (%s) from worker %s, which was declared lost: discarded; "
            "%d execution dir(s) of it removed",
            status,
            abandoned.worker,
            removed,
            extra={"job_id": abandoned.job_id},
        )


def announce_lost(worker: WorkerSeen, held: int, ours: bool, now: float) -> bool:
    """Log a silent worker holding ``held`` jobs; True when it counts as lost.

    A worker that said goodbye (a warm shutdown) is not lost: it finished or
    handed back its jobs, and is only mentioned if it still held some.
    """
    silent = now - worker.last_seen
    if worker.offline:
        if held:
            log.warning(
                "worker %s stopped %.0f s ago and still holds %d job(s); they are sent again",
                worker.name,
                silent,
                held,
            )
        return False
    if not (held or ours):
        return False
    log.warning(
        "worker %s was not heard from for %.0f s: declared lost; %d job(s) it held are sent again",
        worker.name,
        silent,
        held,
    )
    return True


def worker_views(
    seen: Iterable[WorkerSeen],
    census: Mapping[str, int],
    ours: set[str],
    holders: list[str | None],
) -> list[WorkerView]:
    """Workers serving the queue (``census``: processes per node) or holding our jobs.

    ``ours`` names every worker ever found serving the queue, ``holders`` the
    worker of each job in flight. Workers the events show that neither serve
    the queue nor hold a job belong to another installation on the same
    broker, or left; they are not listed (a lost one of ours is).
    """
    census = dict(census)
    views = []
    for worker in seen:
        jobs = holders.count(worker.name)
        if worker.name not in census and not jobs and not (worker.lost and worker.name in ours):
            continue
        views.append(
            WorkerView(
                name=worker.name,
                host=worker.host,
                processes=census.pop(worker.name, 0),
                jobs=jobs,
                last_heartbeat=worker.last_seen_at,
                state="lost" if worker.lost else "alive",
            )
        )
    # Answered the census, no event yet (they follow within a second or two).
    for name, processes in census.items():
        views.append(
            WorkerView(
                name=name,
                host=name.partition("@")[2] or name,
                processes=processes,
                jobs=holders.count(name),
                last_heartbeat=None,
            )
        )
    return sorted(views, key=lambda view: view.name)
