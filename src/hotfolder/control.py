"""Cancel and retry: requests from the HTTP API and the command line.

Both arrive as :meth:`Control.submit` calls (the HTTP endpoint directly, the
CLI through the journal's ``requests`` table, which works even while the
daemon is down) and are carried out on the intake thread, which owns the
pending manifest jobs. Running and queued jobs are cancelled by the
dispatcher; the answer comes back through a future.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from hotfolder.dispatch import Dispatcher
from hotfolder.journal import JobRecord, Journal
from hotfolder.models import JobState
from hotfolder.pending import PendingJobs
from hotfolder.publish import Publisher

log = logging.getLogger("hotfolder.control")

ACTIONS = ("cancel", "retry")
#: How often the journal's requests table is looked at.
_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Answer:
    """The outcome of a request: ``ok``, ``not_found`` or ``conflict``, and a sentence."""

    result: str
    message: str
    state: str | None = None

    @property
    def ok(self) -> bool:
        """True when the request was carried out."""
        return self.result == "ok"

    def to_text(self) -> str:
        """One line for the journal's requests table."""
        return f"{self.result}|{self.state or ''}|{self.message}"

    @classmethod
    def from_text(cls, text: str) -> Answer:
        """Parse :meth:`to_text`."""
        result, state, message = text.split("|", 2)
        return cls(result, message, state or None)


class Control:
    """Carries out cancel and retry requests on the intake thread."""

    def __init__(
        self,
        journal: Journal,
        pending: PendingJobs,
        dispatcher: Dispatcher,
        publisher: Publisher,
        wake: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self.pending = pending
        self.dispatcher = dispatcher
        self.publisher = publisher
        self._wake = wake
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[str, str, Future[Answer]]] = queue.SimpleQueue()
        self._next_poll = 0.0

    def submit(self, action: str, job_id: str) -> Future[Answer]:
        """Ask for ``action`` on ``job_id`` from any thread."""
        answer: Future[Answer] = Future()
        self._queue.put((action, job_id, answer))
        self._wake()
        return answer

    def process(self) -> None:
        """Carry out what was submitted and what the CLI left in the journal."""
        now = self._clock()
        if now >= self._next_poll:
            self._next_poll = now + _POLL_SECONDS
            for request_id, job_id, action in self.journal.open_requests():
                self.submit(action, job_id).add_done_callback(self._answerer(request_id))
        while True:
            try:
                action, job_id, future = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                self._carry_out(action, job_id, future)
            except Exception as exc:
                log.exception("%s of job %s failed", action, job_id)
                future.set_result(Answer("conflict", f"{action} failed: {exc}"))

    def _answerer(self, request_id: int) -> Callable[[Future[Answer]], None]:
        def answer(future: Future[Answer]) -> None:
            self.journal.answer_request(request_id, future.result().to_text())

        return answer

    def next_poll(self) -> float:
        """When the requests table is looked at next."""
        return self._next_poll

    def _carry_out(self, action: str, job_id: str, future: Future[Answer]) -> None:
        if action == "cancel":
            self._cancel(job_id, future)
        elif action == "retry":
            future.set_result(self._retry(job_id))
        else:
            future.set_result(Answer("conflict", f"unknown action {action!r}"))

    def _cancel(self, job_id: str, future: Future[Answer]) -> None:
        reason = "The job was cancelled on request. Its inputs are here, untouched."
        if self.pending.cancel(job_id, reason):
            future.set_result(Answer("ok", "cancelled while pending", JobState.ABORTED.value))
            return
        record = self.journal.get(job_id)
        if record is None:
            future.set_result(Answer("not_found", f"no job {job_id}"))
            return
        if record.phase == "done":
            future.set_result(Answer("conflict", f"the job already ended: {record.state}"))
            return

        def relay(found: Future[bool]) -> None:
            if found.result():
                future.set_result(Answer("ok", "cancelled", JobState.ABORTED.value))
            else:
                future.set_result(Answer("conflict", "the job is being published; too late"))

        self.dispatcher.cancel(job_id, reason).add_done_callback(relay)

    def _retry(self, job_id: str) -> Answer:
        record = self.journal.get(job_id)
        if record is None:
            return Answer("not_found", f"no job {job_id}")
        if record.phase != "done" or record.state == JobState.SUCCESS.value:
            return Answer(
                "conflict", f"only failed or aborted jobs can be retried ({record.state})"
            )
        # Journal first: a crash while the originals move back resumes the retry.
        self.journal.update(job_id, phase="retrying")
        self.resume_retry(record)
        return Answer("ok", "queued again", JobState.PENDING.value)

    def resume_retry(self, record: JobRecord) -> None:
        """Move the originals back from error/ and queue the job as a new attempt."""
        moved = self.publisher.take_back(record)
        if not moved:
            log.error(
                "its originals are no longer in error/; cannot retry",
                extra={"job_id": record.job_id},
            )
            self.journal.update(record.job_id, phase="done")
            return
        record.phase, record.state = "queued", JobState.PENDING.value
        record.status_json = record.published_name = None
        record.error_code = record.message = None
        record.finished_at = None
        record.not_before = 0.0
        self.journal.update(
            record.job_id,
            phase="queued",
            state=record.state,
            status_json=None,
            published_name=None,
            error_code=None,
            message=None,
            finished_at=None,
            not_before=0.0,
        )
        log.info("queued again (retry)", extra={"job_id": record.job_id})
        self.dispatcher.enqueue(record)
