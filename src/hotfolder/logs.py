"""Logging setup: plain lines for a terminal, JSON lines for journald and log shippers.

Every record about a job carries its id: as ``extra={"job_id": ...}`` it
becomes a ``jobId`` field in JSON and a ``[job …]`` prefix in text, so that
``journalctl -o cat | grep <jobId>`` finds every line of a job, including the
lines its worker process wrote. Libraries know nothing of jobs: while a worker
runs one (:func:`job_logging`), their records get its id too, and the chatter
of :data:`QUIET_LIBRARIES` is lowered to DEBUG.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(job)s%(message)s"
#: Attributes every LogRecord has; anything else was passed in ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "job"}


#: Libraries whose warnings concern their own parsing, not the job's result:
#: fontTools reads embedded fonts for the PDF/A checks and warns about every font
#: with an odd ``head`` timestamp ("'modified' timestamp seems very low"), which an
#: operator can do nothing about. Their records below ERROR are logged at DEBUG.
QUIET_LIBRARIES: tuple[str, ...] = ("fontTools",)

_current_job: ContextVar[str | None] = ContextVar("hotfolder_job", default=None)


@contextmanager
def job_logging(job_id: str) -> Iterator[None]:
    """Within this block, records without a job id (libraries' lines) get ``job_id``."""
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


class JobFilter(logging.Filter):
    """Give records the running job's id; lower quiet libraries' chatter to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record``; drop it when lowered below the root level."""
        if getattr(record, "job_id", None) is None:
            job_id = _current_job.get()
            if job_id:
                record.job_id = job_id
        quiet = record.name.split(".", 1)[0] in QUIET_LIBRARIES
        if quiet and logging.DEBUG < record.levelno < logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


class TextFormatter(logging.Formatter):
    """``2026-11-25 10:00:00,123 INFO hotfolder.dispatch: [job 01J…] message``."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def format(self, record: logging.LogRecord) -> str:
        """Add the job prefix when the record names a job."""
        job_id = getattr(record, "job_id", None)
        record.job = f"[job {job_id}] " if job_id else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, jobId and other extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record; exceptions go into ``exception``."""
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            document["jobId"] = job_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "job_id" and not key.startswith("_"):
                document[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def configure(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Send the process's logs to stderr in ``fmt`` at ``level`` (replacing earlier setup)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(JobFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # pikepdf announces its logger bridge at INFO on import; only its problems matter.
    logging.getLogger("pikepdf").setLevel(max(logging.WARNING, root.level))
