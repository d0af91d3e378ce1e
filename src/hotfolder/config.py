"""Settings models, loading (TOML + environment) and path checks.

This is the only module that reads the environment for settings. The TOML file
is parsed with :mod:`tomllib` and handed to pydantic-settings as the lowest
priority source, so ``HOTFOLDER_DAEMON__WORKERS=4`` overrides one key while the
rest still comes from the file. Relative paths resolve against the file's own
folder, because systemd starts services in ``/``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hotfolder.celery_settings import CelerySettings
from hotfolder.config_problems import Problem, entry_key, salvage, schema_problems
from hotfolder.errors import ConfigError

ObserverKind = Literal["auto", "native", "polling"]
Seconds = Annotated[float, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]

#: Junk and temporary names that are never jobs, added to every folder's excludes.
BUILTIN_EXCLUDES: tuple[str, ...] = (
    ".DS_Store",
    "._*",
    "Thumbs.db",
    "ehthumbs.db",
    "desktop.ini",
    "Desktop.ini",
    "~$*",
    ".~lock.*#",
    "*.part",
    "*.partial",
    "*.tmp",
    "*.temp",
    "*.crdownload",
    "*.download",
    "*.swp",
    "*~",
    ".#*",
    "*.filepart",
    ".sync-*",
    ".syncthing.*",
    "*.!sync",
    ".nfs*",
    ".smbdelete*",
    ".fuse_hidden*",
    "@eaDir",
    ".Spotlight-V100",
    ".Trashes",
    ".fseventsd",
    ".TemporaryItems",
    "__MACOSX",
    ".stfolder",
    ".stversions",
    "*.hotfolder-tmp",
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DaemonSettings(_Strict):
    """The ``[daemon]`` table: process-wide settings."""

    state_dir: Path = Path("state")
    #: pool: conversions run in this machine's worker processes; celery: on Celery
    #: workers (``hotfolder worker``) on any machine that mounts the same folders.
    executor: Literal["pool", "celery"] = "pool"
    workers: Annotated[int, Field(ge=1, le=256)] = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1)
    )
    observer: ObserverKind = "auto"
    poll_interval: PositiveSeconds = 2.0
    rescan_interval: PositiveSeconds = 60.0
    drain_timeout: Seconds = 30.0
    retries: Annotated[int, Field(ge=0, le=20)] = 2
    retry_backoff: Seconds = 5.0
    max_jobs_per_worker: Annotated[int, Field(ge=0)] = 0
    worker_memory_limit: Annotated[int, Field(ge=0)] = 0
    queue_per_folder: Annotated[int, Field(ge=0)] = 0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: text: one line per record; json: one JSON object per line (journald, shippers).
    log_format: Literal["text", "json"] = "text"
    plugins: list[str] = Field(default_factory=list)
    #: Manifest callbacks: attempts after the first, first backoff (doubling), timeout.
    callback_retries: Annotated[int, Field(ge=0, le=20)] = 5
    callback_backoff: PositiveSeconds = 2.0
    callback_timeout: PositiveSeconds = 10.0


class HttpSettings(_Strict):
    """The ``[http]`` table: the one HTTP listener ("" turns it off)."""

    listen: str = "127.0.0.1:9180"
    #: When set, POST endpoints require "Authorization: Bearer <token>".
    token: str = Field(default="", repr=False)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value == "":
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT (e.g. 127.0.0.1:9180) or empty to turn it off")
        return value


def _default_profiles() -> dict[str, dict[str, Any]]:
    return {"default": {}}


class WorkflowSettings(_Strict):
    """A workflow of the operator's own: a chain of named steps with profiles.

    ``steps = ["office-to-pdf", "pdf-archive", "pdf-protect"]`` runs each step on
    the previous one's outputs; ``hotfolder workflows`` lists the step names.
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
    description: str = ""
    steps: Annotated[list[str], Field(min_length=1)]
    profiles: dict[str, dict[str, Any]] = Field(default_factory=_default_profiles)


