"""Publish a finished job: outputs, status JSON and the original, atomically.

Every file reaches out/, error/ or archive/ by a rename (or a hard link then
unlink) of a file that was already complete and fsynced in the job's work
area, so nobody ever sees a partial file (invariant 3). ``os.link`` fails with
EEXIST instead of replacing, so nothing is ever overwritten (invariant 4).

The plan (published name, status document, output paths) is committed to the
journal before the first file moves; every placement step is idempotent, so
:meth:`Publisher.resume` can redo a publish that a crash interrupted.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from hotfolder.config import FolderSettings
from hotfolder.journal import JobRecord, Journal
from hotfolder.models import ErrorInfo, FileInfo, JobOutcome, JobState, JobStatus, iso_utc

log = logging.getLogger("hotfolder.publish")

STATUS_SUFFIX = ".status.json"
#: Work dirs of finished jobs are renamed to this prefix, then removed in the background.
TRASH_PREFIX = ".trash-"
_MAX_SUFFIX = 100_000
#: Longest file name (in bytes) Linux filesystems take; ext4, xfs, btrfs, tmpfs, NFS, SMB.
NAME_MAX = 255


def job_name_for(input_name: str) -> str:
    """The job name: the input file name without its last extension."""
    stem, dot, ext = input_name.rpartition(".")
    return stem if dot and stem and ext else input_name


def _own_stem(file_name: str) -> str:
    # "batch.job.json" collides as "batch_2.job.json", not "batch.job_2.json".
    if file_name.lower().endswith(".job.json") and len(file_name) > 9:
        return file_name[:-9]
    return job_name_for(file_name)


def _rest(file_name: str, job_name: str) -> str:
    # Steps name outputs "<job name><rest>"; the collision suffix goes between.
    return file_name[len(job_name) :] if file_name.startswith(job_name) else f"-{file_name}"


def fit_name(job_name: str, rests: list[str], suffix: str = "") -> str:
    """Shorten ``job_name`` so that ``<name><suffix><rest>`` fits NAME_MAX for every rest.

    A 255-byte input name is legal, but its ``.status.json`` (or a ``_2``) would not
    be: without this the status could never be written and the job never ended.
    Characters are kept whole (a UTF-8 sequence is never cut).
    """
    room = NAME_MAX - len(os.fsencode(suffix)) - max(len(os.fsencode(rest)) for rest in rests)
    if len(os.fsencode(job_name)) <= room:
        return job_name + suffix
    if room < 1:
        raise OSError(errno.ENAMETOOLONG, f"no room for a name before {max(rests, key=len)!r}")
    kept, used = [], 0
    for char in job_name:
        size = len(os.fsencode(char))
        if used + size > room:
            break
        kept.append(char)
        used += size
    return "".join(kept) + suffix


def free_name(directory: Path, job_name: str, rests: list[str]) -> str:
    """Return ``job_name`` or ``job_name_N`` such that no ``<name><rest>`` exists yet.

    The name is shortened where it would not fit NAME_MAX (:func:`fit_name`).
    """
    for n in range(1, _MAX_SUFFIX):
        candidate = fit_name(job_name, rests, "" if n == 1 else f"_{n}")
        if not any(os.path.lexists(directory / f"{candidate}{rest}") for rest in rests):
            return candidate
    raise FileExistsError(errno.EEXIST, f"no free name for {job_name!r} in {directory}")


def fsync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some FUSE and network filesystems cannot fsync a directory at all.
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def write_synced(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` and fsync it (the path is private to the job)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def place(src: Path, dst: Path) -> bool:
    """Move ``src`` to ``dst`` without ever replacing an existing ``dst``.

    Returns False when ``dst`` is taken by another file. Idempotent: when a
    crash left ``src`` already at ``dst`` (or linked to it), it completes.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        if not os.path.lexists(src):
            return True  # placed before a crash
        if os.path.samestat(src.lstat(), dst.lstat()):
            src.unlink()
            return True
        return False
    except FileNotFoundError:
        if not os.path.lexists(src) and os.path.lexists(dst):
            return True
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        return _place_without_link(src, dst)
    src.unlink()
    return True


