"""Jobs, their states and the status-file schema (DESIGN.md §2.3-2.4)."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class JobState(enum.StrEnum):
    """The states a job moves through; the last three are final."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCESS = "success"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def final(self) -> bool:
        """True for success, failed and aborted."""
        return self in (JobState.SUCCESS, JobState.FAILED, JobState.ABORTED)


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class FileInfo(_Camel):
    """A file named in a status: its name, size and SHA-256."""

    name: str
    bytes: int
    sha256: str


class ErrorInfo(_Camel):
    """Why a job failed: a code from the fixed vocabulary and a message for people."""

    code: str
    message: str


class JobStatus(_Camel):
    """The status JSON written next to a job's outputs or its failed original."""

    job_id: str
    status: JobState
    message: str
    folder: str
    workflow: str
    profile: str
    name: str
    inputs: list[FileInfo] = Field(default_factory=list)
    outputs: list[FileInfo] = Field(default_factory=list)
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    attempts: int = 0
    error: ErrorInfo | None = None
    warnings: list[str] = Field(default_factory=list)

    def to_json(self) -> str:
        """Serialise with camelCase keys, as the status file carries them."""
        data = _printable(self.model_dump(by_alias=True, mode="python"))
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _printable(value: Any) -> Any:
    # File names that are not valid UTF-8 arrive as lone surrogates; show the raw
    # bytes as \xNN so that the status file stays valid UTF-8 and unambiguous.
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value


def iso_utc(timestamp: float) -> str:
    """Format a Unix timestamp as ISO 8601 UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class ConversionSpec(BaseModel):
    """One target of a job: a workflow, its profile and options of its own."""

    model_config = ConfigDict(frozen=True)

    workflow: str
    profile: str = "default"
    options: dict[str, object] = Field(default_factory=dict)
    #: Appended to the job name for this conversion's outputs (``-preview``).
    suffix: str = ""


class JobSpec(BaseModel):
    """What a worker needs to run one job: sent from the daemon to a worker.

    ``options`` (the folder's, then the manifest's) apply to every conversion
    whose workflow knows them; each conversion's own options override them.
    ``document_options`` holds per-input options (a password) by input name.
    """

    model_config = ConfigDict(frozen=True)

    job_id: str
    job_name: str
    conversions: list[ConversionSpec]
    options: dict[str, object] = Field(default_factory=dict)
    document_options: dict[str, dict[str, object]] = Field(default_factory=dict)
    inputs: list[str]
    work_dir: str

    @property
    def workflow(self) -> str:
        """The first conversion's workflow (what logs and metrics name)."""
        return self.conversions[0].workflow


class JobOutcome(BaseModel):
    """What a worker reports back: outputs on success, an error code otherwise."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    ok: bool
    message: str
    inputs: list[FileInfo] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)  # absolute paths inside work_dir
    output_info: list[FileInfo] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    error: ErrorInfo | None = None
    retryable: bool = False
    engine_seconds: float = 0.0
