"""Start-up recovery: finish what the journal says was under way when we stopped.

Each unfinished phase has one safe, repeatable action (docs/crash-safety.md):
``publishing`` is carried out, ``waiting`` manifest jobs watch their files again,
``retrying`` moves the originals back, ``claiming`` finishes the renames, and
everything else is queued again.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping

from hotfolder.claim import recover_claim
from hotfolder.config import FolderSettings
from hotfolder.control import Control
from hotfolder.dispatch import Dispatcher
from hotfolder.journal import Journal
from hotfolder.models import ErrorInfo, JobState
from hotfolder.pending import PendingJobs
from hotfolder.publish import Publisher
from hotfolder.workdirs import is_internal, remove

log = logging.getLogger("hotfolder.recovery")


def recover(
    journal: Journal,
    folders: Mapping[str, FolderSettings],
    publisher: Publisher,
    pending: PendingJobs,
    control: Control,
    dispatcher: Dispatcher,
) -> int:
    """Resume every unfinished job; return how many were queued again."""
    resumed = 0
    for record in journal.unfinished():
        if record.folder not in folders:
            log.warning(
                "belongs to folder %r, which is no longer configured; it stays in the journal",
                record.folder,
                extra={"job_id": record.job_id},
            )
            continue
        if record.phase == "publishing":
            try:
                publisher.resume(record)
            except OSError as exc:
                # Its folder still cannot be written: start anyway (one job must not
                # keep every folder down); the dispatcher tries again.
                log.error(
                    "could not be published (%s); trying again while running",
                    exc,
                    extra={"job_id": record.job_id},
                )
                dispatcher.park_unpublished(record)
            continue
        if record.phase == "waiting":
            pending.restore(record)
            continue
        if record.phase == "retrying":
            control.resume_retry(record)
            continue
        if record.phase == "claiming" and not recover_claim(record):
            journal.delete(record.job_id)
            continue
        if record.kind == "manifest" and record.phase == "claiming" and record.error_code:
            # A pending manifest job was being failed or aborted when we stopped.
            error = ErrorInfo(code=record.error_code, message=record.message or "")
            state = JobState.ABORTED if error.code == "aborted" else JobState.FAILED
            publisher.failure(record, error, state=state)
            continue
        record.phase = "queued"
        journal.update(record.job_id, phase="queued", state="pending")
        dispatcher.enqueue(record)
        resumed += 1
    if resumed:
        log.info("resumed %d unfinished job(s) from the journal", resumed)
    remove_finished_work_dirs(journal, folders)
    return resumed


def remove_finished_work_dirs(journal: Journal, folders: Mapping[str, FolderSettings]) -> None:
    """Remove work dirs of finished jobs (a crash after the final commit leaves them)."""
    for folder in folders.values():
        jobs = folder.work_dir / "jobs"
        if not jobs.is_dir():
            continue
        for entry in jobs.iterdir():
            if is_internal(entry.name):
                remove(entry)  # a stop before the reaper got to it, or a spare
                continue
            record = journal.get(entry.name)
            if record is not None and record.phase == "done":
                shutil.rmtree(entry, ignore_errors=True)
            elif record is None:
                log.warning("work dir %s has no journal record; left in place", entry)
