"""Claimed inputs that a writer was still changing: found after the conversion, settled again.

A claim moves a file by renaming it, and a writer that still holds it open
goes on writing into the moved file. On network shares intake has only the
clock to go by, and even on local folders a writer without a lease check (no
``CAP_LEASE``) can pause longer than ``settle``. So every input is stamped
(size, mtime, ctime) right after its claim, and compared again once the
conversion is over, whatever its outcome: a changed input means the result
describes half a file. The job is then neither published nor failed; it waits
here until the input has stayed unchanged for the folder's ``settle`` seconds
with no writer holding it, and runs again under the same job id.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hotfolder.config import FolderSettings
from hotfolder.journal import JobRecord, Stamp
from hotfolder.models import JobOutcome
from hotfolder.writers import open_for_writing


def stamps(record: JobRecord) -> tuple[Stamp, ...]:
    """Size, mtime and ctime of each of the job's claimed inputs (-1s for a missing one)."""
    result = []
    for path in record.work_inputs:
        try:
            info = path.lstat()
        except OSError:
            result.append((-1, -1, -1))
            continue
        result.append((info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return tuple(result)


def stamp(record: JobRecord) -> None:
    """Record the inputs as claimed (right after the renames, which change ctime)."""
    record.claimed = stamps(record)


def changed(record: JobRecord) -> bool:
    """True when an input differs from its stamp: a writer was still at work."""
    return change(record) is not None


#: What :func:`change` says when only an input's ctime moved.
CTIME_ONLY = "ctime"
#: What :func:`change` says when an input's size or mtime moved.
CONTENT = "content"


def change(record: JobRecord) -> str | None:
    """How the inputs differ from their stamps: None, :data:`CONTENT` or :data:`CTIME_ONLY`.

    A writer moves size or mtime (or, writing the same bytes and restoring mtime,
    ctime alone); so do a chmod or a hard link, which is why a ctime-only change
    is told apart.
    """
    if record.claimed is None:
        return None
    now = stamps(record)
    if now == record.claimed:
        return None
    moved = any(a[:2] != b[:2] for a, b in zip(now, record.claimed, strict=True))
    return CONTENT if moved else CTIME_ONLY


#: Seconds a failure waits, at least, before it is published when no kernel said
#: the input was closed at its claim: a writer that paused longer than ``settle``
#: (it lost its file to the claim) and writes on within this time sends the job
#: back to settling instead of leaving a complete file behind a "damaged" status.
CONFIRM_SECONDS = 5.0


@dataclass
class _Held:
    record: JobRecord
    seen: tuple[Stamp, ...]
    since: float
    #: Set while a failure waits to be confirmed (see :data:`CONFIRM_SECONDS`).
    outcome: JobOutcome | None = None


class Resettling:
    """Jobs whose input changed after the claim, until it has settled again."""

    def __init__(
        self, folders: Callable[[], Mapping[str, FolderSettings]], clock: Callable[[], float]
    ) -> None:
        self._folders = folders
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._times: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._held

    def hold(self, record: JobRecord) -> None:
        """Keep the job until its inputs settle again."""
        self._times[record.job_id] = self._times.get(record.job_id, 0) + 1
        self._held[record.job_id] = _Held(record, stamps(record), self._clock())

    def confirm(self, record: JobRecord, outcome: JobOutcome) -> None:
        """Hold a failure until its input has shown no writer for a while."""
        self._held[record.job_id] = _Held(record, stamps(record), self._clock(), outcome)

    def times(self, job_id: str) -> int:
        """How often the job went back to settling."""
        return self._times.get(job_id, 0)

    def drop(self, job_id: str) -> None:
        """The job ended (cancelled, or finished): forget it."""
        self._held.pop(job_id, None)
        self._times.pop(job_id, None)

    def settled(self) -> list[tuple[JobRecord, JobOutcome | None]]:
        """Jobs whose wait is over, with the failure that waited (None: run them again).

        A job sent back to settling is over once its inputs stayed unchanged for
        ``settle`` with no writer; a failure waiting to be confirmed once that long
        (at least :data:`CONFIRM_SECONDS`) has passed, or at once when an input changed.
        """
        now = self._clock()
        folders = self._folders()
        ready: list[tuple[JobRecord, JobOutcome | None]] = []
        for job_id, held in list(self._held.items()):
            current = stamps(held.record)
            folder = folders.get(held.record.folder)
            settle = folder.settle if folder is not None else 0.0
            if held.outcome is not None:
                if current == held.seen and now - held.since < max(settle, CONFIRM_SECONDS):
                    continue
            elif current != held.seen:
                held.seen, held.since = current, now
                continue
            elif now - held.since < settle or _written(held.record):
                continue
            else:
                held.record.claimed = current
            del self._held[job_id]
            ready.append((held.record, held.outcome))
        return ready


def _written(record: JobRecord) -> bool:
    # Only a "yes" counts here: where the kernel cannot tell, time alone decides.
    paths = [path for path in record.work_inputs if os.path.lexists(path)]
    return any(open_for_writing(path) is True for path in paths)
