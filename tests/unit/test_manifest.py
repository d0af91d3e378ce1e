"""Manifest parsing and planning: pure functions, every rejection names its field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hotfolder.config import FolderSettings
from hotfolder.errors import ManifestInvalid
from hotfolder.manifest import is_manifest, parse_manifest, plan


def parse(**fields: Any) -> Any:
    return parse_manifest(json.dumps(fields).encode())


def folder(**extra: Any) -> FolderSettings:
    settings = {"name": "f", "path": Path("/srv/f"), "workflow": "pdf-merge", **extra}
    return FolderSettings.model_validate(settings)


def test_inputs_as_names_or_objects_and_repeated_options_make_lists() -> None:
    """A string input is short for {"name": ...}; a repeated option name builds a list."""
    manifest = parse(
        inputs=["a.pdf", {"name": "b.pdf", "options": [{"name": "DOC.PASSWORD", "value": "x"}]}],
        options=[{"name": "DOC.PASSWORD", "value": "p1"}, {"name": "DOC.PASSWORD", "value": "p2"}],
    )
    assert manifest.input_names == ["a.pdf", "b.pdf"]
    assert manifest.document_options() == {"b.pdf": {"DOC.PASSWORD": "x"}}
    planned = plan(manifest, folder())
    assert planned.options == {"DOC.PASSWORD": ["p1", "p2"]}
    assert [(c.workflow, c.profile) for c in planned.conversions] == [("pdf-merge", "default")]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b'{"inputs": ["a.pdf",]}', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (json.dumps({"inputs": []}).encode(), "inputs"),
        (json.dumps({"inputs": ["../x.pdf"]}).encode(), "inputs.0.name"),
        (json.dumps({"inputs": ["/etc/passwd"]}).encode(), "inputs.0.name"),
        (json.dumps({"inputs": ["a\\b.pdf"]}).encode(), "inputs.0.name"),
        (json.dumps({"inputs": ["other.job.json"]}).encode(), "another manifest"),
        (json.dumps({"inputs": ["a.pdf", "a.pdf"]}).encode(), "more than once"),
        (json.dumps({"inputs": ["a.pdf"], "process": "maybe"}).encode(), "process"),
        (json.dumps({"inputs": ["a.pdf"], "Inputs": []}).encode(), "Inputs"),
        (json.dumps({"inputs": ["a.pdf"], "name": "../up"}).encode(), "name"),
        (b"[1, 2]", "manifest"),
        (b" " * (2 << 20), "at most"),
    ],
)
def test_rejections_name_the_field(data: bytes, field: str) -> None:
    """Each problem fails manifest_invalid and the message says where."""
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(data)
    assert field in caught.value.message
    assert caught.value.code == "manifest_invalid"


def test_overrides_need_the_folders_permission() -> None:
    """workflow/profile in a manifest fail unless allow_overrides; then they apply."""
    manifest = parse(inputs=["a.pdf"], workflow="pdf-split")
    with pytest.raises(ManifestInvalid, match="allow_overrides"):
        plan(manifest, folder())
    planned = plan(manifest, folder(allow_overrides=True, options={"MERGE.BOOKMARKS": False}))
    # The folder's options belong to its own workflow, not to the one chosen instead.
    assert planned.conversions[0].workflow == "pdf-split" and planned.options == {}


def test_conversions_with_suffixes_share_the_folder_options() -> None:
    """Each conversion keeps its own options and suffix; the first inherits the folder's."""
    manifest = parse(
        inputs=["a.pdf"],
        conversions=[{}, {"workflow": "pdf-to-image", "suffix": "-preview"}],
    )
    planned = plan(
        manifest, folder(allow_overrides=True, profile="default", options={"DOC.PASSWORD": "x"})
    )
    assert [(c.workflow, c.suffix) for c in planned.conversions] == [
        ("pdf-merge", ""),
        ("pdf-to-image", "-preview"),
    ]
    assert planned.options == {"DOC.PASSWORD": "x"}


def test_is_manifest() -> None:
    """Only names ending in .job.json (any case) with something before it."""
    assert is_manifest("batch.job.json") and is_manifest("X.JOB.JSON")
    assert not is_manifest(".job.json") and not is_manifest("job.json")
