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
import shutil
import threading
import time
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

from hotfolder.config import FolderSettings
from hotfolder.journal import JobRecord, Journal
from hotfolder.models import ErrorInfo, FileInfo, JobOutcome, JobState, JobStatus, iso_utc
from hotfolder.workdirs import WorkDirs

log = logging.getLogger("hotfolder.publish")

STATUS_SUFFIX = ".status.json"
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


def free_name(
    directory: Path, job_name: str, rests: list[str], reserved: Set[Path] = frozenset()
) -> str:
    """Return ``job_name`` or ``job_name_N`` such that no ``<name><rest>`` exists yet.

    Paths in ``reserved`` count as taken (names chosen for jobs of the same batch
    that are not placed yet). The name is shortened where it would not fit
    NAME_MAX (:func:`fit_name`).
    """
    for n in range(1, _MAX_SUFFIX):
        candidate = fit_name(job_name, rests, "" if n == 1 else f"_{n}")
        paths = [directory / f"{candidate}{rest}" for rest in rests]
        if not any(path in reserved or os.path.lexists(path) for path in paths):
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


@dataclass
class Publication:
    """A finished job's result, ready to be published (see :meth:`Publisher.publish`)."""

    record: JobRecord
    #: The folder the outputs or the original and the status go to.
    target: Path
    state: JobState
    message: str
    inputs: list[FileInfo] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    output_info: list[FileInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: ErrorInfo | None = None


class Publisher:
    """Places the results of finished jobs; one lock keeps name choices race-free."""

    def __init__(
        self,
        journal: Journal,
        folders: Mapping[str, FolderSettings],
        *,
        keep_originals: bool,
        workdirs: WorkDirs | None = None,
    ) -> None:
        self.journal = journal
        self.folders = dict(folders)
        self.keep_originals = keep_originals
        self._lock = threading.Lock()
        #: Makes and recycles job work dirs (claims take them from here too).
        self.workdirs = workdirs or WorkDirs()

    def close(self) -> None:
        """Finish tidying the work dirs of finished jobs (at stop)."""
        self.workdirs.close()

    def succeeded(self, record: JobRecord, outcome: JobOutcome) -> Publication:
        """What publishing a successful job places: outputs and status in out/."""
        folder = self.folders[record.folder]
        return Publication(
            record=record,
            target=folder.output_dir / record.rel_dir,
            state=JobState.SUCCESS,
            message=outcome.message,
            inputs=list(outcome.inputs),
            outputs=[Path(p) for p in outcome.outputs],
            output_info=list(outcome.output_info),
            warnings=list(outcome.warnings),
        )

    def failed(
        self,
        record: JobRecord,
        error: ErrorInfo,
        *,
        inputs: list[FileInfo] | None = None,
        warnings: list[str] | None = None,
        state: JobState = JobState.FAILED,
    ) -> Publication:
        """What publishing a failed or aborted job places: original and status in error/."""
        folder = self.folders[record.folder]
        return Publication(
            record=record,
            target=folder.error_dir / record.rel_dir,
            state=state,
            message=error.message,
            inputs=inputs or [],
            warnings=warnings or [],
            error=error,
        )

    def success(self, record: JobRecord, outcome: JobOutcome) -> JobStatus:
        """Publish a successful job: outputs and status to out/, original archived."""
        return self._one(self.succeeded(record, outcome))

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
        return self._one(self.failed(record, error, inputs=inputs, warnings=warnings, state=state))

    def _one(self, item: Publication) -> JobStatus:
        result = self.publish([item])[0]
        if isinstance(result, OSError):
            raise result
        return result

    def publish(self, items: Sequence[Publication]) -> list[JobStatus | OSError]:
        """Publish several finished jobs; one result per item, in order.

        The plans of all of them are committed together, and each folder they
        go to is fsynced once: under load that is one journal fsync and one
        directory fsync for a batch instead of for every job. An item that
        cannot be placed (its folder not writable, a full disk) gets the
        OSError; its plan is in the journal, so :meth:`resume` can finish it.
        """
        results: list[JobStatus | OSError] = []
        with self._lock:
            reserved: set[Path] = set()
            planned: list[tuple[int, JobRecord]] = []
            plans: list[tuple[str, dict[str, object]]] = []
            for slot, item in enumerate(items):
                try:
                    status, plan = self._plan(item, reserved)
                except OSError as exc:
                    results.append(exc)
                    continue
                results.append(status)
                planned.append((slot, item.record))
                plans.append((item.record.job_id, plan))
            # No file system change before the plans are committed: if out/ or error/
            # cannot be written, a job stays in phase "publishing" with its result,
            # and placing it can be tried again (_place creates the target).
            try:
                self.journal.update_many(plans)
            except BaseException:
                # Not journaled: whoever tries again must plan again (name included).
                for _, record in planned:
                    record.published_name = record.status_json = record.result = None
                raise
            for slot, failure in self._place_many(planned).items():
                results[slot] = failure
        return results

    def resume(self, record: JobRecord) -> None:
        """Finish a publish that a crash (or an unwritable folder) interrupted."""
        with self._lock:
            failed = self._place_many([(0, record)])
        if failed:
            raise failed[0]

    def _plan(self, item: Publication, reserved: set[Path]) -> tuple[JobStatus, dict[str, object]]:
        # Decides the published name and the status document; fills in the record and
        # returns the journal columns of phase "publishing".
        record, outputs = item.record, item.outputs
        rests = [_rest(path.name, record.name) for path in outputs] + [STATUS_SUFFIX]
        if item.state is not JobState.SUCCESS and not self.keep_originals:
            rests.append(_rest(record.input_name, record.name))
        inputs = item.inputs
        if not inputs:
            sizes = [record.input_size] + [0] * (len(record.input_names) - 1)
            inputs = [
                FileInfo(name=input_name, bytes=size, sha256="")
                for input_name, size in zip(record.input_names, sizes, strict=True)
            ]
        name = free_name(item.target, record.name, rests, reserved)
        reserved.update(item.target / f"{name}{rest}" for rest in rests)
        finished = time.time()
        status = JobStatus(
            job_id=record.job_id,
            status=item.state,
            message=item.message,
            folder=record.folder,
            workflow=record.workflow,
            profile=record.profile,
            name=name,
            inputs=inputs,
            outputs=[
                info.model_copy(update={"name": f"{name}{_rest(path.name, record.name)}"})
                for path, info in zip(outputs, item.output_info, strict=True)
            ],
            created_at=iso_utc(record.created_at),
            started_at=iso_utc(record.started_at) if record.started_at else None,
            finished_at=iso_utc(finished),
            duration_seconds=round(finished - (record.started_at or record.created_at), 3),
            attempts=record.attempts,
            error=item.error,
            warnings=item.warnings,
        )
        record.published_name = name
        record.status_json = status.to_json()
        record.result = _dumps({"target": str(item.target), "outputs": [str(p) for p in outputs]})
        record.finished_at = finished
        record.state = item.state.value
        return status, {
            "phase": "publishing",
            "published_name": name,
            "status_json": record.status_json,
            "result": record.result,
            "finished_at": finished,
            "error_code": item.error.code if item.error else None,
            "message": item.message,
        }

    def _place_many(self, planned: list[tuple[int, JobRecord]]) -> dict[int, OSError]:
        # Places every planned (slot, record), fsyncs each folder touched once, then
        # commits phase "done" for all that were placed. Returns the slots that could
        # not be placed, with why.
        failed: dict[int, OSError] = {}
        placed: list[JobRecord] = []
        touched: set[Path] = set()
        for slot, record in planned:
            try:
                touched |= self._place(record)
            except OSError as exc:
                failed[slot] = exc
                continue
            placed.append(record)
        try:
            for directory in sorted(touched):
                fsync_dir(directory)
        except OSError as exc:
            done = {id(record) for record in placed}
            return failed | {slot: exc for slot, record in planned if id(record) in done}
        self.journal.update_many(
            [
                (record.job_id, {"phase": "done", "state": record.state, "result": record.result})
                for record in placed
            ]
        )
        for record in placed:
            record.phase = "done"
            self.workdirs.discard(Path(record.work_dir))
        return failed

    def _place(self, record: JobRecord) -> set[Path]:
        # Carries out one plan; returns the folders whose new entries need an fsync.
        assert record.status_json is not None and record.result is not None
        assert record.published_name is not None
        plan = json.loads(record.result)
        status = json.loads(record.status_json)
        target = Path(plan["target"])
        name = record.published_name
        target.mkdir(parents=True, exist_ok=True)
        touched = {target}
        work = Path(record.work_dir)
        state = JobState(status["status"])
        record.state = state.value
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
                    if placed is not None:
                        touched.add(placed.parent)
                originals.append(str(placed) if placed else None)
        # Where the originals went: what `hotfolder retry` moves back.
        plan["originals"] = originals
        record.result = _dumps(plan)
        return touched

    def _archive(self, record: JobRecord, original: Path, stem: str, rest: str) -> Path | None:
        archive = self.folders[record.folder].archive_dir
        if archive is None:
            original.unlink()
            return None
        where = archive / record.rel_dir
        where.mkdir(parents=True, exist_ok=True)
        return place_unique(original, where, stem, rest)

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
