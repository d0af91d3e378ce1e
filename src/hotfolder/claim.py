"""Claim: a settled file becomes a job by one atomic rename into the work area.

Order of steps (see docs/crash-safety.md for the argument):

1. insert the journal row in phase ``claiming`` (committed, fsynced);
2. rename ``in/<name>`` to ``.hotfolder/jobs/<jobId>/input/<name>``;
3. nothing else: a ``claiming`` row whose input is in the work area *is* queued.

A crash between 1 and 2 leaves a row whose input is still in in/ (the claim is
redone) or gone (the row is dropped: the user took the file away). The rename
is the lock: of two daemons or two threads only one can move the file.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Sequence
from pathlib import Path

from ulid import ULID

from hotfolder.claimed import stamp
from hotfolder.config import FolderSettings
from hotfolder.intake import Candidate
from hotfolder.journal import JobRecord, Journal
from hotfolder.models import JobState
from hotfolder.publish import job_name_for
from hotfolder.workdirs import WorkDirs

log = logging.getLogger("hotfolder.claim")


def new_job_id() -> str:
    """A unique id that sorts by creation time (a ULID)."""
    return str(ULID())


class ClaimFailed(Exception):
    """The file could not be moved (permissions, a vanished file); it stays where it is."""


class ClaimLost(ClaimFailed):
    """The file was gone before the rename: another daemon on the same folder took it."""


def claim_many(
    folder: FolderSettings,
    candidates: Sequence[Candidate],
    journal: Journal,
    workdirs: WorkDirs,
) -> list[JobRecord | ClaimFailed]:
    """Move ``candidates`` into the work area and record them, with one journal commit.

    One result per candidate, in order: the job, or the ClaimFailed that says why
    the file stays where it is. A backlog is claimed a few files at a time, and one
    fsync for all their rows instead of one each is most of what a claim costs.
    ``workdirs`` makes each job's directory (recycling those of finished jobs).
    """
    records = [_record_for(folder, candidate) for candidate in candidates]
    if not records:
        return []
    journal.insert_many(records)
    results: list[JobRecord | ClaimFailed] = []
    for candidate, record in zip(candidates, records, strict=True):
        work = Path(record.work_dir)
        try:
            workdirs.create(work)
            candidate.path.rename(record.work_input)
            stamp(record)
        except OSError as exc:
            journal.delete(record.job_id)
            workdirs.discard(work)  # holds nothing of the user's: the rename failed
            if exc.errno == errno.ENOENT and not os.path.lexists(candidate.path):
                # Several daemons may watch one shared folder: losing the race is normal.
                results.append(ClaimLost(f"{candidate.path} was taken by another daemon"))
            else:
                results.append(ClaimFailed(f"cannot claim {candidate.path}: {exc.strerror}"))
            continue
        results.append(record)
    return results


def _record_for(folder: FolderSettings, candidate: Candidate) -> JobRecord:
    job_id = new_job_id()
    name = candidate.path.name
    return JobRecord(
        job_id=job_id,
        folder=folder.name,
        state=JobState.PENDING.value,
        phase="claiming",
        name=job_name_for(name),
        rel_dir=candidate.rel_dir,
        input_name=name,
        source=str(candidate.path),
        work_dir=str(folder.work_dir / "jobs" / job_id),
        workflow=folder.workflow,
        profile=folder.profile,
        kind="file" if candidate.signature.regular else "rejected",
        input_size=candidate.signature.size,
        input_mtime=candidate.signature.mtime_ns,
        created_at=time.time(),
        # Nothing to wait for where no one can still be writing: see Dispatcher._conclude.
        writer_free=candidate.writer_free or not candidate.signature.regular,
    )


def recover_claim(record: JobRecord) -> bool:
    """Finish or undo a claim a crash interrupted; return False when the job must be dropped.

    Every input still in the input folder is moved into the work area. A
    single-file job whose file is gone from both places is dropped (the user
    took it away before the claim); a manifest job goes on with what it has.
    """
    first = Path(record.source)
    sources = [first] + [first.parent / name for name in record.input_names[1:]]
    for source, target in zip(sources, record.work_inputs, strict=True):
        if os.path.lexists(target) or not os.path.lexists(source):
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
        except OSError as exc:
            log.warning("could not finish claiming %s: %s", source, exc.strerror)
    return record.kind == "manifest" or os.path.lexists(record.work_input)


def claim_copy(folder: FolderSettings, sources: Sequence[Path], journal: Journal) -> JobRecord:
    """Claim for one-shot conversions: the originals stay, the work area gets copies.

    Several sources make one job with several inputs (a merge), named after the first.
    """
    first = sources[0]
    names = _distinct_names([source.name for source in sources])
    kinds = [stat.S_ISREG(source.lstat().st_mode) for source in sources]
    job_id = new_job_id()
    work = folder.work_dir / "jobs" / job_id
    record = JobRecord(
        job_id=job_id,
        folder=folder.name,
        state=JobState.PENDING.value,
        phase="claiming",
        name=job_name_for(first.name),
        rel_dir="",
        input_name=names[0],
        extra_inputs=json.dumps(names[1:]),
        source=str(first),
        work_dir=str(work),
        workflow=folder.workflow,
        profile=folder.profile,
        kind="file" if all(kinds) else "rejected",
        created_at=time.time(),
        writer_free=True,  # our own copies: nobody else writes them
    )
    (work / "input").mkdir(parents=True)
    if record.kind == "file":
        for source, target in zip(sources, record.work_inputs, strict=True):
            # A copy, not a hard link: the runner refuses inputs with a second name
            # (a hard-linked drop may be a file from outside the folders), and the
            # copy also keeps the user's original out of reach of every engine.
            shutil.copy2(source, target, follow_symlinks=False)
        copied = record.work_input.lstat()
        record.input_size, record.input_mtime = copied.st_size, copied.st_mtime_ns
    journal.insert(record)
    return record


def _distinct_names(names: list[str]) -> list[str]:
    # Inputs from different directories may share a name; the work area needs one each.
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            stem = job_name_for(name)
            candidate = f"{stem}_{n}{name[len(stem) :]}"
        seen.add(candidate)
        result.append(candidate)
    return result
