"""Workflows defined in the config chain built-in steps by name."""

from __future__ import annotations

import pytest

from hotfolder.config import WorkflowSettings
from hotfolder.errors import OptionInvalid
from hotfolder.workflows import registry


def test_chain_of_builtin_steps_gets_the_union_of_their_options() -> None:
    """A chain's options are its steps' options; its profiles are validated."""
    workflow = registry.define(
        WorkflowSettings(
            name="unit-chain",
            steps=["pdf-optimize"],
            profiles={"default": {}, "fast": {"PDF.LINEARIZE": True}},
        )
    )
    assert registry.get_workflow("unit-chain") is workflow
    assert "DOC.PASSWORD" in workflow.options
    assert workflow.resolve_options("fast", {})["PDF.LINEARIZE"] is True
    assert not workflow.multi_input


@pytest.mark.parametrize(
    ("definition", "complaint"),
    [
        (WorkflowSettings(name="x1", steps=["no-such-step"]), "Unknown step 'no-such-step'"),
        (
            WorkflowSettings(
                name="x2", steps=["pdf-optimize"], profiles={"default": {"PDF.NOPE": 1}}
            ),
            "no option 'PDF.NOPE'",
        ),
        (
            WorkflowSettings(
                name="x3", steps=["pdf-optimize"], profiles={"default": {"PDF.LINEARIZE": "x"}}
            ),
            "PDF.LINEARIZE",
        ),
        (WorkflowSettings(name="pdf-optimize", steps=["pdf-optimize"]), "built-in"),
    ],
)
def test_bad_definitions_are_refused(definition: WorkflowSettings, complaint: str) -> None:
    """Unknown steps, bad profile values and taken names are errors naming the problem."""
    with pytest.raises(OptionInvalid, match=complaint):
        registry.define(definition)


def test_configure_reports_problems_with_keys() -> None:
    """configure() returns (key, message) pairs like the rest of check-config."""
    problems = registry.configure(
        ["no_such_plugin_module"], [WorkflowSettings(name="x4", steps=["nope"])]
    )
    keys = [key for key, _ in problems]
    assert keys == ["daemon.plugins", "workflows[0](x4)"]
