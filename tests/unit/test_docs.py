"""The documentation names every workflow, profile and option the code has."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotfolder.workflows.registry import workflows

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DOC = (ROOT / "docs" / "workflows.md").read_text()
README = (ROOT / "README.md").read_text()
BUILTIN = sorted(name for name in workflows() if not name.startswith("test-"))


@pytest.mark.parametrize("name", BUILTIN)
def test_workflow_documented(name: str) -> None:
    """Each built-in workflow has a README row and a docs section with all its options."""
    workflow = workflows()[name]
    assert f"| `{name}` |" in README
    assert f"## `{name}`" in WORKFLOWS_DOC
    for option in workflow.options:
        assert f"| `{option}` |" in WORKFLOWS_DOC, option
    for profile in workflow.profiles:
        assert f"| `{profile}` |" in WORKFLOWS_DOC, profile


def test_every_error_code_is_documented() -> None:
    """docs/status.md explains each code a status file can carry."""
    from hotfolder.errors import ERROR_CODES

    status_doc = (ROOT / "docs" / "status.md").read_text()
    missing = [code for code in ERROR_CODES if f"| `{code}` |" not in status_doc]
    assert missing == []
