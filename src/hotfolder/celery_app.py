"""The Celery app both sides share, and the one task Celery workers run.

The daemon keeps intake, claim, journal and publishing; a worker only
converts inside the job's work area on the shared filesystem, through the
same :func:`hotfolder.workflows.runner.run_job` the embedded pool runs.

Delivery is *at least once*: with ``acks_late`` a job whose worker dies is
handed to another worker, and a job that outlives the visibility timeout may
run twice. Exactly once in ``out/`` comes from two rules:

* every execution converts into a fresh directory of its own,
  ``<work_dir>/<task id>.<n>``, made with an exclusive ``mkdir`` (atomic on
  NFS too), so a duplicate never writes into files another execution is
  producing or the daemon is publishing;
* the daemon accepts one result per task id, the first, and its journal
  decides what is published; later results are dropped.

``n`` also counts deliveries: a file that kills its worker every time (a
segfault in an engine) fails with ``worker_crashed`` after
``max_deliveries`` instead of going round forever.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery, Task

from hotfolder.celery_settings import CelerySettings
from hotfolder.errors import HotfolderError, IOFailure, TooLarge, WorkerCrashed
from hotfolder.memory import current_limit_mb, needed_more_message
from hotfolder.models import ErrorInfo, JobOutcome, JobSpec

log = logging.getLogger("hotfolder.celery")

#: The name workers and daemons agree on; the task takes one JobSpec as a JSON dict.
TASK_NAME = "hotfolder.convert"
#: Exit status of a worker process that ran out of memory (as in the embedded pool).
_OOM_EXIT = 70


def make_app(settings: CelerySettings, *, max_jobs_per_worker: int = 0) -> Celery:
    """A Celery app for ``settings`` with the conversion task registered.

    Not set as Celery's current app: a daemon, a worker and a test may each
    build their own in one process.
    """
    app = Celery(
        "hotfolder",
        broker=settings.broker,
        backend=settings.backend_url,
        set_as_current=False,
    )
    app.conf.update(
        # JSON only: a pickle from whoever can write to the broker would run code.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # Acknowledge after the job, and give it back when the worker dies, so
        # that a lost worker's job runs elsewhere instead of vanishing.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A job over its time limit failed for good; it must not be redelivered.
        task_acks_on_failure=True,
        task_acks_on_timeout=True,
        # STARTED tells the daemon which worker runs a job (and when it moved).
        task_track_started=True,
        task_default_queue=settings.queue,
        # One job per worker process at a time: long conversions must not wait
        # behind a process that is busy while another worker idles.
        worker_prefetch_multiplier=1,
        # Results go to the backend from the worker process itself, so a dead
        # process has nothing left to send: report it lost without Celery's 10 s wait.
        worker_lost_wait=2.0,
        worker_max_tasks_per_child=max_jobs_per_worker or None,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": settings.restore_interval,
            # Scan on every sweep: restore_interval alone says how quickly.
            "unacked_restore_throttle": 1,
            # A worker killed while it holds the sweep's lock blocks every other
            # worker's sweep until the lock expires (kombu's default: 5 minutes).
            "unacked_mutex_expire": max(10, math.ceil(settings.restore_interval * 10)),
        },
        broker_connection_retry_on_startup=True,
        # A result must survive a short backend outage, or the job runs again.
        result_backend_always_retry=True,
        result_backend_max_retries=20,
        result_expires=settings.result_expires,
        # hotfolder's own log format (job ids, JSON) stays in charge.
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # task-received and task-started name the worker that holds a job: the
        # daemon declares a silent worker lost and knows which jobs to send again.
        worker_send_task_events=True,
        task_send_sent_event=False,
    )
    app.task(name=TASK_NAME, bind=True)(_task_body(settings.max_deliveries))
    return app


def _task_body(max_deliveries: int) -> Callable[[Task, dict[str, Any]], dict[str, Any]]:
    def convert(task: Task, spec: dict[str, Any]) -> dict[str, Any]:
        task_id = str(task.request.id)

        def already_done() -> bool:
            return bool(task.AsyncResult(task_id).state == "SUCCESS")

        def record_crash(outcome: dict[str, Any]) -> None:
            task.backend.mark_as_done(task_id, outcome, request=task.request)

        return execute(spec, task_id, max_deliveries, already_done, record_crash)

    convert.__doc__ = "Convert one job (a JobSpec as a dict) in a fresh directory of its own."
    return convert


def execute(
    data: dict[str, Any],
    task_id: str,
    max_deliveries: int,
    already_done: Callable[[], bool],
    record_crash: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Run one delivery of a task: the JobSpec in ``data`` in its own execution dir.

    Returns the JobOutcome as a JSON-ready dict. ``already_done`` says whether
    another delivery already stored a result (then this one does nothing);
    ``record_crash`` stores a result before a worker that ran out of memory exits.
    """
    from hotfolder.workflows.runner import run_job

    spec = JobSpec.model_validate(data)
    host = socket.gethostname()
    if already_done():
        log.info("already converted by another delivery; skipped", extra={"job_id": spec.job_id})
        return _failed(spec, IOFailure("A duplicate delivery of a finished job; ignored."))
    try:
        execution, delivery = _claim_execution_dir(Path(spec.work_dir), task_id, host)
    except _Stale as exc:
        log.info("already finished; skipped", extra={"job_id": spec.job_id})
        return _failed(spec, exc)
    except HotfolderError as exc:
        log.error("%s", exc.message, extra={"job_id": spec.job_id})
        return _failed(spec, exc)
    if delivery > max_deliveries:
        lost = delivery - 1
        log.error("lost its worker %d times; giving up", lost, extra={"job_id": spec.job_id})
        return _failed(
            spec,
            WorkerCrashed(
                f"The worker converting this file was lost {lost} times (its process "
                "crashed or was killed, or its machine went down). Other jobs were not "
                "affected. If the workers' logs show a crash, the file probably triggers "
                "a bug or a resource limit in the engine; check it, then drop it again."
            ),
        )
    log.info(
        "converting on %s (delivery %d) in %s",
        host,
        delivery,
        execution.name,
        extra={"job_id": spec.job_id},
    )
    try:
        outcome = run_job(spec.model_copy(update={"work_dir": str(execution)}))
    except MemoryError:
        # The heap may be corrupt: store the verdict, then leave, as the pool does.
        crash = TooLarge(needed_more_message(current_limit_mb()))
        try:
            record_crash(_failed(spec, crash))
        finally:
            os._exit(_OOM_EXIT)
    if not (execution.parents[1] / "input").is_dir():
        # Another delivery's result was published meanwhile (the inputs went to
        # archive/ or error/ and the job's directory was removed): this result will
        # never be read, and what this run wrote must not linger in the work area.
        log.info("finished after the job was published; discarded", extra={"job_id": spec.job_id})
        _discard(execution)
    return outcome.model_dump(mode="json")


