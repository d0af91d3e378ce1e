"""Run one job's workflow inside a worker process.

This is the code both the daemon's workers and ``hotfolder convert`` execute:
resolve options, check the inputs, run each step into its own directory,
verify each step's outputs, then fsync and fingerprint the final outputs so
that the daemon only has to rename them into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotfolder.errors import (
    CorruptInput,
    HotfolderError,
    InternalError,
    IOFailure,
    NotRegularFile,
    OptionInvalid,
)
from hotfolder.logs import job_logging
from hotfolder.models import ErrorInfo, FileInfo, JobOutcome, JobSpec
from hotfolder.workflows.base import OptionSpec, StepContext, Workflow
from hotfolder.workflows.registry import get_workflow

_CHUNK = 1 << 20


def file_info(path: Path, name: str | None = None) -> FileInfo:
    """Return name, size and SHA-256 of a regular file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileInfo(name=name or path.name, bytes=size, sha256=digest.hexdigest())


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk so a later rename publishes complete bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_input(path: Path) -> None:
    # lstat, not stat: a symlink is rejected, never followed (invariant 7).
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise IOFailure(f"The input {path.name!r} disappeared before it could be read.") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(
            f"{path.name!r} is not a regular file; hotfolder never follows links or reads "
            "special files. Drop the file itself, not a link to it."
        )
    if info.st_nlink > 1:
        # A hard link is the same file under a second name, which may lie outside the
        # configured folders (a file the dropper may link to but should not get
        # converted): reading it would read that file (invariant 7). Checked before
        # the first read, like a symlink; claims rename, so a dropped file has one name.
        raise NotRegularFile(
            f"{path.name!r} is a hard link: the same file has {info.st_nlink} names, maybe "
            "outside this folder, and hotfolder never reads a file through another name. "
            "Drop a copy of the file instead."
        )
    if info.st_size == 0:
        raise CorruptInput(
            f"{path.name!r} is empty (0 bytes). It was probably not copied completely; "
            "copy it into the folder again."
        )


@dataclass(frozen=True)
class _Planned:
    workflow: Workflow
    options: dict[str, Any]
    job_name: str


def _plan(spec: JobSpec) -> tuple[list[_Planned], dict[str, dict[str, Any]]]:
    """Resolve and validate every conversion's options and the per-document options."""
    planned: list[_Planned] = []
    known: dict[str, OptionSpec] = {}
    several = len(spec.conversions) > 1
    for conversion in spec.conversions:
        workflow = get_workflow(conversion.workflow)
        # Shared options go to every conversion that understands them.
        shared = {k: v for k, v in spec.options.items() if not several or k in workflow.options}
        options = workflow.resolve_options(conversion.profile, {**shared, **conversion.options})
        planned.append(_Planned(workflow, options, spec.job_name + conversion.suffix))
        for name, option in workflow.options.items():
            known.setdefault(name, option)
    unknown = sorted(set(spec.options) - set(known))
    if unknown:
        raise OptionInvalid(
            f"No conversion of this job has the option(s) {', '.join(unknown)}; "
            f"known options: {', '.join(sorted(known))}."
        )
    documents: dict[str, dict[str, Any]] = {}
    for document, values in spec.document_options.items():
        checked: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise OptionInvalid(f"Input {document!r} has option {name!r}, which no step knows.")
            checked[name] = known[name].validate(value)
        documents[document] = checked
    return planned, documents


def run_job(spec: JobSpec, progress: Callable[[int, int], None] | None = None) -> JobOutcome:
    """Run the job described by ``spec`` and report its outcome; never raises JobError.

    Every line logged meanwhile carries the job's id, libraries' lines included.
    ``progress(pages_done, pages)`` is called while a step that counts pages runs.
    """
    with job_logging(spec.job_id):
        return _run_job(spec, progress)


def _run_job(spec: JobSpec, progress: Callable[[int, int], None] | None) -> JobOutcome:
    log = logging.LoggerAdapter(logging.getLogger("hotfolder.job"), {"job_id": spec.job_id})
    started = time.monotonic()
    inputs = [Path(p) for p in spec.inputs]
    input_info: list[FileInfo] = []
    warnings: list[str] = []
    ctx = StepContext(spec.job_id, spec.job_name, {}, log, warnings)
    try:
        planned, documents = _plan(spec)
        for path in inputs:
            _check_input(path)
        input_info = [file_info(path) for path in inputs]
        work = Path(spec.work_dir)
        outputs: list[Path] = []
        messages: list[str] = []
        for number, conversion in enumerate(planned, start=1):
            ctx = StepContext(
                spec.job_id,
                conversion.job_name,
                conversion.options,
                log,
                warnings,
                documents,
                progress,
            )
            prefix = f"c{number}-" if len(planned) > 1 else ""
            current, message = _run_steps(conversion.workflow, inputs, work, prefix, ctx)
            outputs += current
            messages.append(message)
        _check_distinct(outputs)
        for path in outputs:
            fsync_file(path)
        output_info = [file_info(path) for path in outputs]
        current = outputs
        message = " ".join(messages)
    except HotfolderError as exc:
        return _failure(spec, exc, input_info, ctx, started)
    except OSError as exc:
        io_failure = IOFailure(f"Reading or writing a file failed: {exc.strerror or exc}.")
        return _failure(spec, io_failure, input_info, ctx, started)
    except MemoryError:
        raise  # the worker reports this as a crash: its heap is no longer trustworthy
    except Exception as exc:
        log.exception("internal error")
        summary = "".join(traceback.format_exception_only(exc)).strip()
        failure = InternalError(
            f"hotfolder hit an internal error ({summary}). Please report it with this status file."
        )
        return _failure(spec, failure, input_info, ctx, started)
    return JobOutcome(
        job_id=spec.job_id,
        ok=True,
        message=message,
        inputs=input_info,
        outputs=[str(path) for path in current],
        output_info=output_info,
        warnings=ctx.warnings,
        engine_seconds=time.monotonic() - started,
    )


def _run_steps(
    workflow: Workflow, inputs: list[Path], work: Path, prefix: str, ctx: StepContext
) -> tuple[list[Path], str]:
    current, messages = inputs, []
    for index, step in enumerate(workflow.steps, start=1):
        out_dir = work / f"{prefix}{index:02d}-{step.name}"
        _clean_dir(out_dir)
        result = step.run(current, out_dir, ctx)
        step.verify(current, result, ctx)
        current = result.outputs
        messages.append(result.message)
    # A chain reports every step: "Converted to PDF. PDF/A-2b written … Protected …"
    return current, " ".join(m for m in messages if m)


def _clean_dir(directory: Path) -> None:
    # A retried attempt starts from a clean step directory. A recycled work dir
    # (hotfolder.workdirs) already has an empty one: it is kept, not made anew.
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        directory.mkdir(parents=True)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            Path(entry.path).unlink()


def _check_distinct(outputs: list[Path]) -> None:
    names = [path.name for path in outputs]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise OptionInvalid(
            f"Several conversions of this job write {', '.join(map(repr, clashes))}; "
            "give the conversions different suffixes."
        )


def _failure(
    spec: JobSpec,
    exc: HotfolderError,
    input_info: list[FileInfo],
    ctx: StepContext,
    started: float,
) -> JobOutcome:
    return JobOutcome(
        job_id=spec.job_id,
        ok=False,
        message=exc.message,
        inputs=input_info,
        warnings=ctx.warnings,
        error=ErrorInfo(code=exc.code, message=exc.message),
        retryable=exc.retryable,
        engine_seconds=time.monotonic() - started,
    )
