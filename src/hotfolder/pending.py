"""Manifest jobs that wait: for their inputs, for ``process: true``, or for a deadline.

A settled ``*.job.json`` becomes a ``pending`` job at once (it has a job id
and a journal row in phase ``waiting``), but the manifest and its inputs stay
in the input folder: users may still add inputs, replace the manifest (to flip
``process`` to true) or remove it (which aborts the job). Intake reserves
those paths so that none of them is ever taken as a job of its own.

When every input is present and has settled, and ``process`` is true, the job
is claimed the same way single files are (journal first, then renames into the
work area) and queued. Past ``manifest_timeout`` with inputs still missing, it
fails with ``inputs_missing`` and the inputs that did arrive go to error/ with
the status, as do those of a cancelled or invalid manifest.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hotfolder.claim import new_job_id
from hotfolder.claimed import stamp
from hotfolder.config import FolderSettings
from hotfolder.errors import Aborted, HotfolderError, InputsMissing, JobError, NotRegularFile
from hotfolder.intake import Candidate, FolderIntake, Signature
from hotfolder.journal import JobRecord, Journal
from hotfolder.manifest import MANIFEST_SUFFIX, MAX_MANIFEST_BYTES, Manifest, parse_manifest, plan
from hotfolder.manifest_inputs import InputsSeen
from hotfolder.models import ErrorInfo, JobState, JobStatus
from hotfolder.publish import Publisher

log = logging.getLogger("hotfolder.pending")

Clock = Callable[[], float]


@dataclass
class _Waiting:
    """One pending manifest job and what it has seen of its files."""

    record: JobRecord
    folder: FolderSettings
    manifest_path: Path
    manifest: Manifest
    signature: Signature | None
    #: Where its inputs are and how long each has been unchanged.
    inputs_seen: InputsSeen = field(init=False)
    #: What the job last said it waits for (journaled when it changes).
    told: str = ""

    def __post_init__(self) -> None:
        self.inputs_seen = InputsSeen(self.manifest_path.parent, self.folder.settle)

    @property
    def inputs(self) -> list[Path]:
        return self.inputs_seen.paths(self.manifest.input_names)

    @property
    def owned(self) -> list[Path]:
        return [self.manifest_path, *self.inputs]

    @property
    def deadline(self) -> float:
        return self.record.created_at + self.folder.manifest_timeout


def read_manifest(path: Path) -> tuple[Manifest, Signature]:
    """Read and validate the manifest at ``path`` without following a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(f"The manifest {path.name!r} is not a regular file.")
        data = os.read(fd, MAX_MANIFEST_BYTES + 1)
    finally:
        os.close(fd)
    return parse_manifest(data), Signature.of(info)


def manifest_job_name(manifest: Manifest, path: Path) -> str:
    """The manifest's ``name``, else its file name without ``.job.json``."""
    return manifest.name or path.name[: -len(MANIFEST_SUFFIX)]