def _discard(execution: Path) -> None:
    shutil.rmtree(execution, ignore_errors=True)
    # The work dir and the job's dir exist again only if this run re-created them.
    for directory in execution.parents[:2]:
        with contextlib.suppress(OSError):
            directory.rmdir()


class _Stale(IOFailure):
    """A delivery of a job that is already over: its inputs are gone from the work area."""


def _claim_execution_dir(work_dir: Path, task_id: str, host: str) -> tuple[Path, int]:
    """Make ``<work_dir>/<task id>.<n>`` for the first free ``n``; return it and ``n``.

    The job's ``input`` directory (next to ``work_dir``) holds the claimed
    inputs until the job is published. Without it nothing is created, so that a
    stray delivery never resurrects a finished job's directory: the job is over
    when the folder's ``.hotfolder/jobs`` is visible, else this worker does not
    see the shared folders at all.
    """
    job_dir = work_dir.parent
    if not (job_dir / "input").is_dir():
        if job_dir.parent.is_dir():
            raise _Stale("The job was finished by another delivery; nothing to do.")
        raise IOFailure(
            f"The worker on {host} cannot see the work area {job_dir.parent}. The folders "
            "must be on storage every worker mounts at the same path as the daemon."
        )
    try:
        work_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise IOFailure(
            f"The worker on {host} cannot write to {work_dir}: {exc.strerror}."
        ) from None
    delivery = 1
    while True:
        candidate = work_dir / f"{task_id}.{delivery}"
        try:
            candidate.mkdir()
        except FileExistsError:
            delivery += 1
            continue
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise IOFailure(f"The job's work area {work_dir} vanished.") from None
            raise IOFailure(
                f"The worker on {host} cannot write to {work_dir}: {exc.strerror}."
            ) from None
        return candidate, delivery


def _failed(spec: JobSpec, error: HotfolderError) -> dict[str, Any]:
    outcome = JobOutcome(
        job_id=spec.job_id,
        ok=False,
        message=error.message,
        error=ErrorInfo(code=error.code, message=error.message),
        retryable=error.retryable,
    )
    return outcome.model_dump(mode="json")
