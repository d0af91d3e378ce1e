"""What a Celery task's final state means for a job: its :class:`JobOutcome`.

Workers store a JobOutcome as the task's result; Celery itself stores the
other endings (a time limit, a lost pool process, a revocation, an exception
outside the job). Each becomes the outcome the embedded pool would report.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from hotfolder.errors import Aborted, HotfolderError, InternalError, JobTimeout, WorkerCrashed
from hotfolder.models import ErrorInfo, JobOutcome, JobSpec

log = logging.getLogger("hotfolder.celery")


def outcome_of(spec: JobSpec, timeout: float, status: str, result: Any) -> JobOutcome:
    """The outcome of a task of ``spec`` that ended in ``status`` with ``result``."""
    if status == "SUCCESS":
        try:
            outcome = JobOutcome.model_validate(result)
        except ValidationError as exc:
            return error_outcome(
                spec, InternalError(f"A worker returned a malformed result: {exc}")
            )
        if outcome.job_id != spec.job_id:
            return error_outcome(spec, InternalError("A worker returned another job's result."))
        return outcome
    if status == "REVOKED":
        return error_outcome(
            spec,
            Aborted("The job was revoked on the Celery side (not by hotfolder)."),
        )
    failure = result if isinstance(result, dict) else {}
    kind = str(failure.get("exc_type", "unknown error"))
    if kind == "TimeLimitExceeded":
        log.warning(
            "exceeded its %.0f s timeout; its worker stopped it",
            timeout,
            extra={"job_id": spec.job_id},
        )
        return error_outcome(
            spec,
            JobTimeout(
                f"The conversion took longer than the folder's timeout of {timeout:g} "
                "s and was stopped. Raise the folder's timeout for large files, or split "
                "the file."
            ),
        )
    if kind == "WorkerLostError":
        return error_outcome(
            spec,
            WorkerCrashed(
                "The worker process converting this file died. Other jobs were not "
                "affected. The file probably triggers a bug or a resource limit in the "
                "engine; check it, then drop it again or report it."
            ),
        )
    detail = failure.get("exc_message", "")
    return error_outcome(
        spec,
        InternalError(
            f"The Celery worker could not run the job ({kind}: {detail}). Check that the "
            "worker runs the same hotfolder version as the daemon, then retry the job."
        ),
    )


def lost_too_often(spec: JobSpec, losses: int) -> JobOutcome:
    """The job's worker was lost ``losses`` times (``max_deliveries``): give up."""
    return error_outcome(
        spec,
        WorkerCrashed(
            f"The worker converting this file was lost {losses} times (it stopped "
            "answering: its machine went down, dropped off the network or was killed). "
            "Other jobs were not affected. If it happens only with this file, the file "
            "probably brings the engine or the machine down; check it, then drop it again."
        ),
    )


def error_outcome(spec: JobSpec, error: HotfolderError) -> JobOutcome:
    """A failed outcome of ``spec`` carrying ``error``."""
    return JobOutcome(
        job_id=spec.job_id,
        ok=False,
        message=error.message,
        error=ErrorInfo(code=error.code, message=error.message),
        retryable=error.retryable,
    )
