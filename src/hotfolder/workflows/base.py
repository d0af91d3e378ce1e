"""The step protocol: what every conversion step and workflow looks like.

A workflow is an ordered chain of steps. Each step takes the files the previous
step produced (the job's inputs for the first) and writes its own outputs into
a directory of its own, so that steps can be chained freely. A step declares
the job options it understands; a workflow's options are the union of its
steps' options, and a profile is a named set of values for them.

Steps run inside a worker process and must only read their inputs and write
below ``out_dir``. They raise :class:`hotfolder.errors.JobError` subclasses,
translating engine exceptions at their own boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from hotfolder.errors import OptionInvalid


@dataclass(frozen=True)
class OptionSpec:
    """One job option: its name, a type pydantic validates, default and help.

    ``type`` is any annotation pydantic accepts (``int``, ``Literal["a", "b"]``,
    ``Annotated[int, Field(ge=1)]``, ``list[str]`` …). ``secret`` options (passwords)
    are never logged, shown or written to a status file.
    """

    name: str
    type: Any
    default: Any
    help: str
    secret: bool = False

    def validate(self, value: Any) -> Any:
        """Return the value converted to the option's type, or raise OptionInvalid."""
        try:
            return TypeAdapter(self.type).validate_python(value)
        except ValidationError as exc:
            reason = "; ".join(err["msg"] for err in exc.errors(include_url=False))
            shown = "(hidden)" if self.secret else repr(value)
            raise OptionInvalid(
                f"Option {self.name} = {shown} is invalid: {reason}. {self.help}"
            ) from None


@dataclass
class StepContext:
    """What a step knows about the job it runs in."""

    job_id: str
    job_name: str
    options: Mapping[str, Any]
    log: logging.Logger | logging.LoggerAdapter[logging.Logger]
    warnings: list[str] = field(default_factory=list)
    #: Options of single inputs (a manifest's per-document password), by input name.
    document_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Where a long step reports pages done (the worker passes it on to the daemon).
    progress: Callable[[int, int], None] | None = None

    def report_progress(self, done: int, total: int) -> None:
        """Say that ``done`` of ``total`` pages are converted (shown in the job's status)."""
        if self.progress is not None:
            self.progress(done, total)

    def document_option(self, path: Path, name: str) -> Any:
        """The value of option ``name`` for the input at ``path``: its own, else the job's."""
        own = self.document_options.get(path.name, {})
        return own[name] if name in own else self.options[name]

    def warn(self, message: str) -> None:
        """Record a warning for the status file (and log it)."""
        self.warnings.append(message)
        self.log.warning("%s", message)


@dataclass(frozen=True)
class StepResult:
    """The files a step produced (below its ``out_dir``) and a summary sentence.

    ``facts`` carries what the step learned while converting (page counts, the
    password that opened a file) so that ``verify`` need not reopen the inputs.
    """

    outputs: list[Path]
    message: str
    facts: Mapping[str, Any] = field(default_factory=dict)


class Step(Protocol):
    """A conversion step. Implementations are stateless and picklable."""

    @property
    def name(self) -> str:
        """The step's name; it also names the step's work directory."""
        ...

    @property
    def options(self) -> tuple[OptionSpec, ...]:
        """The job options this step understands."""
        ...

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Convert ``inputs`` into files below ``out_dir`` named from ``ctx.job_name``.

        Output file names start with the job name: ``<job name>.pdf`` or
        ``<job name>-p001.png``; the publisher adds collision suffixes after it.
        """
        ...

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Reopen every output with an independent reader and check its promise.

        Raises :class:`hotfolder.errors.ToolFailed` when an output is broken
        (DESIGN.md §3, invariant 8).
        """
        ...


@dataclass(frozen=True)
class Workflow:
    """A named chain of steps with named profiles (sets of option values)."""

    name: str
    description: str
    steps: tuple[Step, ...]
    profiles: Mapping[str, Mapping[str, Any]]
    #: True when the first step takes all of a job's inputs at once (merge);
    #: otherwise a job with several inputs converts each of them.
    multi_input: bool = False

    @property
    def options(self) -> dict[str, OptionSpec]:
        """Every option the workflow's steps understand, by name."""
        specs: dict[str, OptionSpec] = {}
        for step in self.steps:
            for spec in step.options:
                specs.setdefault(spec.name, spec)
        return specs

    def resolve_options(self, profile: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Merge defaults < profile < overrides and validate every value.

        Raises OptionInvalid naming the first unknown option, unknown profile or
        bad value.
        """
        if profile not in self.profiles:
            known = ", ".join(sorted(self.profiles))
            raise OptionInvalid(
                f"Workflow {self.name} has no profile {profile!r}; choose one of: {known}."
            )
        specs = self.options
        merged: dict[str, Any] = {name: spec.default for name, spec in specs.items()}
        for source in (self.profiles[profile], overrides):
            for name, value in source.items():
                spec = specs.get(name)
                if spec is None:
                    known = ", ".join(sorted(specs)) or "none"
                    raise OptionInvalid(
                        f"Workflow {self.name} has no option {name!r}; known options: {known}."
                    )
                merged[name] = spec.validate(value)
        return merged


def human_bytes(size: int) -> str:
    """Format a byte count for a status message: ``950 B``, ``12.4 KB``, ``3.1 MB``."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def output_stem(inputs: Sequence[Path], source: Path, ctx: StepContext) -> str:
    """The base name for outputs a per-file step makes from ``source``.

    With one input the job name names the output (so a manifest's ``name`` wins);
    with several (a split's pages going on to another step) each keeps its own stem,
    which already starts with the job name.
    """
    return ctx.job_name if len(inputs) == 1 else source.stem