class FolderSettings(_Strict):
    """One ``[[folders]]`` entry: an input folder mapped to a workflow and profile."""

    name: str
    path: Path
    input: Path = Path("in")
    output: Path = Path("out")
    error: Path = Path("error")
    archive: Path | None = Path("archive")
    workflow: str
    profile: str = "default"
    settle: Seconds = 2.0
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    recursive: bool = False
    timeout: PositiveSeconds = 600.0
    observer: ObserverKind | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    #: on: *.job.json files are manifests; required: files become jobs only through a
    #: manifest; off: *.job.json files are ordinary files.
    manifests: Literal["on", "required", "off"] = "on"
    #: Manifests may pick another workflow or profile than the folder's.
    allow_overrides: bool = False
    #: Seconds a manifest waits for the inputs it names before failing inputs_missing.
    manifest_timeout: PositiveSeconds = 3600.0
    #: Callback URLs must start with one of these; empty: no callbacks at all.
    callback_allow: list[str] = Field(default_factory=list)
    #: Key of the HMAC-SHA256 signature sent with every callback.
    callback_secret: str = Field(default="", repr=False)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "must be 1-64 letters, digits, '.', '_' or '-' (it is a metrics label)"
            )
        return value

    @field_validator("archive", mode="before")
    @classmethod
    def _empty_archive(cls, value: object) -> object:
        return None if value == "" else value

    def _under(self, sub: Path) -> Path:
        return sub if sub.is_absolute() else self.path / sub

    @property
    def input_dir(self) -> Path:
        """Absolute drop zone."""
        return self._under(self.input)

    @property
    def output_dir(self) -> Path:
        """Absolute folder for outputs and status files of successful jobs."""
        return self._under(self.output)

    @property
    def error_dir(self) -> Path:
        """Absolute folder for originals and status files of failed jobs."""
        return self._under(self.error)

    @property
    def archive_dir(self) -> Path | None:
        """Absolute folder for originals of successful jobs, or None to delete them."""
        return None if self.archive is None else self._under(self.archive)

    @property
    def work_dir(self) -> Path:
        """The daemon's work area: claimed inputs and running jobs live here."""
        return self.path / ".hotfolder"

    @property
    def excludes(self) -> tuple[str, ...]:
        """Built-in junk names plus the folder's own excludes."""
        return (*BUILTIN_EXCLUDES, *self.exclude)

    def resolved(self, base: Path) -> FolderSettings:
        """Return a copy whose root path is absolute, resolved against ``base``."""
        root = self.path if self.path.is_absolute() else base / self.path
        return self.model_copy(update={"path": Path(os.path.normpath(root))})


