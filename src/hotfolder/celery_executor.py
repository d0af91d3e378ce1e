"""The Celery executor: the worker pool's interface over Celery workers anywhere.

The daemon keeps everything that needs its journal (intake, claim, retries,
publishing); Celery only carries each job's spec to a worker and its outcome
back. Results arrive through :class:`~hotfolder.celery_results.ResultWatcher`
and wake :meth:`CeleryExecutor.poll`, which never spins.

Task ids are ``<executor prefix><job id>.<n>``: the prefix is new for every
daemon run, so a result of a previous run (or of another daemon) is never
mistaken for a current one; the dispatcher accepts the first result of a task
and the executor forgets the task then, dropping later duplicates.

Lost workers: :class:`~hotfolder.celery_events.WorkerBook` follows the
workers' heartbeats and which of them holds which task. A worker silent for
``worker_lost_after`` seconds is declared lost; each job it held is sent again
at once under a new task id (a new attempt, into a new execution directory),
and the old task is revoked. Should the worker come back (it was paused, or
cut off by the network), whatever its old task still reports is discarded and
the files it wrote are removed: only the attempt the daemon waits for is
published.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from hotfolder.celery_app import TASK_NAME, make_app
from hotfolder.celery_events import EventFollower, WorkerBook, WorkerSeen
from hotfolder.celery_lost import AbandonedTasks, announce_lost, worker_views
from hotfolder.celery_outcomes import lost_too_often, outcome_of
from hotfolder.celery_results import FINAL, Meta, ResultWatcher, WorkerCensus
from hotfolder.celery_settings import CelerySettings
from hotfolder.config import WorkflowSettings
from hotfolder.executors import WorkerView
from hotfolder.models import JobOutcome, JobSpec

log = logging.getLogger("hotfolder.celery")

Result = tuple[JobSpec, JobOutcome]
#: Seconds between attempts to hand jobs to a broker that refused them.
_RESEND_DELAY = 2.0


@dataclass
class _Flight:
    """A job handed to Celery (or waiting for the broker to take it)."""

    spec: JobSpec
    task_id: str
    timeout: float
    sent: bool = False
    #: "host pid N" of every worker process that started it, in order.
    workers: list[str] = field(default_factory=list)
    #: The worker node that started it, by its stored STARTED state.
    node: str | None = None
    #: How often the job's worker was lost before this attempt.
    losses: int = 0


class CeleryExecutor:
    """Runs jobs on Celery workers; same interface as :class:`hotfolder.executor.WorkerPool`.

    Owned by the dispatcher's thread, except :meth:`wake`, :meth:`alive` and
    :meth:`alive_count`, which any thread may call. ``plugins`` and ``workflows``
    are taken for symmetry with the pool only: each worker loads its own from its
    config.
    """

    def __init__(
        self,
        settings: CelerySettings,
        *,
        plugins: Sequence[str] = (),
        workflows: Sequence[WorkflowSettings] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        #: Jobs in flight at most; the dispatcher sizes its queue on it.
        self.size = settings.max_in_flight
        self._clock = clock
        self._app = make_app(settings)
        self._prefix = f"hf{secrets.token_hex(6)}."
        self._numbers = itertools.count(1)
        self._flights: dict[str, _Flight] = {}
        self._tasks: dict[str, str] = {}  # job id -> task id
        # The watcher thread reads the in-flight task ids; the dispatcher changes them.
        self._flights_lock = threading.Lock()
        self._inbox: queue.SimpleQueue[Meta] = queue.SimpleQueue()
        self._unsent: list[str] = []
        self._next_send = 0.0
        self._broker_down = False
        self._warned_visibility = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._watcher = ResultWatcher(self._app, self._prefix, self._pending_ids, self._deliver)
        self._census = WorkerCensus(self._app, settings.queue)
        self._book = WorkerBook(self._prefix, settings.worker_lost_after, clock=clock)
        self._events = EventFollower(self._app, self._book)
        self._abandoned = AbandonedTasks(
            settings.visibility_timeout + settings.worker_lost_after, clock
        )
        #: Set by the dispatcher: a job was sent again (a new attempt).
        self.on_attempt: Callable[[str], None] = lambda job_id: None
        #: Workers declared lost since the start.
        self.workers_lost = 0

    def start(self) -> None:
        """Subscribe to results and start counting workers."""
        broker = maybe_sanitize_url(self.settings.broker)
        if not self._watcher.start(wait=5.0):
            log.warning("the result backend is not reachable yet; results are read once it is")
        self._census.start()
        self._events.start()
        log.info(
            "Celery executor: broker %s, queue %s, up to %d job(s) in flight",
            broker,
            self.settings.queue,
            self.size,
        )

    def free_slots(self) -> int:
        """How many more jobs may be handed to Celery now."""
        return max(0, self.size - len(self._flights))

    def running(self) -> list[str]:
        """Job ids handed to Celery and not finished."""
        return [flight.spec.job_id for flight in self._flights.values()]

    def alive_count(self) -> int:
        """Worker processes serving the queue, by the last census (every few seconds).

        A worker declared lost does not count, even if it still answered the
        last census.
        """
        lost = {worker.name for worker in self._book.workers() if worker.lost}
        return sum(n for name, n in self._census.processes.items() if name not in lost)

    def alive(self) -> bool:
        """True when at least one worker process serves the queue."""
        return self.alive_count() > 0

    def submit(self, spec: JobSpec, timeout: float) -> None:
        """Queue ``spec`` on Celery with a hard time limit of ``timeout`` seconds."""
        self._launch(spec, timeout, losses=0)

    def _launch(self, spec: JobSpec, timeout: float, losses: int) -> None:
        task_id = f"{self._prefix}{spec.job_id}.{next(self._numbers)}"
        flight = _Flight(spec=spec, task_id=task_id, timeout=timeout, losses=losses)
        with self._flights_lock:
            self._flights[task_id] = flight
        self._tasks[spec.job_id] = task_id
        if timeout >= self.settings.visibility_timeout and not self._warned_visibility:
            self._warned_visibility = True
            log.warning(
                "a folder's timeout (%g s) is not below celery.visibility_timeout (%g s): "
                "jobs running that long are handed to a second worker meanwhile",
                timeout,
                self.settings.visibility_timeout,
            )
        if not self._send(flight):
            self._unsent.append(task_id)

    def _send(self, flight: _Flight) -> bool:
        try:
            self._app.send_task(
                TASK_NAME,
                args=[flight.spec.model_dump(mode="json")],
                task_id=flight.task_id,
                queue=self.settings.queue,
                time_limit=flight.timeout,
                # What workers log and put in events: the job id, never its options
                # (they may hold a document password).
                argsrepr=f"[{flight.spec.job_id}]",
            )
        except Exception as exc:  # kombu and redis raise many kinds; all mean "not sent"
            # The job stays in flight here and is sent again: a broker outage delays
            # jobs but does not fail them. One warning per outage is enough.
            level = logging.DEBUG if self._broker_down else logging.WARNING
            log.log(
                level,
                "the broker did not take the job (%s); trying again every %g s",
                exc,
                _RESEND_DELAY,
                extra={"job_id": flight.spec.job_id},
            )
            self._broker_down = True
            self._next_send = self._clock() + _RESEND_DELAY
            return False
        if self._broker_down:
            self._broker_down = False
            log.info("the broker takes jobs again")
        flight.sent = True
        return True

    def progress(self) -> dict[str, tuple[int, int]]:
        """Per-page progress does not cross the broker: always empty."""
        return {}

    def wake(self) -> None:
        """Interrupt a :meth:`poll` in progress (new work or a result arrived)."""
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            self._wake_w.send(b"\x00")

    def poll(self, timeout: float) -> list[Result]:
        """Wait up to ``timeout`` seconds for results; return the finished jobs."""
        if self._unsent:
            timeout = max(0.0, min(timeout, self._next_send - self._clock()))
        readable, _, _ = select.select([self._wake_r], [], [], timeout)
        if readable:
            with contextlib.suppress(BlockingIOError):
                while self._wake_r.recv(4096):
                    pass
        if self._unsent and self._clock() >= self._next_send:
            self._resend()
        results: list[Result] = []
        while True:
            try:
                meta = self._inbox.get_nowait()
            except queue.Empty:
                break
            result = self._take(meta)
            if result is not None:
                results.append(result)
        for worker in self._book.silent():
            results += self._lost(worker)
        return results

    def _resend(self) -> None:
        waiting, self._unsent = self._unsent, []
        for number, task_id in enumerate(waiting):
            flight = self._flights.get(task_id)
            if flight is not None and not self._send(flight):
                self._unsent = waiting[number:]
                return

    def _take(self, meta: Meta) -> Result | None:
        task_id = str(meta["task_id"])
        status = meta["status"]
        flight = self._flights.get(task_id)
        if flight is None:
            if task_id in self._abandoned and status in FINAL:
                self._abandoned.discard(task_id, status)
            return None  # cancelled, or a later duplicate of a result already taken
        if status == "STARTED":
            self._started(flight, meta.get("result"))
            return None
        self._forget(flight)
        return flight.spec, outcome_of(flight.spec, flight.timeout, status, meta.get("result"))

    def _started(self, flight: _Flight, info: Any) -> None:
        info = info if isinstance(info, dict) else {}
        if isinstance(info.get("hostname"), str):
            flight.node = info["hostname"]
        worker = f"{info.get('hostname', '?')} pid {info.get('pid', '?')}"
        if worker in flight.workers:
            return  # seen by pub/sub and again by a sweep
        flight.workers.append(worker)
        job = {"job_id": flight.spec.job_id}
        if len(flight.workers) == 1:
            log.info("running on worker %s", worker, extra=job)
        else:
            log.warning(
                "handed to worker %s: the worker that ran it before (%s) was lost",
                worker,
                flight.workers[-2],
                extra=job,
            )

    def _lost(self, worker: WorkerSeen) -> list[Result]:
        """Send again every job ``worker`` held; return jobs that end here instead."""
        held = [
            flight
            for flight in self._flights.values()
            if flight.sent and self._holder(flight) == worker.name
        ]
        # Workers of other installations on the same broker are not ours to count.
        if announce_lost(worker, len(held), worker.name in self._census.seen, self._clock()):
            self.workers_lost += 1
        if not held:
            return []
        # A result stored just before the worker vanished is still a result.
        results: list[Result] = []
        for meta in self._watcher.fetch([flight.task_id for flight in held]):
            if meta["status"] in FINAL:
                result = self._take(meta)
                if result is not None:
                    results.append(result)
        held = [flight for flight in held if flight.task_id in self._flights]
        if held:
            self._revoke([flight.task_id for flight in held])
        for flight in held:
            self._forget(flight)
            self._abandoned.add(
                flight.task_id, flight.spec.job_id, flight.spec.work_dir, worker.name
            )
            losses = flight.losses + 1
            job = {"job_id": flight.spec.job_id}
            if losses >= self.settings.max_deliveries:
                log.error("lost its worker %d times; giving up", losses, extra=job)
                results.append((flight.spec, lost_too_often(flight.spec, losses)))
                continue
            log.warning(
                "its worker %s was lost; sent again as a new attempt", worker.name, extra=job
            )
            self._launch(flight.spec, flight.timeout, losses)
            self.on_attempt(flight.spec.job_id)
        return results

    def _holder(self, flight: _Flight) -> str | None:
        return self._book.holder(flight.task_id) or flight.node

    def _forget(self, flight: _Flight) -> None:
        with self._flights_lock:
            self._flights.pop(flight.task_id, None)
        if self._tasks.get(flight.spec.job_id) == flight.task_id:
            del self._tasks[flight.spec.job_id]
        self._book.release(flight.task_id)
        if flight.task_id in self._unsent:
            self._unsent.remove(flight.task_id)

    def _pending_ids(self) -> list[str]:
        # Abandoned tasks too: a late result that pub/sub missed must still be found,
        # so that what it wrote is removed.
        with self._flights_lock:
            sent = [task_id for task_id, flight in self._flights.items() if flight.sent]
        return sent + self._abandoned.ids()

    def _deliver(self, meta: Meta) -> None:
        self._inbox.put(meta)
        self.wake()

    def kill_job(self, job_id: str) -> bool:
        """Cancel: revoke the job's task, killing its worker process; the result is dropped."""
        task_id = self._tasks.get(job_id)
        if task_id is None:
            return False
        flight = self._flights[task_id]
        self._forget(flight)
        if flight.sent:
            self._revoke([task_id])
        return True

    def _revoke(self, task_ids: list[str]) -> None:
        # SIGKILL as the pool does: an engine stuck in C code ignores SIGTERM.
        try:
            self._app.control.revoke(task_ids, terminate=True, signal="SIGKILL")
        except Exception as exc:
            log.warning("could not reach the workers to stop %d job(s): %s", len(task_ids), exc)

    def reconfigure(self, plugins: Sequence[str], workflows: Sequence[WorkflowSettings]) -> None:
        """Nothing to do here: each worker loads plugins and chains from its own config."""
        log.warning(
            "plugins or [[workflows]] changed: restart the Celery workers "
            "(hotfolder worker) with the new config so that they use them"
        )

    def stop(self, drain: float) -> list[Result]:
        """Wait up to ``drain`` s for jobs in flight, then revoke the rest and stop.

        Revoked jobs are still ``running`` in the journal: the next start runs
        them again, under new task ids.
        """
        results: list[Result] = []
        end = self._clock() + drain
        while self._flights:
            remaining = end - self._clock()
            if remaining <= 0:
                break
            results += self.poll(min(remaining, 0.5))
        leftover = [flight.task_id for flight in self._flights.values() if flight.sent]
        if leftover:
            log.info("stopping %d job(s) still on Celery workers", len(leftover))
            self._revoke(leftover)
        with self._flights_lock:
            self._flights.clear()
        self._tasks.clear()
        self._unsent.clear()
        self._watcher.stop()
        self._census.stop()
        self._events.stop()
        return results

    def workers(self) -> list[WorkerView]:
        """The workers serving the queue or holding jobs, as events and the census show them."""
        with self._flights_lock:
            flights = list(self._flights.values())
        holders = [self._holder(flight) for flight in flights if flight.sent]
        census = self._census
        return worker_views(self._book.workers(), census.processes, census.seen, holders)
