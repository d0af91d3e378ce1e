"""Sidecar manifests: a ``*.job.json`` file that makes one job of several files.

The schema (camelCase, like the job APIs it mirrors) is documented in
docs/manifests.md. Parsing is pure: it reads bytes and returns a validated
:class:`Manifest` or raises :class:`ManifestInvalid` naming the field, so that
the status file can tell the user exactly what to fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from hotfolder.config import FolderSettings
from hotfolder.errors import ManifestInvalid
from hotfolder.models import ConversionSpec

MANIFEST_SUFFIX = ".job.json"
#: A manifest is a few KiB at most; anything bigger is not one.
MAX_MANIFEST_BYTES = 1 << 20


def is_manifest(name: str) -> bool:
    """True for file names ending in ``.job.json`` (any case)."""
    return name.lower().endswith(MANIFEST_SUFFIX) and len(name) > len(MANIFEST_SUFFIX)


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=AliasGenerator(validation_alias=to_camel),
        populate_by_name=True,
        frozen=True,
    )


class OptionValue(_Model):
    """One ``{"name": ..., "value": ...}`` pair; a name may repeat to make a list."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    value: Any


def merge_options(pairs: Iterable[OptionValue]) -> dict[str, Any]:
    """Turn name/value pairs into an option mapping; repeated names build a list."""
    merged: dict[str, Any] = {}
    for pair in pairs:
        if pair.name not in merged:
            merged[pair.name] = pair.value
            continue
        previous = merged[pair.name]
        values = previous if isinstance(previous, list) else [previous]
        extra = pair.value if isinstance(pair.value, list) else [pair.value]
        merged[pair.name] = [*values, *extra]
    return merged


def _safe_name(value: str) -> str:
    # Inputs are file names in the manifest's own folder: nothing that leaves it.
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\x00" in value:
        raise ValueError(
            "must be a plain file name in the manifest's folder (no '/', '..' or absolute paths)"
        )
    if is_manifest(value):
        raise ValueError("may not name another manifest")
    size = len(os.fsencode(value))
    if size > NAME_MAX:
        # Caught here, not by the first lstat: ENAMETOOLONG would keep the job waiting.
        raise ValueError(
            f"is {size} bytes long in UTF-8; file systems take names of at most "
            f"{NAME_MAX} bytes. Shorten the file name"
        )
    return value


#: The longest file name (in bytes) that Linux file systems accept.
NAME_MAX = 255


SafeName = Annotated[str, Field(min_length=1, max_length=255)]


class ManifestInput(_Model):
    """One input file, optionally with its own document options (e.g. a password)."""

    name: SafeName
    options: list[OptionValue] = Field(default_factory=list)

    _check_name = field_validator("name")(_safe_name)


class Conversion(_Model):
    """One target of a job: a workflow and profile with options, e.g. a PNG preview."""

    workflow: str | None = None
    profile: str | None = None
    options: list[OptionValue] = Field(default_factory=list)
    #: Appended to the job name for this conversion's outputs (``-preview``).
    suffix: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9._-]*$")] = ""


class Manifest(_Model):
    """A validated manifest."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    inputs: Annotated[list[ManifestInput], Field(min_length=1, max_length=1000)]
    workflow: str | None = None
    profile: str | None = None
    options: list[OptionValue] = Field(default_factory=list)
    conversions: Annotated[list[Conversion], Field(max_length=20)] = Field(default_factory=list)
    process: bool = True
    callback: Annotated[str, Field(max_length=2000)] | None = None

    @field_validator("name")
    @classmethod
    def _plain_job_name(cls, value: str | None) -> str | None:
        if value is not None:
            _safe_name(value)
        return value

    @field_validator("inputs", mode="before")
    @classmethod
    def _plain_names(cls, value: Any) -> Any:
        # "a.pdf" is short for {"name": "a.pdf"}.
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("inputs")
    @classmethod
    def _distinct_inputs(cls, value: list[ManifestInput]) -> list[ManifestInput]:
        names = [item.name for item in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"names {', '.join(map(repr, duplicates))} more than once")
        return value

    @property
    def input_names(self) -> list[str]:
        """The input file names, in order."""
        return [item.name for item in self.inputs]

    def document_options(self) -> dict[str, dict[str, Any]]:
        """Per-input options by input name (only inputs that have some)."""
        return {item.name: merge_options(item.options) for item in self.inputs if item.options}


def parse_manifest(data: bytes) -> Manifest:
    """Validate manifest bytes; raise ManifestInvalid naming the field and the problem."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestInvalid(
            f"The manifest is {len(data)} bytes; a manifest may be at most "
            f"{MAX_MANIFEST_BYTES} bytes."
        )
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ManifestInvalid("The manifest is not UTF-8 text. Save it as UTF-8 JSON.") from None
    except json.JSONDecodeError as exc:
        raise ManifestInvalid(
            f"The manifest is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}. Fix it and drop it again."
        ) from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors(include_url=False)[:5])
        raise ManifestInvalid(
            f"The manifest does not match the schema: {problems}. See docs/manifests.md."
        ) from None


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location or 'manifest'}: {message}"


@dataclass(frozen=True)
class Plan:
    """What a manifest asks of a folder: conversions, shared and per-document options."""

    conversions: list[ConversionSpec]
    options: dict[str, object]
    documents: dict[str, dict[str, object]]


def _choose(
    folder: FolderSettings, workflow: str | None, profile: str | None, where: str
) -> tuple[str, str]:
    chosen = workflow or folder.workflow
    if (chosen != folder.workflow or (profile and profile != folder.profile)) and not (
        folder.allow_overrides
    ):
        raise ManifestInvalid(
            f"{where} asks for workflow {chosen!r} profile {profile or folder.profile!r}, but "
            f"folder {folder.name!r} runs {folder.workflow}/{folder.profile} and does not let "
            "manifests choose (allow_overrides = false). Remove workflow and profile from the "
            "manifest, or drop it into a folder set up for that workflow."
        )
    default_profile = folder.profile if chosen == folder.workflow else "default"
    return chosen, profile or default_profile


def plan(manifest: Manifest, folder: FolderSettings) -> Plan:
    """Resolve the manifest against its folder; raise ManifestInvalid if it asks too much."""
    workflow, profile = _choose(folder, manifest.workflow, manifest.profile, "The manifest")
    options: dict[str, object] = dict(folder.options) if workflow == folder.workflow else {}
    options.update(merge_options(manifest.options))
    if not manifest.conversions:
        conversions = [ConversionSpec(workflow=workflow, profile=profile)]
    else:
        conversions = []
        for index, conversion in enumerate(manifest.conversions):
            own_workflow, own_profile = _choose(
                folder,
                conversion.workflow or workflow,
                conversion.profile
                or (profile if conversion.workflow in (None, workflow) else None),
                f"conversions[{index}]",
            )
            conversions.append(
                ConversionSpec(
                    workflow=own_workflow,
                    profile=own_profile,
                    options=merge_options(conversion.options),
                    suffix=conversion.suffix,
                )
            )
    documents = {name: dict(values) for name, values in manifest.document_options().items()}
    return Plan(conversions, options, documents)
