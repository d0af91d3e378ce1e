"""The registry of built-in workflows and the engine versions they use."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from hotfolder.errors import OptionInvalid
from hotfolder.workflows import image, pdf
from hotfolder.workflows.base import Workflow

_BUILTIN: dict[str, Workflow] = {wf.name: wf for wf in (pdf.PDF_OPTIMIZE, image.IMAGE_CONVERT)}


def register(workflow: Workflow) -> None:
    """Add a workflow (from a plugin module); a name may not be taken twice."""
    if _BUILTIN.get(workflow.name, workflow) is not workflow:
        raise ValueError(f"a workflow named {workflow.name!r} is already registered")
    _BUILTIN[workflow.name] = workflow


def load_plugins(modules: Iterable[str]) -> None:
    """Import plugin modules; each calls :func:`register` for its workflows.

    Raises ImportError naming the module when one cannot be imported.
    """
    for module in modules:
        importlib.import_module(module)


def workflows() -> Mapping[str, Workflow]:
    """Every known workflow by name."""
    return _BUILTIN


def get_workflow(name: str) -> Workflow:
    """Return the workflow called ``name`` or raise OptionInvalid naming the known ones."""
    try:
        return _BUILTIN[name]
    except KeyError:
        known = ", ".join(sorted(_BUILTIN))
        raise OptionInvalid(f"Unknown workflow {name!r}; known workflows: {known}.") from None


def check_folder(workflow: str, profile: str, options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Validate a folder's workflow, profile and options; return (key, message) problems."""
    try:
        wf = get_workflow(workflow)
    except OptionInvalid as exc:
        return [("workflow", exc.message)]
    if profile not in wf.profiles:
        known = ", ".join(sorted(wf.profiles))
        return [("profile", f"workflow {workflow} has no profile {profile!r}; known: {known}")]
    problems: list[tuple[str, str]] = []
    for name, value in options.items():
        try:
            wf.resolve_options(profile, {name: value})
        except OptionInvalid as exc:
            problems.append((f"options.{name}", exc.message))
    return problems


def tool_versions() -> dict[str, str]:
    """Versions of the engines the built-in workflows use, probed once."""
    versions: dict[str, str] = {}
    versions.update(pdf.engine_versions())
    versions.update(image.engine_versions())
    return versions
