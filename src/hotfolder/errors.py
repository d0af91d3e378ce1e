"""The one exception tree of hotfolder.

Every error the daemon, the command line or a conversion can report is a
:class:`HotfolderError`. Each class carries three facts, so that no caller has
to map errors by hand:

* ``code``: the stable error code written into status JSON (DESIGN.md §2.4);
* ``retryable``: whether the executor may try the job again after a backoff;
* ``exit_code``: what ``hotfolder`` exits with when this error ends a command.

Third-party exceptions (pikepdf, Pillow, OSError, pydantic) are translated into
this tree at one boundary per engine, never passed through::

    HotfolderError
    ├── ConfigError                 bad config file or environment (exit 78)
    ├── UsageError                  bad command-line arguments or options (exit 64)
    ├── StartupError                state dir not writable, folder unusable (exit 73)
    ├── ToolMissing                 an engine is not installed (exit 69)
    └── JobError                    one job failed; the daemon goes on
        ├── UnsupportedFormat       unsupported_format
        ├── NotRegularFile          not_regular_file (symlink, FIFO, device, …)
        ├── CorruptInput            corrupt_input (includes empty files)
        ├── PasswordRequired        password_required
        ├── PasswordIncorrect       password_incorrect
        ├── OptionInvalid           option_invalid
        ├── TooLarge                too_large
        ├── JobTimeout              timeout
        ├── WorkerCrashed           worker_crashed
        ├── ToolFailed              tool_failed (engine bug, output failed its check)
        ├── IOFailure               io_error (retryable)
        ├── InputsMissing           inputs_missing
        ├── ManifestInvalid         manifest_invalid (a *.job.json that is not valid)
        ├── Aborted                 aborted
        └── InternalError           internal
"""

from __future__ import annotations

import enum
from typing import ClassVar


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``hotfolder`` command (sysexits.h values)."""

    OK = 0
    FAILURE = 1  # a runtime failure, or a one-shot conversion that failed
    USAGE = 64  # EX_USAGE
    CANT_CREATE = 73  # EX_CANTCREAT: state dir or folder not usable
    UNAVAILABLE = 69  # EX_UNAVAILABLE: a required tool is missing
    CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus can name it


class HotfolderError(Exception):
    """Base of every error hotfolder raises on purpose."""

    code: ClassVar[str] = "internal"
    retryable: ClassVar[bool] = False
    exit_code: ClassVar[ExitCode] = ExitCode.FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(HotfolderError):
    """The configuration is invalid; ``problems`` lists ``(key, message)`` pairs."""

    code = "config_invalid"
    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{key}: {msg}" if key else msg for key, msg in problems]
        where = f" in {source}" if source else ""
        super().__init__(f"{len(problems)} configuration error(s){where}:\n  " + "\n  ".join(lines))


class UsageError(HotfolderError):
    """The command line is wrong: an unknown option, a bad value, a missing input."""

    code = "usage"
    exit_code = ExitCode.USAGE


class StartupError(HotfolderError):
    """The daemon cannot start: a folder or the state dir is unusable."""

    code = "startup_failed"
    exit_code = ExitCode.CANT_CREATE


class ToolMissing(HotfolderError):
    """A conversion engine the workflow needs is not installed."""

    code = "tool_missing"
    exit_code = ExitCode.UNAVAILABLE


class JobError(HotfolderError):
    """One job failed. The daemon records it and carries on."""


class UnsupportedFormat(JobError):
    """The input's content is not a format the workflow accepts."""

    code = "unsupported_format"


class NotRegularFile(JobError):
    """The input is a symlink, FIFO, socket or device: never followed or read."""

    code = "not_regular_file"


class CorruptInput(JobError):
    """The input is damaged, truncated or empty."""

    code = "corrupt_input"


class PasswordRequired(JobError):
    """The input is encrypted and no password was given."""

    code = "password_required"


class PasswordIncorrect(JobError):
    """None of the passwords given opened the input."""

    code = "password_incorrect"


class OptionInvalid(JobError):
    """A job option is unknown or has a wrong value."""

    code = "option_invalid"


class TooLarge(JobError):
    """The input exceeds a configured size limit (e.g. a decompression bomb)."""

    code = "too_large"


class JobTimeout(JobError):
    """The job ran longer than the folder's ``timeout`` and was stopped."""

    code = "timeout"


class WorkerCrashed(JobError):
    """The worker process died (segfault, exit, out of memory) while converting."""

    code = "worker_crashed"


class ToolFailed(JobError):
    """An engine failed or produced an output that did not pass its check."""

    code = "tool_failed"


class IOFailure(JobError):
    """Reading or writing files failed; often transient (network share, disk full)."""

    code = "io_error"
    retryable = True


class InputsMissing(JobError):
    """Inputs a job needs did not arrive in time."""

    code = "inputs_missing"


class ManifestInvalid(JobError):
    """A sidecar manifest is not valid JSON or does not match the schema."""

    code = "manifest_invalid"


class Aborted(JobError):
    """The job was cancelled."""

    code = "aborted"


class InternalError(JobError):
    """A bug in hotfolder: the message carries the exception for a report."""

    code = "internal"


#: Every class whose code can appear in a status file, in documentation order.
_STATUS_ERRORS: tuple[type[HotfolderError], ...] = (
    UnsupportedFormat,
    NotRegularFile,
    CorruptInput,
    PasswordRequired,
    PasswordIncorrect,
    OptionInvalid,
    TooLarge,
    JobTimeout,
    WorkerCrashed,
    ToolMissing,
    ToolFailed,
    IOFailure,
    InputsMissing,
    ManifestInvalid,
    Aborted,
    InternalError,
)

#: The documented vocabulary of error codes written to status files.
ERROR_CODES: tuple[str, ...] = tuple(cls.code for cls in _STATUS_ERRORS)

_BY_CODE: dict[str, type[HotfolderError]] = {cls.code: cls for cls in _STATUS_ERRORS}


def error_class(code: str) -> type[HotfolderError]:
    """Return the exception class for a status-file error code."""
    return _BY_CODE.get(code, InternalError)