def _place_without_link(src: Path, dst: Path) -> bool:
    # For filesystems without hard links (some SMB mounts) or another device.
    if os.path.lexists(dst):
        return False
    if src.stat().st_dev == dst.parent.stat().st_dev or src.is_symlink():
        src.rename(dst)
        return True
    temp = dst.with_name(f".{dst.name}.hotfolder-tmp")
    shutil.copyfile(src, temp)
    with temp.open("rb") as handle:
        os.fsync(handle.fileno())
    if os.path.lexists(dst):
        temp.unlink()
        return False
    temp.rename(dst)
    src.unlink()
    return True


def place_unique(src: Path, directory: Path, job_name: str, rest: str) -> Path:
    """Place ``src`` as ``<job_name><rest>`` in ``directory``, suffixing on collision."""
    name = fit_name(job_name, [rest])
    while True:
        dst = directory / f"{name}{rest}"
        if place(src, dst):
            return dst
        name = free_name(directory, job_name, [rest])


class Publisher:
    """Places the results of finished jobs; one lock keeps name choices race-free."""

    def __init__(
        self, journal: Journal, folders: Mapping[str, FolderSettings], *, keep_originals: bool
    ) -> None:
        self.journal = journal
        self.folders = dict(folders)
        self.keep_originals = keep_originals
        self._lock = threading.Lock()
        # Removing a finished job's work dir is slow (unlink per file) and nobody waits
        # for it: a reaper thread does it off the publishing path.
        self._trash: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._reaper = threading.Thread(target=self._reap, name="hotfolder-reaper", daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        while (path := self._trash.get()) is not None:
            shutil.rmtree(path, ignore_errors=True)

    def _discard(self, work: Path) -> None:
        # Renamed first (atomic, instant): a retry may recreate the work dir at once,
        # and must never find the reaper deleting inside it.
        trash = work.with_name(f"{TRASH_PREFIX}{work.name}")
        try:
            work.rename(trash)
        except FileNotFoundError:
            return
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
            return
        self._trash.put(trash)

    def close(self) -> None:
        """Finish removing work dirs of finished jobs (at stop)."""
        self._trash.put(None)
        self._reaper.join(timeout=60)

    def success(self, record: JobRecord, outcome: JobOutcome) -> JobStatus:
        """Publish a successful job: outputs and status to out/, original archived."""
        folder = self.folders[record.folder]
        outputs = [Path(p) for p in outcome.outputs]
        target = folder.output_dir / record.rel_dir
        return self._publish(
            record,
            target,
            JobState.SUCCESS,
            outcome.message,
            outcome.inputs,
            outputs,
            list(outcome.output_info),
            outcome.warnings,
            None,
        )

    def failure(
        self,
        record: JobRecord,
        error: ErrorInfo,
        *,
        inputs: list[FileInfo] | None = None,
        warnings: list[str] | None = None,
        state: JobState = JobState.FAILED,
    ) -> JobStatus:
        """Publish a failed or aborted job: original and status to error/."""
        folder = self.folders[record.folder]
        target = folder.error_dir / record.rel_dir
        return self._publish(
            record, target, state, error.message, inputs or [], [], [], warnings or [], error
        )

    def _publish(
        self,
        record: JobRecord,
        target: Path,
        state: JobState,
        message: str,
        inputs: list[FileInfo],
        outputs: list[Path],
        output_info: list[FileInfo],
        warnings: list[str],
        error: ErrorInfo | None,
    ) -> JobStatus:
        # No file system change before the plan is committed: if out/ or error/ cannot
        # be written, the job stays in phase "publishing" with its result, and placing
        # it can be tried again (_place_all creates the target).
        rests = [_rest(path.name, record.name) for path in outputs] + [STATUS_SUFFIX]
        if state is not JobState.SUCCESS and not self.keep_originals:
            rests.append(_rest(record.input_name, record.name))
        if not inputs:
            sizes = [record.input_size] + [0] * (len(record.input_names) - 1)
            inputs = [
                FileInfo(name=input_name, bytes=size, sha256="")
                for input_name, size in zip(record.input_names, sizes, strict=True)
            ]
        with self._lock:
            name = free_name(target, record.name, rests)
            finished = time.time()
            status = JobStatus(
                job_id=record.job_id,
                status=state,
                message=message,
                folder=record.folder,
                workflow=record.workflow,
                profile=record.profile,
                name=name,
                inputs=inputs,
                outputs=[
                    info.model_copy(update={"name": f"{name}{_rest(path.name, record.name)}"})
                    for path, info in zip(outputs, output_info, strict=True)
                ],
                created_at=iso_utc(record.created_at),
                started_at=iso_utc(record.started_at) if record.started_at else None,
                finished_at=iso_utc(finished),
                duration_seconds=round(finished - (record.started_at or record.created_at), 3),
                attempts=record.attempts,
                error=error,
                warnings=warnings,
            )
            plan = {
                "target": str(target),
                "outputs": [str(p) for p in outputs],
            }
            record.published_name = name
            record.status_json = status.to_json()
            record.result = _dumps(plan)
            record.finished_at = finished
            record.state = state.value
            self.journal.update(
                record.job_id,
                phase="publishing",
                published_name=name,
                status_json=record.status_json,
                result=record.result,
                finished_at=finished,
                error_code=error.code if error else None,
                message=message,
            )
            self._place_all(record)
        return status

    def resume(self, record: JobRecord) -> None:
        """Finish a publish that a crash interrupted (phase ``publishing``)."""
        with self._lock:
            self._place_all(record)

    def _place_all(self, record: JobRecord) -> None:
        assert record.status_json is not None and record.result is not None
        assert record.published_name is not None
        plan = json.loads(record.result)
        status = json.loads(record.status_json)
        target = Path(plan["target"])
        name = record.published_name
        target.mkdir(parents=True, exist_ok=True)
        work = Path(record.work_dir)
        state = JobState(status["status"])
        if state is not JobState.SUCCESS:
            # What a failed attempt wrote is never published. Removed first, so that on a
            # full disk (the usual reason it failed) the status file still has room.
            shutil.rmtree(work / "work", ignore_errors=True)
        for output in plan["outputs"]:
            src = Path(output)
            place_unique(src, target, name, _rest(src.name, record.name))
        status_file = work / "status.json"
        if not (target / f"{name}{STATUS_SUFFIX}").exists():
            write_synced(status_file, record.status_json)
            place_unique(status_file, target, name, STATUS_SUFFIX)
        # keep_originals (one-shot convert): the originals never left their place and
        # the work area holds only copies, removed with the work area below.
        originals: list[str | None] = []
        if not self.keep_originals:
            for index, original in enumerate(record.work_inputs):
                if not os.path.lexists(original):
                    originals.append(None)
                    continue
                # A single file shares the job's name (and, in error/, the status file's
                # collision suffix); a manifest and the inputs it names keep their own.
                shares = index == 0 and not record.manifest
                own = record.name if shares else _own_stem(original.name)
                rest = _rest(original.name, own)
                placed: Path | None
                if state is not JobState.SUCCESS:
                    placed = place_unique(original, target, name if shares else own, rest)
                else:
                    placed = self._archive(record, original, own, rest)
                originals.append(str(placed) if placed else None)
        # Where the originals went: what `hotfolder retry` moves back.
        plan["originals"] = originals
        record.result = _dumps(plan)
        fsync_dir(target)
        self.journal.update(record.job_id, phase="done", state=state.value, result=record.result)
        record.phase = "done"
        self._discard(work)

    def _archive(self, record: JobRecord, original: Path, stem: str, rest: str) -> Path | None:
        archive = self.folders[record.folder].archive_dir
        if archive is None:
            original.unlink()
            return None
        where = archive / record.rel_dir
        where.mkdir(parents=True, exist_ok=True)
        placed = place_unique(original, where, stem, rest)
        fsync_dir(where)
        return placed

    def take_back(self, record: JobRecord) -> int:
        """Move a failed job's originals from error/ back into its work area (retry).

        The old status file is removed: the new attempt writes the job's one
        status. Returns how many originals were moved back; idempotent, so a
        retry a crash interrupted can simply be taken back again.
        """
        plan = json.loads(record.result or "{}")
        placed = plan.get("originals") or []
        inputs = Path(record.work_dir) / "input"
        inputs.mkdir(parents=True, exist_ok=True)
        moved = 0
        for where, target in zip(placed, record.work_inputs, strict=False):
            if where and os.path.lexists(where):
                Path(where).rename(target)
            if os.path.lexists(target):
                moved += 1
        if record.published_name is not None:
            status = Path(plan.get("target", "")) / f"{record.published_name}{STATUS_SUFFIX}"
            if moved and status.is_file():
                status.unlink()
        fsync_dir(inputs)
        return moved


def _dumps(data: object) -> str:
    return json.dumps(data, ensure_ascii=False)
