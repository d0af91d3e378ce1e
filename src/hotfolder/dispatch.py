"""The dispatcher: queue → worker pool → publish, with bounded retries.

One thread owns the queue and the pool: it hands a freed worker its next job
the moment a result arrives. Everything that waits for a disk (publishing and
the journal writes of starting and finishing jobs) runs in a second thread,
fed in order through one queue and working in batches, so that workers never
wait for an fsync. Intake hands the dispatcher claimed jobs with
:meth:`Dispatcher.enqueue` (thread-safe); listeners hear about every finished
job and can never break it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from hotfolder import claimed
from hotfolder.claimed import Resettling
from hotfolder.config import DaemonSettings, FolderSettings
from hotfolder.errors import Aborted, NotRegularFile, WorkerCrashed
from hotfolder.executors import Executor
from hotfolder.jobqueue import FairQueue
from hotfolder.jobspec import job_spec
from hotfolder.journal import JobRecord, Journal
from hotfolder.models import ErrorInfo, JobOutcome, JobSpec, JobState, JobStatus
from hotfolder.publish import Publication, Publisher

log = logging.getLogger("hotfolder.dispatch")

#: Seconds between attempts to publish a result whose target could not be written.
PUBLISH_RETRY_SECONDS = 2.0


class Listener(Protocol):
    """Hears about jobs; a failing listener is logged and ignored.

    Listeners may also define ``job_queued(record)`` (the job joined the queue)
    and ``job_retried(record, code)`` (a transient error; it queues again).
    """

    def job_started(self, record: JobRecord) -> None:
        """A worker took the job."""

    def job_finished(self, record: JobRecord, status: JobStatus) -> None:
        """The job reached a final state and its files are published."""


class Dispatcher:
    """Feeds the worker pool fairly and publishes what comes back."""

    def __init__(
        self,
        settings: DaemonSettings,
        folders: Mapping[str, FolderSettings],
        journal: Journal,
        publisher: Publisher,
        pool: Executor,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.folders = dict(folders)
        self.journal = journal
        self.publisher = publisher
        self.pool = pool
        self.queue = FairQueue()
        #: Jobs whose input changed after the claim, until it settles again.
        self.resettling = Resettling(lambda: self.folders, clock)
        self.listeners: list[Listener] = []
        self._clock = clock
        self._inbox: list[JobRecord] = []
        self._cancels: list[tuple[str, str, Future[bool]]] = []
        self._records: dict[str, JobRecord] = {}
        #: Finished jobs whose files could not be placed yet (out/ unwritable, disk
        #: full), with what publishing them needs (None once the plan is journaled).
        self._unpublished: dict[str, tuple[JobRecord, Publication | None]] = {}
        self._next_publish_try = 0.0
        #: Work for the publishing thread, in order: journal changes of started and
        #: retried jobs (job id, columns) and finished jobs to publish; None stops it.
        self._outbox: queue.SimpleQueue[_Change | Publication | None] = queue.SimpleQueue()
        #: Jobs handed to the publishing thread and not yet published.
        self._publishing: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self.finished_count = 0
        #: Called when queue room frees up, so intake can claim waiting files.
        self.on_room: Callable[[], None] = lambda: None
        pool.on_attempt = self._attempt_again

    # --- thread-safe entry points ------------------------------------------------------

    def enqueue(self, record: JobRecord) -> None:
        """Accept a claimed job (from the intake thread or recovery)."""
        with self._lock:
            self._inbox.append(record)
        self.pool.wake()

    def room(self, folder: str) -> int:
        """How many more jobs of ``folder`` the queue takes before intake should wait."""
        with self._lock:
            waiting = sum(1 for record in self._inbox if record.folder == folder)
        return max(0, self._limit() - waiting - self.queue.size(folder))

    def _limit(self) -> int:
        return self.settings.queue_per_folder or max(4, 2 * self.pool.size)

    def cancel(self, job_id: str, reason: str) -> Future[bool]:
        """Abort a queued or running job; the future says whether it was found."""
        answer: Future[bool] = Future()
        with self._lock:
            self._cancels.append((job_id, reason, answer))
        self.pool.wake()
        return answer

    def stop(self) -> None:
        """Ask the loop to stop taking new jobs; :meth:`run` then drains and returns."""
        self._stopping.set()
        self.pool.wake()

    def holds(self, job_id: str) -> bool:
        """True while the job is queued, running or waiting to be published here."""
        with self._lock:
            if any(record.job_id == job_id for record in self._inbox):
                return True
            if job_id in self._unpublished or job_id in self._publishing:
                return True
        return job_id in self._records

    def park_unpublished(self, record: JobRecord) -> None:
        """A job in phase ``publishing`` that recovery could not place: try it again later."""
        with self._lock:
            self._unpublished[record.job_id] = (record, None)

    def unpublished(self) -> int:
        """How many finished jobs wait for their folder to become writable."""
        with self._lock:
            return len(self._unpublished)

    def figures(self) -> dict[str, tuple[int, int]]:
        """(queued, running) jobs per folder right now, for metrics and STATUS."""
        with self._lock:
            inbox = [record.folder for record in self._inbox]
        records = list(self._records.values())
        result: dict[str, tuple[int, int]] = {}
        for name in self.folders:
            running = sum(1 for r in records if r.folder == name and r.phase == "running")
            queued = self.queue.size(name) + inbox.count(name)
            result[name] = (queued, running)
        return result

    def backlog(self) -> int:
        """Jobs claimed but not yet running."""
        with self._lock:
            return len(self._inbox) + self.queue.size()

    # --- the loop --------------------------------------------------------------------

    def run(self) -> None:
        """Dispatch until :meth:`stop`, then drain running jobs."""
        publishing = threading.Thread(
            target=self._publish_loop, name="hotfolder-publish", daemon=True
        )
        publishing.start()
        try:
            self._run()
        finally:
            self._outbox.put(None)
            publishing.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._take_inbox()
            self._take_cancels()
            self._retry_publishing()
            self._requeue_settled()
            self._dispatch()
            # Inputs settling again are polled: their writer may be anywhere.
            wait = 0.25 if len(self.resettling) else 1.0
            due = self.queue.next_due()
            if due is not None:
                wait = max(0.0, min(wait, due - self._clock()))
            results = self.pool.poll(wait)
            # Before the results: a job's last progress must not land after its "done".
            self._record_progress()
            if results:
                # Hand freed workers their next job first: everything else can wait
                # a moment, a worker should not.
                self._dispatch()
            self._handle_all(results)
        self._handle_all(self.pool.stop(self.settings.drain_timeout))
        self._leave_interrupted()

    def _leave_interrupted(self) -> None:
        # Jobs still running when drain_timeout passed were stopped. The journal
        # keeps them as they were (`hotfolder status` shows "interrupted" while no
        # daemon runs) and recovery runs them at the next start; the log says so.
        running = [record for record in self._records.values() if record.phase == "running"]
        if not running:
            return
        log.warning(
            "drain_timeout (%g s) passed with %d job(s) still running: %s; they were "
            "stopped and run again at the next start",
            self.settings.drain_timeout,
            len(running),
            ", ".join(f"{record.job_id} ({record.input_name!r})" for record in running),
        )
        for record in running:
            log.info(
                "stopped by the shutdown; runs again at the next start",
                extra={"job_id": record.job_id},
            )

    def _record_progress(self) -> None:
        for job_id, (done, total) in self.pool.progress().items():
            if job_id in self._records:
                self._outbox.put(_Change(job_id, {"progress": json.dumps([done, total])}))

    def _handle_all(self, results: list[tuple[JobSpec, JobOutcome]]) -> None:
        for spec, outcome in results:
            item = self._handle(spec, outcome)
            if item is not None:
                self._hand_over(item)

    def _hand_over(self, item: Publication) -> None:
        # Every journal write of a job goes through the one queue, in order: a job's
        # "running" must never land after its "done".
        self._records.pop(item.record.job_id, None)
        self.resettling.drop(item.record.job_id)
        with self._lock:
            self._publishing.add(item.record.job_id)
        self._outbox.put(item)

    def _publish_loop(self) -> None:
        # The publishing thread. It takes everything queued at once: jobs finished
        # meanwhile are published in one batch, with one journal fsync and one fsync
        # per folder for all of them (see Publisher.publish).
        while True:
            batch = [self._outbox.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 256:
                    batch.append(self._outbox.get_nowait())
            changes = [entry for entry in batch if isinstance(entry, _Change)]
            finished = [entry for entry in batch if isinstance(entry, Publication)]
            try:
                if changes:
                    # "running" and "queued again" are not fsynced on their own (the
                    # next durable commit carries them): a restart queues "running"
                    # jobs exactly like "queued" ones.
                    self.journal.update_many(
                        [(change.job_id, change.columns) for change in changes], durable=False
                    )
                    for change in changes:
                        if change.started is not None:
                            _log_started(change.started, change.columns["attempts"])
                if finished:
                    self._publish(finished)
            except Exception:
                log.exception("publishing failed; trying again every %g s", PUBLISH_RETRY_SECONDS)
                with self._lock:
                    for item in finished:
                        if item.record.job_id in self._publishing:
                            self._unpublished[item.record.job_id] = (item.record, item)
                            self._publishing.discard(item.record.job_id)
            if None in batch:
                return

    def _take_inbox(self) -> None:
        with self._lock:
            inbox, self._inbox = self._inbox, []
        now = self._clock()
        for record in inbox:
            if record.job_id in self._records:
                continue  # already here (a stuck-job requeue racing the normal path)
            self._records[record.job_id] = record
            if record.claimed is None:
                claimed.stamp(record)  # recovered after a restart: stamped as found
            self._notify("job_queued", record)
            delay = max(0.0, record.not_before - time.time())
            self.queue.put(record.folder, record.job_id, now + delay, now)

    def _requeue_settled(self) -> None:
        if not len(self.resettling):
            return
        now = self._clock()
        for record, failure in self.resettling.settled():
            if failure is None:
                log.info("input settled again; queued", extra={"job_id": record.job_id})
                self.queue.put(record.folder, record.job_id, now, now)
            elif claimed.changed(record):
                self._resettle(record)  # the writer came back: it was not done
            else:
                item = self._conclude(record, failure, confirmed=True)
                if item is not None:
                    self._hand_over(item)

    def _take_cancels(self) -> None:
        with self._lock:
            cancels, self._cancels = self._cancels, []
        for job_id, reason, answer in cancels:
            record = self._records.get(job_id)
            if record is None:
                answer.set_result(False)
                continue
            # A job settling again is neither queued nor running; _hand_over drops it.
            if job_id not in self.resettling and not self.queue.remove(job_id):
                # Not queued, so running: stop its worker; the result is dropped.
                self.pool.kill_job(job_id)
            error = Aborted(reason)
            info = ErrorInfo(code=error.code, message=error.message)
            self._hand_over(self._publication(record, error=info))
            answer.set_result(True)

    def _dispatch(self) -> None:
        while self.pool.free_slots() and not self._stopping.is_set():
            item = self.queue.pop(self._clock())
            if item is None:
                return
            # Intake claims in batches: woken once half a folder's room is free, not
            # for every job taken (each wake-up is a thread switch and a journal fsync).
            if self.room(item[0]) * 2 >= self._limit():
                self.on_room()
            record = self._records.get(item[1])
            if record is None:
                continue  # cancelled while queued
            if record.kind == "rejected":
                self._reject(record)
                continue
            self._start(record)

    def _start(self, record: JobRecord) -> None:
        folder = self.folders[record.folder]
        record.attempts += 1
        record.started_at = time.time()
        record.state = JobState.PROCESSING.value
        record.phase = "running"
        # Journaled by the publishing thread: the worker should not wait for it.
        change = {
            "phase": "running",
            "state": record.state,
            "started_at": record.started_at,
            "attempts": record.attempts,
            "progress": None,  # a retry starts counting pages again
        }
        self._outbox.put(_Change(record.job_id, change, started=record))
        spec = job_spec(record, folder)
        self.pool.submit(spec, folder.timeout)
        self._notify("job_started", record)

    def _attempt_again(self, job_id: str) -> None:
        # Called by the executor from poll(): it sent a running job again (its
        # worker was lost). That is a new attempt, journaled and logged as one.
        record = self._records.get(job_id)
        if record is None:
            return
        record.attempts += 1
        self._outbox.put(_Change(record.job_id, {"attempts": record.attempts}, started=record))
        self._notify("job_retried", record, WorkerCrashed.code)

    def _reject(self, record: JobRecord) -> None:
        error = NotRegularFile(
            f"{record.input_name!r} is a symbolic link or special file (not a regular file). "
            "hotfolder never follows links or reads special files; drop the file itself."
        )
        info = ErrorInfo(code=error.code, message=error.message)
        self._hand_over(self._publication(record, error=info))

    def _handle(self, spec: JobSpec, outcome: JobOutcome) -> Publication | None:
        # What to publish for this result, or None (cancelled meanwhile, or retried).
        record = self._records.get(spec.job_id)
        if record is None:
            return None  # cancelled while running
        moved = claimed.change(record)
        if moved == claimed.CONTENT or (
            moved == claimed.CTIME_ONLY and not self.resettling.times(record.job_id)
        ):
            # Whatever the outcome, it describes half a file: neither publish nor fail it.
            self._resettle(record)
            return None
        if moved is not None:
            # Only ctime moved, again, while size and mtime stayed: something in the
            # conversion itself (a step that links or chmods its input), not a writer.
            log.warning(
                "the input's ctime changed during the conversion again, its size and mtime "
                "did not: taken as the conversion's own doing",
                extra={"job_id": record.job_id},
            )
        return self._conclude(record, outcome)

    def _conclude(
        self, record: JobRecord, outcome: JobOutcome, *, confirmed: bool = False
    ) -> Publication | None:
        if outcome.ok:
            return self._publication(record, outcome=outcome)
        assert outcome.error is not None
        attempts = record.attempts - self.resettling.times(record.job_id)
        if outcome.retryable and attempts <= self.settings.retries:
            backoff = self.settings.retry_backoff * 2 ** (record.attempts - 1)
            record.not_before = time.time() + backoff
            record.phase, record.state = "queued", JobState.PENDING.value
            log.warning(
                "attempt %d failed (%s); retrying in %.1f s",
                record.attempts,
                outcome.error.code,
                backoff,
                extra={"job_id": record.job_id},
            )
            change = {
                "phase": "queued",
                "state": record.state,
                "not_before": record.not_before,
                "error_code": outcome.error.code,
                "message": outcome.message,
            }
            self._outbox.put(_Change(record.job_id, change))
            now = self._clock()
            self.queue.put(record.folder, record.job_id, now + backoff, now)
            self._notify("job_retried", record, outcome.error.code)
            return None
        if not record.writer_free and not confirmed:
            # Claimed on time alone (a share, or no lease): a paused writer may still
            # come back. A failure waits a moment; a success is not held up.
            self.resettling.confirm(record, outcome)
            return None
        return self._publication(record, outcome=outcome, error=outcome.error)

    def _retry_publishing(self) -> None:
        if not self._unpublished or self._clock() < self._next_publish_try:
            return
        self._next_publish_try = self._clock() + PUBLISH_RETRY_SECONDS
        with self._lock:
            waiting, self._unpublished = self._unpublished, {}
        for record, item in waiting.values():
            if record.status_json is None:
                assert item is not None  # parked before its plan was journaled
                self._publish([item])  # parks it again on failure
                continue
            # The plan is in the journal: carry it out, exactly as recovery does.
            try:
                self.publisher.resume(record)
            except OSError as exc:
                log.debug("still cannot publish: %s", exc, extra={"job_id": record.job_id})
                with self._lock:
                    self._unpublished[record.job_id] = (record, item)
                continue
            self._summarise(record, JobStatus.model_validate_json(record.status_json), late=True)

    def _resettle(self, record: JobRecord) -> None:
        folder = self.folders.get(record.folder)  # None: removed by a reload meanwhile
        record.phase, record.state = "queued", JobState.PENDING.value
        record.message = (
            f"The input {record.input_name!r} changed after it was taken: it was still being "
            "written. It is converted again once it has stayed unchanged for "
            f"{folder.settle if folder else 0:g} s with no writer holding it."
        )
        log.warning(
            "input %r changed after its claim (a writer was still at work); it settles "
            "again and the job runs again",
            record.input_name,
            extra={"job_id": record.job_id},
        )
        change: dict[str, object] = {
            "phase": "queued",
            "state": record.state,
            "message": record.message,
        }
        self._outbox.put(_Change(record.job_id, change))
        self.resettling.hold(record)
        self._notify("job_input_changed", record)

    def _publication(
        self,
        record: JobRecord,
        *,
        outcome: JobOutcome | None = None,
        error: ErrorInfo | None = None,
    ) -> Publication:
        if error is None and outcome is not None:
            return self.publisher.succeeded(record, outcome)
        assert error is not None
        return self.publisher.failed(
            record,
            error,
            inputs=list(outcome.inputs) if outcome else None,
            warnings=list(outcome.warnings) if outcome else None,
            state=JobState.ABORTED if error.code == Aborted.code else JobState.FAILED,
        )

    def _publish(self, items: list[Publication]) -> None:
        # Runs in the publishing thread, and in the dispatcher's for jobs parked
        # before their plan was journaled; the Publisher's lock keeps the two apart.
        for item, result in zip(items, self.publisher.publish(items), strict=True):
            record = item.record
            if isinstance(result, OSError):
                # Publishing itself failed (out/ or error/ not writable, disk full).
                # The result is kept (in the journal too, once the plan was committed)
                # and placing it is tried again every PUBLISH_RETRY_SECONDS, so the job
                # ends as soon as the folder can be written, without a restart.
                log.error(
                    "could not be published (%s); trying again every %g s",
                    result,
                    PUBLISH_RETRY_SECONDS,
                    extra={"job_id": record.job_id},
                )
                with self._lock:
                    self._unpublished[record.job_id] = (record, item)
                    self._publishing.discard(record.job_id)
                continue
            with self._lock:
                self._publishing.discard(record.job_id)
            self._summarise(record, result)

    def _summarise(self, record: JobRecord, status: JobStatus, *, late: bool = False) -> None:
        # The one summary line per job, then the listeners.
        log.info(
            "%s folder=%s input=%r %s%s",
            status.status.value,
            record.folder,
            record.input_name,
            "published late: " if late else "",
            status.message,
            extra={"job_id": record.job_id},
        )
        self.announce_finished(record, status)

    def announce_finished(self, record: JobRecord, status: JobStatus) -> None:
        """Tell listeners a job ended (also for jobs that ended before reaching the queue)."""
        self._notify("job_finished", record, status)
        with self._idle:
            self.finished_count += 1
            self._idle.notify_all()

    def _notify(self, event: str, *args: object) -> None:
        for listener in self.listeners:
            hook = getattr(listener, event, None)
            if hook is None:
                continue
            try:
                hook(*args)
            except Exception:
                log.exception("listener %r failed on %s", listener, event)

    def wait_finished(self, count: int, timeout: float) -> bool:
        """Block until ``count`` jobs finished (for one-shot conversions)."""
        end = time.monotonic() + timeout
        with self._idle:
            while self.finished_count < count:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True


@dataclass
class _Change:
    """Journal columns of one job, for the publishing thread to commit in order."""

    job_id: str
    columns: dict[str, object]
    #: Set for a job handed to a worker: its "processing" line is logged once the
    #: journal says so (log and journal never disagree about an attempt).
    started: JobRecord | None = None


def _log_started(record: JobRecord, attempt: object) -> None:
    log.info(
        "processing folder=%s input=%r attempt=%s",
        record.folder,
        record.input_name,
        attempt,
        extra={"job_id": record.job_id},
    )
