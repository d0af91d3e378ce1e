"""The registry of workflows and steps: built-ins, plugins and the config's own chains.

Built-in workflows are defined exactly as users define theirs: a chain of named
steps plus profiles. Each built-in engine module exposes ``WORKFLOWS`` (its
workflows) and ``engine_versions()``; a workflow's steps become available by
name for chains declared in the config's ``[[workflows]]`` tables.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from hotfolder.config import WorkflowSettings
from hotfolder.config_problems import did_you_mean
from hotfolder.errors import OptionInvalid
from hotfolder.workflows.base import Step, Workflow

log = logging.getLogger("hotfolder.workflows")

#: Engine modules below ``hotfolder.workflows`` that provide the built-ins, in
#: the order ``hotfolder workflows`` lists them.
BUILTIN_MODULES = (
    "pdf",
    "image",
    "pdfa",
    "imagepdf",
    "render",
    "office",
    "pdfpages",
    "pdfprotect",
    "ocr",
)

_workflows: dict[str, Workflow] = {}
_steps: dict[str, Step] = {}
#: Steps that take all of a job's inputs at once (merge) rather than one file each.
_multi_input: set[str] = set()
_builtin_names: set[str] = set()


def _engine_modules() -> list[ModuleType]:
    return [importlib.import_module(f"hotfolder.workflows.{name}") for name in BUILTIN_MODULES]


def register(workflow: Workflow) -> None:
    """Add a workflow (from a plugin module) and its steps; names may not be taken twice."""
    if _workflows.get(workflow.name, workflow) is not workflow:
        raise ValueError(f"a workflow named {workflow.name!r} is already registered")
    _workflows[workflow.name] = workflow
    for step in workflow.steps:
        _steps.setdefault(step.name, step)
    if workflow.multi_input:
        _multi_input.add(workflow.steps[0].name)


def _register_builtins() -> None:
    for module in _engine_modules():
        for workflow in module.WORKFLOWS:
            register(workflow)
            _builtin_names.add(workflow.name)


_register_builtins()


def load_plugins(modules: Iterable[str]) -> None:
    """Import plugin modules; each calls :func:`register` for its workflows.

    Raises ImportError naming the module when one cannot be imported.
    """
    for module in modules:
        importlib.import_module(module)


def define(definition: WorkflowSettings) -> Workflow:
    """Build and register a workflow from the config's chain of step names.

    Raises OptionInvalid naming an unknown step or a bad profile value.
    """
    if definition.name in _builtin_names:
        raise OptionInvalid(f"{definition.name!r} is a built-in workflow; choose another name.")
    chain: list[Step] = []
    for name in definition.steps:
        step = _steps.get(name)
        if step is None:
            known = ", ".join(sorted(_steps))
            raise OptionInvalid(f"Unknown step {name!r}; known steps: {known}.")
        chain.append(step)
    for later in definition.steps[1:]:
        if later in _multi_input:
            raise OptionInvalid(
                f"Step {later!r} takes all of a job's inputs and can only come first."
            )
    workflow = Workflow(
        name=definition.name,
        description=definition.description or " -> ".join(definition.steps),
        steps=tuple(chain),
        profiles=definition.profiles,
        multi_input=definition.steps[0] in _multi_input,
    )
    for profile in workflow.profiles:
        workflow.resolve_options(profile, {})
    _workflows.pop(definition.name, None)
    register(workflow)
    return workflow


def configure(
    plugins: Sequence[str],
    definitions: Sequence[WorkflowSettings],
    keys: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """Load plugins, then define the config's workflows; return (key, message) problems.

    ``keys`` name each definition as in the file; by default ``workflows[i](name)``.
    """
    problems: list[tuple[str, str]] = []
    try:
        load_plugins(plugins)
    except ImportError as exc:
        problems.append(("daemon.plugins", f"cannot import plugin: {exc}"))
    if keys is None:
        keys = [f"workflows[{i}]({d.name})" for i, d in enumerate(definitions)]
    for key, definition in zip(keys, definitions, strict=True):
        try:
            define(definition)
        except OptionInvalid as exc:
            problems.append((key, exc.message))
    return problems


def workflows() -> Mapping[str, Workflow]:
    """Every known workflow by name."""
    return _workflows


def steps() -> Mapping[str, Step]:
    """Every known step by name (what ``[[workflows]] steps`` may name)."""
    return _steps


def get_workflow(name: str) -> Workflow:
    """Return the workflow called ``name`` or raise OptionInvalid naming the known ones."""
    try:
        return _workflows[name]
    except KeyError:
        known = ", ".join(sorted(_workflows))
        raise OptionInvalid(f"Unknown workflow {name!r}; known workflows: {known}.") from None


def check_folder(workflow: str, profile: str, options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Validate a folder's workflow, profile and options; return (key, message) problems."""
    wf = _workflows.get(workflow)
    if wf is None:
        known = ", ".join(sorted(_workflows))
        hint = did_you_mean(workflow, _workflows)
        return [("workflow", f"unknown workflow {workflow!r}{hint} (known: {known})")]
    problems: list[tuple[str, str]] = []
    if profile not in wf.profiles:
        known = ", ".join(sorted(wf.profiles))
        hint = did_you_mean(profile, wf.profiles)
        problems.append(
            ("profile", f"workflow {workflow} has no profile {profile!r}; known: {known}{hint}")
        )
        profile = "default" if "default" in wf.profiles else next(iter(wf.profiles))
    for name, value in options.items():
        if name not in wf.options:
            known = ", ".join(sorted(wf.options)) or "none"
            hint = did_you_mean(name, wf.options)
            problems.append((f"options.{name}", f"unknown option{hint} (known: {known})"))
            continue
        try:
            wf.resolve_options(profile, {name: value})
        except OptionInvalid as exc:
            problems.append((f"options.{name}", exc.message))
    return problems


def tool_versions() -> dict[str, str]:
    """Versions of the engines the built-in workflows use."""
    versions: dict[str, str] = {}
    for module in _engine_modules():
        versions.update(module.engine_versions())
    return versions


def log_tool_versions() -> None:
    """Log the engine versions once at start; warn about engines that are missing."""
    versions = tool_versions()
    log.info("engines: %s", ", ".join(f"{name} {version}" for name, version in versions.items()))
    missing = [name for name, version in versions.items() if version == "missing"]
    if missing:
        log.warning(
            "not installed: %s; workflows that need them fail with tool_missing",
            ", ".join(missing),
        )