class CleanupSettings(_Strict):
    """The ``[cleanup]`` table: what expires, and when cleanup runs.

    Retentions are seconds; 0 keeps forever. Only journal rows expire by default:
    deleting users' files is something the operator turns on.
    """

    enabled: bool = True
    #: Run every this many seconds, unless ``cron`` (crontab syntax, UTC) is set.
    interval: PositiveSeconds = 3600.0
    cron: str = ""
    journal_retention: Seconds = 30 * 86400.0
    archive_retention: Seconds = 0.0
    status_retention: Seconds = 0.0
    output_retention: Seconds = 0.0
    #: A work dir with no journal row is reclaimed after this long untouched.
    orphan_grace: PositiveSeconds = 3600.0

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        if value:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"not a crontab expression ({exc}); e.g. '30 3 * * *'") from None
        return value


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="HOTFOLDER_",
        env_nested_delimiter="__",
        extra="forbid",
        hide_input_in_errors=True,  # options may hold passwords
    )

    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    cleanup: CleanupSettings = Field(default_factory=CleanupSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    folders: list[FolderSettings] = Field(default_factory=list)
    workflows: list[WorkflowSettings] = Field(default_factory=list)
    config_file: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then the TOML file's contents (passed as init values)."""
        return (env_settings, init_settings)

    def folder(self, name: str) -> FolderSettings:
        """Return the folder called ``name``."""
        for folder in self.folders:
            if folder.name == name:
                return folder
        raise KeyError(name)


def config_path(explicit: Path | str | None) -> Path:
    """The config file to read: the argument, else ``$HOTFOLDER_CONFIG``, else ./hotfolder.toml."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("HOTFOLDER_CONFIG") or "hotfolder.toml")


def _cross_problems(settings: Settings, folder_keys: Sequence[str]) -> list[Problem]:
    """Checks across tables, run on whatever validated (see :func:`read_settings`)."""
    problems: list[Problem] = []
    first: dict[str, str] = {}
    limit = settings.celery.visibility_timeout
    for key, folder in zip(folder_keys, settings.folders, strict=True):
        if folder.name in first:
            also = f"{folder.name!r} is used twice (also by {first[folder.name]})"
            problems.append((f"{key}.name", f"{also}; names must be unique"))
        first.setdefault(folder.name, key)
        # The broker hands a job still unacknowledged after the visibility timeout to
        # another worker: a folder timeout at or above it runs jobs twice.
        if settings.daemon.executor == "celery" and folder.timeout >= limit:
            problems.append(
                (
                    f"{key}.timeout",
                    f"{folder.timeout:g} must be below celery.visibility_timeout = {limit:g} "
                    "(jobs running longer go to a second worker); raise "
                    "visibility_timeout or lower the timeout",
                )
            )
    return problems


def _keys(table: str, kept: dict[str, list[int]], names: list[str]) -> list[str]:
    indices = kept.get(table, [])
    if len(indices) != len(names):  # nothing was left out, or the list came from the environment
        indices = list(range(len(names)))
    return [entry_key(table, index, name) for index, name in zip(indices, names, strict=True)]


class Reading(NamedTuple):
    """A config file validated as far as it goes: see :func:`read_settings`."""

    #: None only when nothing could be validated (unreadable file, bad environment).
    settings: Settings | None
    #: Every problem found, each ``(key, message)``.
    problems: list[Problem]
    #: The key of each of ``settings.folders`` as in the file (``folders[2](scans)``).
    folder_keys: list[str]
    #: The key of each of ``settings.workflows`` as in the file.
    workflow_keys: list[str]


def _toml(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise ConfigError([("", f"config file {file} does not exist or is not a file")])
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([("", f"not valid TOML: {exc}")], str(file)) from None
    except OSError as exc:
        raise ConfigError([("", f"cannot read the file: {exc.strerror}")], str(file)) from None


def read_settings(path: Path | str | None = None) -> Reading:
    """Validate the file and the environment; collect every schema and cross-table problem.

    When the schema fails, what did validate is salvaged (bad values at their
    defaults, entries without their required keys left out), so the checks that
    need whole settings still run and one pass reports everything. A file that
    cannot be read or parsed raises ConfigError: nothing else can be checked then.
    """
    file = config_path(path).absolute()
    data = _toml(file)
    kept: dict[str, list[int]] = {}
    problems: list[Problem] = []
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems = schema_problems(errors, data, Settings, hidden=("config_file",))
        pruned, kept = salvage(data, errors)
        try:
            settings = Settings(**pruned)
        except ValueError:  # the environment is wrong too: nothing more to check
            return Reading(None, problems, [], [])
    except ValueError as exc:  # pydantic-settings raises SettingsError for bad env JSON
        return Reading(None, [("environment", str(exc))], [], [])
    folder_keys = _keys("folders", kept, [f.name for f in settings.folders])
    workflow_keys = _keys("workflows", kept, [w.name for w in settings.workflows])
    problems += _cross_problems(settings, folder_keys)
    base = file.parent
    state_dir = settings.daemon.state_dir
    daemon = settings.daemon.model_copy(
        update={"state_dir": state_dir if state_dir.is_absolute() else base / state_dir}
    )
    resolved = settings.model_copy(
        update={
            "daemon": daemon,
            "folders": [folder.resolved(base) for folder in settings.folders],
            "config_file": file,
        }
    )
    return Reading(resolved, problems, folder_keys, workflow_keys)


def load_settings(path: Path | str | None = None) -> Settings:
    """Read, validate and resolve the configuration; raise ConfigError listing every problem."""
    reading = read_settings(path)
    if reading.problems or reading.settings is None:
        raise ConfigError(reading.problems, str(config_path(path).absolute()))
    return reading.settings