class PendingJobs:
    """All waiting manifest jobs of the daemon, checked from the intake thread."""

    def __init__(
        self,
        folders: Mapping[str, FolderSettings],
        intakes: Mapping[str, FolderIntake],
        journal: Journal,
        publisher: Publisher,
        enqueue: Callable[[JobRecord], None],
        on_finished: Callable[[JobRecord, JobStatus], None],
        clock: Clock = time.monotonic,
    ) -> None:
        self.folders = folders
        self.intakes = intakes
        self.journal = journal
        self.publisher = publisher
        self.enqueue = enqueue
        self.on_finished = on_finished
        self._clock = clock
        self._waiting: dict[str, _Waiting] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def count(self, folder: str) -> int:
        """Pending jobs of ``folder`` (read from other threads for metrics)."""
        return sum(1 for w in list(self._waiting.values()) if w.folder.name == folder)

    def job_ids(self) -> list[str]:
        """Ids of the jobs waiting right now."""
        return list(self._waiting)

    # --- arrival and restart ---------------------------------------------------------

    def arrive(self, folder: FolderSettings, candidate: Candidate) -> JobRecord:
        """A settled manifest becomes a pending job (or fails at once if it is invalid)."""
        path = candidate.path
        record = JobRecord(
            job_id=new_job_id(),
            folder=folder.name,
            state=JobState.PENDING.value,
            phase="waiting",
            name=path.name[: -len(MANIFEST_SUFFIX)] or path.name,
            rel_dir=candidate.rel_dir,
            input_name=path.name,
            source=str(path),
            work_dir=str(folder.work_dir / "jobs"),
            workflow=folder.workflow,
            profile=folder.profile,
            kind="manifest",
            created_at=time.time(),
        )
        record.work_dir = str(folder.work_dir / "jobs" / record.job_id)
        try:
            manifest, signature = read_manifest(path)
            record.input_size = signature.size
            planned = plan(manifest, folder)
        except JobError as exc:
            self.journal.insert(record)
            self._end(record, folder, [path], exc)
            return record
        except OSError as exc:
            log.warning("cannot read manifest %s: %s", path, exc.strerror)
            self.intakes[folder.name].block(candidate)
            return record
        self._apply(record, manifest, path, planned.conversions[0].workflow)
        record.profile = planned.conversions[0].profile
        self.journal.insert(record)
        waiting = _Waiting(record, folder, path, manifest, signature)
        self._waiting[record.job_id] = waiting
        self._reserve(waiting)
        log.info(
            "pending folder=%s manifest=%r inputs=%d%s",
            folder.name,
            path.name,
            len(manifest.input_names),
            "" if manifest.process else " (held: process is false)",
            extra={"job_id": record.job_id},
        )
        return record

    def restore(self, record: JobRecord) -> None:
        """Resume waiting for a job found in phase ``waiting`` at start."""
        folder = self.folders[record.folder]
        assert record.manifest is not None
        manifest = Manifest.model_validate_json(record.manifest)
        path = Path(record.source)
        waiting = _Waiting(record, folder, path, manifest, signature=None)
        try:
            waiting.signature = Signature.of(path.lstat())
        except OSError:
            waiting.signature = None
        self._waiting[record.job_id] = waiting
        self._reserve(waiting)

    def _reserve(self, waiting: _Waiting) -> None:
        intake = self.intakes.get(waiting.folder.name)
        if intake is not None:  # None: the folder was removed by a reload
            intake.reserve(waiting.owned)

    def _release(self, waiting: _Waiting) -> None:
        intake = self.intakes.get(waiting.folder.name)
        if intake is not None:
            intake.release(waiting.owned)

    @staticmethod
    def _apply(record: JobRecord, manifest: Manifest, path: Path, workflow: str) -> None:
        record.name = manifest_job_name(manifest, path)
        record.extra_inputs = json.dumps(manifest.input_names)
        record.manifest = manifest.model_dump_json()
        record.workflow = workflow

    # --- the periodic check ----------------------------------------------------------

    def check(self) -> None:
        """Look at every waiting job once: start, fail or keep waiting."""
        # Folder listings, made only when a name is not found as spelt, and shared
        # by every job of this round.
        listings: dict[Path, dict[str, Path]] = {}
        for waiting in list(self._waiting.values()):
            try:
                self._check(waiting, listings)
            except Exception:
                log.exception("checking pending job %s failed", waiting.record.job_id)

    def _check(self, waiting: _Waiting, listings: dict[Path, dict[str, Path]]) -> None:
        record = waiting.record
        try:
            info = waiting.manifest_path.lstat()
        except FileNotFoundError:
            self._end_waiting(
                waiting,
                Aborted(
                    f"The manifest {waiting.manifest_path.name!r} was removed while the job "
                    "was pending, so the job was aborted. Inputs that had arrived are here."
                ),
            )
            return
        if Signature.of(info) != waiting.signature and not self._reread(waiting):
            return
        intake = self.intakes.get(waiting.folder.name)
        try:
            missing, settling = waiting.inputs_seen.look(
                waiting.manifest.input_names,
                self._clock(),
                intake.writers if intake is not None else None,
                listings,
            )
        except JobError as exc:  # an input that is a folder, a link or a device
            self._end_waiting(waiting, exc)
            return
        self._tell(waiting, missing, settling)
        if missing:
            if time.time() >= waiting.deadline:
                self._end_waiting(
                    waiting,
                    InputsMissing(
                        f"{len(missing)} input(s) named by the manifest did not arrive within "
                        f"{waiting.folder.manifest_timeout:.0f} s: {', '.join(missing)}. Drop "
                        "the manifest again together with all its files."
                    ),
                )
            return
        if settling or not waiting.manifest.process:
            return
        self._start(waiting)
        log.info("all %d input(s) present", len(waiting.inputs), extra={"job_id": record.job_id})

    def _tell(self, waiting: _Waiting, missing: list[str], settling: list[str]) -> None:
        # A job that waits says what it waits for: in its status message, which
        # `hotfolder status JOBID` and GET /jobs/{jobId} show.
        total = len(waiting.manifest.input_names)
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {total} input(s) not there yet: {', '.join(missing)}")
        if settling:
            parts.append(f"still being written: {', '.join(settling)}")
        if parts:
            message = "Waiting for its inputs: " + "; ".join(parts) + "."
        elif not waiting.manifest.process:
            message = (
                "Every input is here; held because the manifest says process: false "
                "(replace the manifest with process: true to start the job)."
            )
        else:
            message = ""
        if message == waiting.told:
            return
        waiting.told = message
        waiting.record.message = message
        self.journal.update(waiting.record.job_id, durable=False, message=message)

    def _reread(self, waiting: _Waiting) -> bool:
        """The manifest was replaced: take the new one; False if the job ended instead."""
        try:
            manifest, signature = read_manifest(waiting.manifest_path)
            planned = plan(manifest, waiting.folder)
        except FileNotFoundError:
            return False  # removed just now: the next check aborts the job
        except JobError as exc:
            self._end_waiting(waiting, exc)
            return False
        self._release(waiting)
        waiting.manifest, waiting.signature = manifest, signature
        self._reserve(waiting)
        record = waiting.record
        self._apply(record, manifest, waiting.manifest_path, planned.conversions[0].workflow)
        record.profile = planned.conversions[0].profile
        self.journal.update(
            record.job_id,
            name=record.name,
            extra_inputs=record.extra_inputs,
            manifest=record.manifest,
            workflow=record.workflow,
            profile=record.profile,
        )
        log.info(
            "manifest replaced (process=%s)",
            str(manifest.process).lower(),
            extra={"job_id": record.job_id},
        )
        return True

    # --- leaving the waiting state ---------------------------------------------------

    def _start(self, waiting: _Waiting) -> None:
        record = waiting.record
        intake = self.intakes.get(waiting.folder.name)
        writers = intake.writers if intake is not None else None
        record.writer_free = writers is not None and all(
            writers.busy(path) is False for path in waiting.inputs
        )
        self._claim(record, waiting.owned)
        del self._waiting[record.job_id]
        self._release(waiting)
        self.journal.update(record.job_id, phase="queued")
        record.phase = "queued"
        self.enqueue(record)

    def cancel(self, job_id: str, reason: str) -> bool:
        """Abort a waiting job; False when it is not waiting (any more)."""
        waiting = self._waiting.get(job_id)
        if waiting is None:
            return False
        self._end_waiting(waiting, Aborted(reason))
        return True

    def _end_waiting(self, waiting: _Waiting, error: HotfolderError) -> None:
        del self._waiting[waiting.record.job_id]
        self._end(waiting.record, waiting.folder, waiting.owned, error)
        self._release(waiting)

    def _end(
        self, record: JobRecord, folder: FolderSettings, owned: list[Path], error: HotfolderError
    ) -> None:
        """Move what arrived into the work area, then publish the failure to error/."""
        # The error is journaled before the renames so that a crash in between
        # ends the job the same way at the next start (see recovery.recover).
        self.journal.update(record.job_id, error_code=error.code, message=error.message)
        record.error_code, record.message = error.code, error.message
        self._claim(record, owned)
        state = JobState.ABORTED if isinstance(error, Aborted) else JobState.FAILED
        status = self.publisher.failure(
            record, ErrorInfo(code=error.code, message=error.message), state=state
        )
        log.info(
            "%s folder=%s manifest=%r %s",
            state.value,
            folder.name,
            record.input_name,
            error.message,
            extra={"job_id": record.job_id},
        )
        self.on_finished(record, status)

    def _claim(self, record: JobRecord, owned: list[Path]) -> None:
        # Journal first (phase claiming, with every name), then the renames: a crash
        # in between is finished by claim recovery at the next start.
        self.journal.update(record.job_id, phase="claiming")
        record.phase = "claiming"
        work_inputs = record.work_inputs
        work_inputs[0].parent.mkdir(parents=True, exist_ok=True)
        for source, target in zip(owned, work_inputs, strict=True):
            try:
                # A folder named as an input is never moved: it may hold anybody's files.
                if os.path.lexists(source) and not stat.S_ISDIR(source.lstat().st_mode):
                    source.rename(target)
            except OSError as exc:
                log.warning(
                    "cannot claim %s: %s", source, exc.strerror, extra={"job_id": record.job_id}
                )
        stamp(record)
        first = work_inputs[0]
        if os.path.lexists(first):
            info = first.lstat()
            record.input_size, record.input_mtime = info.st_size, info.st_mtime_ns
            self.journal.update(
                record.job_id, input_size=record.input_size, input_mtime=record.input_mtime
            )
