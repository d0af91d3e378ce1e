"""pdf-merge, pdf-split, pdf-protect and pdf-unprotect on real pikepdf, checked with pdfium."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pikepdf
import pypdfium2
import pypdfium2.raw
import pytest

from hotfolder.errors import HotfolderError, OptionInvalid, ToolFailed
from hotfolder.workflows.base import StepContext, StepResult, Workflow
from hotfolder.workflows.pdfpages import PDF_MERGE, PDF_SPLIT
from hotfolder.workflows.pdfprotect import PDF_PROTECT, PDF_UNPROTECT
from hotfolder.workflows.registry import workflows
from tests.samples import jpeg_bytes, pdf_bytes

OWNER = {"PROTECT.OWNER_PASSWORD": "owner-secret"}


def run(
    workflow: Workflow,
    tmp_path: Path,
    files: Mapping[str, bytes],
    profile: str = "default",
    documents: Mapping[str, Mapping[str, Any]] | None = None,
    **options: Any,
) -> tuple[StepResult, StepContext]:
    """Run the workflow's step on ``files`` (name -> bytes, in order) and verify it."""
    inputs = []
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        inputs.append(path)
    out = tmp_path / "out"
    out.mkdir()
    ctx = StepContext(
        "job",
        "report",
        workflow.resolve_options(profile, options),
        logging.getLogger("t"),
        document_options=documents or {},
    )
    (step,) = workflow.steps
    result = step.run(inputs, out, ctx)
    step.verify(inputs, result, ctx)
    return result, ctx


def failure(workflow: Workflow, tmp_path: Path, files: Mapping[str, bytes], **options: Any) -> str:
    with pytest.raises(HotfolderError) as caught:
        run(workflow, tmp_path, files, **options)
    return caught.value.code


def texts(path: Path, password: str | None = None) -> list[str]:
    document = pypdfium2.PdfDocument(path, password=password)
    try:
        return [page.get_textpage().get_text_range().strip() for page in document]
    finally:
        document.close()


def toc(path: Path) -> list[tuple[int, str, int]]:
    """(level, title, page index) of every bookmark, as pdfium reads them."""
    document = pypdfium2.PdfDocument(path)
    try:
        return [
            (mark.level, mark.get_title(), mark.get_dest().get_index())
            for mark in document.get_toc()
        ]
    finally:
        document.close()


def with_bookmarks(pages: int, text: str, marks: list[tuple[str, int]]) -> bytes:
    """A PDF whose top-level bookmarks lead to the given 0-based pages."""
    pdf = pikepdf.open(io.BytesIO(pdf_bytes(pages=pages, text=text)))
    with pdf.open_outline() as outline:
        for title, page in marks:
            outline.root.append(pikepdf.OutlineItem(title, page))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def protected(data: bytes, owner: str, user: str, allow: pikepdf.Permissions) -> bytes:
    pdf = pikepdf.open(io.BytesIO(data))
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(owner=owner, user=user, R=6, allow=allow))
    return out.getvalue()


# --- pdf-merge -----------------------------------------------------------------------


def test_merge_keeps_order_pages_and_text(tmp_path: Path) -> None:
    """All inputs in the given order make one file named after the job."""
    files = {
        "b-first.pdf": pdf_bytes(pages=2, text="First"),
        "a-second.pdf": pdf_bytes(pages=1, text="Second"),
        "c-third.pdf": pdf_bytes(pages=3, text="Third"),
    }
    result, ctx = run(PDF_MERGE, tmp_path, files)
    (output,) = result.outputs
    assert output.name == "report.pdf"
    assert texts(output) == [
        "First page 1",
        "First page 2",
        "Second page 1",
        "Third page 1",
        "Third page 2",
        "Third page 3",
    ]
    assert "3 file(s) into 6 page(s)" in result.message
    assert not ctx.warnings
    assert PDF_MERGE.multi_input


def test_merge_bookmark_per_input_holds_its_own_bookmarks(tmp_path: Path) -> None:
    """Each input gets a bookmark named after it; its bookmarks nest below, retargeted."""
    files = {
        "intro.pdf": pdf_bytes(pages=1, text="Intro"),
        "manual.pdf": with_bookmarks(3, "Manual", [("Setup", 0), ("Usage", 2)]),
    }
    result, _ = run(PDF_MERGE, tmp_path, files)
    assert toc(result.outputs[0]) == [
        (0, "intro", 0),
        (0, "manual", 1),
        (1, "Setup", 1),
        (1, "Usage", 3),
    ]


def test_merge_without_bookmarks_keeps_inputs_bookmarks_flat(tmp_path: Path) -> None:
    """MERGE.BOOKMARKS = false adds nothing; the inputs' own bookmarks stay, retargeted."""
    files = {
        "one.pdf": with_bookmarks(2, "One", [("One end", 1)]),
        "two.pdf": with_bookmarks(2, "Two", [("Two start", 0)]),
    }
    result, _ = run(PDF_MERGE, tmp_path, files, **{"MERGE.BOOKMARKS": False})
    assert toc(result.outputs[0]) == [(0, "One end", 1), (0, "Two start", 2)]


def test_merge_opens_protected_inputs_and_says_output_is_not(tmp_path: Path) -> None:
    """A per-document password opens one input; the merged file is unencrypted, with a warning."""
    files = {
        "open.pdf": pdf_bytes(pages=1, text="Open"),
        "locked.pdf": pdf_bytes(pages=2, text="Locked", password="pw1"),
    }
    result, ctx = run(
        PDF_MERGE, tmp_path, files, documents={"locked.pdf": {"DOC.PASSWORD": ["pw1"]}}
    )
    output = result.outputs[0]
    with pikepdf.open(output) as pdf:
        assert not pdf.is_encrypted
    assert texts(output) == ["Open page 1", "Locked page 1", "Locked page 2"]
    assert any("'locked.pdf' was password-protected" in w for w in ctx.warnings)
    assert not any("pw1" in w for w in ctx.warnings)


def test_merge_input_without_pages_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """An empty PDF adds no page and no bookmark; the status says so."""
    empty = io.BytesIO()
    pikepdf.new().save(empty)
    files = {"one.pdf": pdf_bytes(text="One"), "empty.pdf": empty.getvalue()}
    result, ctx = run(PDF_MERGE, tmp_path, files)
    assert texts(result.outputs[0]) == ["One page 1"]
    assert toc(result.outputs[0]) == [(0, "one", 0)]
    assert any("'empty.pdf' has no pages" in w for w in ctx.warnings)


@pytest.mark.parametrize(
    ("second", "options", "code"),
    [
        (pdf_bytes(password="pw"), {}, "password_required"),
        (pdf_bytes(password="pw"), {"DOC.PASSWORD": ["wrong"]}, "password_incorrect"),
        (jpeg_bytes(), {}, "unsupported_format"),
        (pdf_bytes(pages=20)[:2000], {}, "corrupt_input"),
    ],
)
def test_merge_fails_on_one_bad_input(
    tmp_path: Path, second: bytes, options: dict[str, Any], code: str
) -> None:
    """One input that cannot be read fails the merge with its own code."""
    files = {"good.pdf": pdf_bytes(), "bad.pdf": second}
    assert failure(PDF_MERGE, tmp_path, files, **options) == code


# --- pdf-split -----------------------------------------------------------------------


def test_split_default_writes_one_file_per_page(tmp_path: Path) -> None:
    """The default profile splits every page into <job>-pNNN.pdf."""
    result, _ = run(PDF_SPLIT, tmp_path, {"in.pdf": pdf_bytes(pages=3, text="Split")})
    assert [p.name for p in result.outputs] == [
        "report-p001.pdf",
        "report-p002.pdf",
        "report-p003.pdf",
    ]
    assert [texts(p) for p in result.outputs] == [[f"Split page {n}"] for n in (1, 2, 3)]
    assert "3 page(s) into 3 file(s)" in result.message


def test_split_every_n_pages_names_first_page(tmp_path: Path) -> None:
    """SPLIT.EVERY = 2 on 5 pages: two pairs and a last single page."""
    result, _ = run(PDF_SPLIT, tmp_path, {"in.pdf": pdf_bytes(pages=5)}, **{"SPLIT.EVERY": 2})
    assert [p.name for p in result.outputs] == [
        "report-p001.pdf",
        "report-p003.pdf",
        "report-p005.pdf",
    ]
    assert [len(texts(p)) for p in result.outputs] == [2, 2, 1]


def test_split_ranges(tmp_path: Path) -> None:
    """SPLIT.RANGES writes one file per range, named after its first and last page."""
    result, _ = run(
        PDF_SPLIT,
        tmp_path,
        {"in.pdf": pdf_bytes(pages=6, text="R")},
        **{"SPLIT.RANGES": "1-3, 4,5-"},
    )
    assert [p.name for p in result.outputs] == [
        "report-p001-003.pdf",
        "report-p004.pdf",
        "report-p005-006.pdf",
    ]
    assert [texts(p) for p in result.outputs] == [
        ["R page 1", "R page 2", "R page 3"],
        ["R page 4"],
        ["R page 5", "R page 6"],
    ]


def test_split_pads_page_numbers_to_the_page_count(tmp_path: Path) -> None:
    """With 1000 pages or more, names get four digits so they sort."""
    result, _ = run(
        PDF_SPLIT, tmp_path, {"in.pdf": pdf_bytes(pages=1001)}, **{"SPLIT.RANGES": "7,999-"}
    )
    assert [p.name for p in result.outputs] == ["report-p0007.pdf", "report-p0999-1001.pdf"]


def test_split_carries_bookmarks_of_each_part(tmp_path: Path) -> None:
    """A bookmark goes with the part that holds its page."""
    data = with_bookmarks(4, "B", [("Start", 0), ("Appendix", 3)])
    result, _ = run(PDF_SPLIT, tmp_path, {"in.pdf": data}, **{"SPLIT.EVERY": 2})
    assert [toc(p) for p in result.outputs] == [[(0, "Start", 0)], [(0, "Appendix", 1)]]


def test_split_several_inputs_keep_their_stems(tmp_path: Path) -> None:
    """Files from an earlier step are split each under its own name."""
    files = {"report-a.pdf": pdf_bytes(pages=2), "report-b.pdf": pdf_bytes(pages=1)}
    result, _ = run(PDF_SPLIT, tmp_path, files)
    assert [p.name for p in result.outputs] == [
        "report-a-p001.pdf",
        "report-a-p002.pdf",
        "report-b-p001.pdf",
    ]


def test_split_protected_input_warns_that_parts_are_not(tmp_path: Path) -> None:
    """DOC.PASSWORD opens the input; the parts are unencrypted and the status says so."""
    result, ctx = run(
        PDF_SPLIT,
        tmp_path,
        {"in.pdf": pdf_bytes(pages=2, text="S", password="pw")},
        **{"DOC.PASSWORD": "pw"},
    )
    assert [texts(p) for p in result.outputs] == [["S page 1"], ["S page 2"]]
    assert any("split files are not" in w for w in ctx.warnings)


@pytest.mark.parametrize(
    ("ranges", "complaint"),
    [("2-12", r"has 10 page\(s\)"), ("11-", r"has 10 page\(s\)"), ("1-3,1-3", "twice")],
)
def test_split_ranges_beyond_the_document_are_option_invalid(
    tmp_path: Path, ranges: str, complaint: str
) -> None:
    """Ranges that do not fit the document fail with option_invalid naming the page count."""
    with pytest.raises(OptionInvalid, match=complaint):
        run(PDF_SPLIT, tmp_path, {"in.pdf": pdf_bytes(pages=10)}, **{"SPLIT.RANGES": ranges})


@pytest.mark.parametrize(
    "options",
    [
        {"SPLIT.RANGES": "1-x"},
        {"SPLIT.RANGES": "0-2"},
        {"SPLIT.RANGES": "5-3"},
        {"SPLIT.RANGES": "1,,2"},
        {"SPLIT.EVERY": 0},
    ],
)
def test_split_bad_options_are_refused_before_any_file(options: dict[str, Any]) -> None:
    """Malformed ranges and a zero page count fail when options are resolved (config load)."""
    with pytest.raises(OptionInvalid, match=next(iter(options))):
        PDF_SPLIT.resolve_options("default", options)


# --- pdf-protect ---------------------------------------------------------------------


def pdfium_opens(path: Path, password: str | None) -> bool:
    try:
        pypdfium2.PdfDocument(path, password=password).close()
    except pypdfium2.PdfiumError:
        return False
    return True


def test_protect_with_user_password_and_default_rights(tmp_path: Path) -> None:
    """AES-256: the user password is needed; it allows print and copy, nothing else."""
    result, _ = run(
        PDF_PROTECT,
        tmp_path,
        {"in.pdf": pdf_bytes(pages=2, text="Secret")},
        **OWNER,
        **{"PROTECT.USER_PASSWORD": "reader"},
    )
    output = result.outputs[0]
    assert output.name == "report.pdf"
    assert not pdfium_opens(output, None)
    assert not pdfium_opens(output, "wrong")
    assert texts(output, "reader") == ["Secret page 1", "Secret page 2"]
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(output)
    with pikepdf.open(output, password="reader") as pdf:
        assert pdf.encryption.R == 6
        assert pdf.encryption.bits == 256
        assert pdf.encryption.stream_method.name == "aesv3"
        assert pdf.allow == pikepdf.Permissions(
            accessibility=True,
            extract=True,
            print_lowres=True,
            print_highres=True,
            modify_annotation=False,
            modify_assembly=False,
            modify_form=False,
            modify_other=False,
        )
        assert not pdf.owner_password_matched
    with pikepdf.open(output, password="owner-secret") as pdf:
        assert pdf.owner_password_matched
    assert "needs a password to open" in result.message
    assert "owner-secret" not in result.message and "reader" not in result.message


def test_protect_without_user_password_enforces_rights(tmp_path: Path) -> None:
    """An empty user password opens the file; the view-only profile grants no rights."""
    result, _ = run(PDF_PROTECT, tmp_path, {"in.pdf": pdf_bytes()}, "view-only", **OWNER)
    output = result.outputs[0]
    with pikepdf.open(output) as pdf:
        assert pdf.is_encrypted and pdf.user_password_matched
        allow = pdf.allow
    assert not any((allow.extract, allow.print_lowres, allow.print_highres, allow.modify_other))
    assert not any((allow.modify_annotation, allow.modify_form, allow.modify_assembly))
    document = pypdfium2.PdfDocument(output)
    assert pypdfium2.raw.FPDF_GetSecurityHandlerRevision(document.raw) == 6
    document.close()
    assert "opens without a password" in result.message
    assert "viewing only" in result.message


def test_protect_rights_from_a_comma_separated_string(tmp_path: Path) -> None:
    """PROTECT.ALLOW = "print, fill-forms" grants exactly those."""
    result, _ = run(
        PDF_PROTECT,
        tmp_path,
        {"in.pdf": pdf_bytes()},
        **OWNER,
        **{"PROTECT.ALLOW": "print, fill-forms"},
    )
    with pikepdf.open(result.outputs[0]) as pdf:
        allow = pdf.allow
    assert allow.print_highres and allow.modify_form
    assert not (allow.extract or allow.modify_other or allow.modify_annotation)


def test_protect_rekeys_a_protected_input(tmp_path: Path) -> None:
    """An input opened with DOC.PASSWORD gets the new passwords; the old one no longer opens it."""
    result, _ = run(
        PDF_PROTECT,
        tmp_path,
        {"in.pdf": pdf_bytes(text="Old", password="old")},
        **OWNER,
        **{"DOC.PASSWORD": "old", "PROTECT.USER_PASSWORD": "new"},
    )
    output = result.outputs[0]
    assert not pdfium_opens(output, "old")
    assert texts(output, "new") == ["Old page 1"]


def test_protect_needs_an_owner_password(tmp_path: Path) -> None:
    """Without an owner password nothing is written: option_invalid says what to set."""
    with pytest.raises(OptionInvalid, match="needs an owner password") as caught:
        run(PDF_PROTECT, tmp_path, {"in.pdf": pdf_bytes()}, **{"PROTECT.USER_PASSWORD": "u"})
    assert "PROTECT.OWNER_PASSWORD" in caught.value.message
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"PROTECT.OWNER_PASSWORD": "x" * 128}, "127 bytes"),
        ({"PROTECT.USER_PASSWORD": "ü" * 64}, "127 bytes"),
        ({"PROTECT.ALLOW": ["print", "fly"]}, "PROTECT.ALLOW"),
    ],
)
def test_protect_bad_options_refused_at_resolve(options: dict[str, Any], complaint: str) -> None:
    """Too long passwords and unknown rights fail at config load; passwords are not echoed."""
    with pytest.raises(OptionInvalid, match=complaint) as caught:
        PDF_PROTECT.resolve_options("default", options)
    assert "xxxx" not in caught.value.message and "üü" not in caught.value.message


def test_protect_refuses_owner_equal_to_user(tmp_path: Path) -> None:
    """The same owner and user password would give every reader every right."""
    options = {"PROTECT.OWNER_PASSWORD": "same", "PROTECT.USER_PASSWORD": "same"}
    with pytest.raises(OptionInvalid, match="are the same") as caught:
        run(PDF_PROTECT, tmp_path, {"in.pdf": pdf_bytes()}, **options)
    assert "same'" not in caught.value.message


def test_password_options_are_secret() -> None:
    """Every password option is secret: never logged or written to a status file."""
    for workflow in (PDF_MERGE, PDF_SPLIT, PDF_PROTECT, PDF_UNPROTECT):
        for name, spec in workflow.options.items():
            assert spec.secret == name.endswith("PASSWORD"), name


# --- pdf-unprotect -------------------------------------------------------------------


def test_unprotect_removes_password_and_restrictions(tmp_path: Path) -> None:
    """DOC.PASSWORD opens the file; the output opens anywhere, unrestricted, same pages."""
    data = protected(pdf_bytes(pages=2, text="Free"), "o", "u", pikepdf.Permissions(extract=False))
    result, _ = run(PDF_UNPROTECT, tmp_path, {"in.pdf": data}, **{"DOC.PASSWORD": "u"})
    output = result.outputs[0]
    with pikepdf.open(output) as pdf:
        assert not pdf.is_encrypted
        assert pdf.allow.extract
    assert texts(output) == ["Free page 1", "Free page 2"]
    assert "1 of 1 file(s)" in result.message


def test_unprotect_restrictions_only_file_needs_no_password(tmp_path: Path) -> None:
    """A file with only an owner password (restrictions) opens without DOC.PASSWORD."""
    data = protected(pdf_bytes(), "o", "", pikepdf.Permissions(print_highres=False))
    result, _ = run(PDF_UNPROTECT, tmp_path, {"in.pdf": data})
    with pikepdf.open(result.outputs[0]) as pdf:
        assert not pdf.is_encrypted


def test_unprotect_unencrypted_input_is_written_with_a_warning(tmp_path: Path) -> None:
    """An input that was not protected passes through, and the status says so."""
    result, ctx = run(PDF_UNPROTECT, tmp_path, {"in.pdf": pdf_bytes(pages=2)})
    assert len(texts(result.outputs[0])) == 2
    assert any("was not password-protected" in w for w in ctx.warnings)
    assert "0 of 1 file(s)" in result.message


@pytest.mark.parametrize(
    ("options", "code"),
    [({}, "password_required"), ({"DOC.PASSWORD": ["a", "b"]}, "password_incorrect")],
)
def test_unprotect_wrong_or_missing_password(
    tmp_path: Path, options: dict[str, Any], code: str
) -> None:
    """Without the right password nothing is decrypted."""
    data = pdf_bytes(password="right")
    assert failure(PDF_UNPROTECT, tmp_path, {"in.pdf": data}, **options) == code


@pytest.mark.parametrize(
    ("workflow", "output", "facts", "options"),
    [
        (PDF_PROTECT, pdf_bytes(), {"pages": [1]}, OWNER),
        (
            PDF_PROTECT,
            protected(pdf_bytes(), "owner-secret", "", pikepdf.Permissions()),
            {"pages": [1]},
            OWNER,
        ),
        (PDF_UNPROTECT, pdf_bytes(password="x"), {"pages": [1]}, {}),
        (PDF_UNPROTECT, pdf_bytes(pages=2), {"pages": [1]}, {}),
        (PDF_SPLIT, pdf_bytes(pages=2), {"pages": [1]}, {}),
        (PDF_MERGE, pdf_bytes(pages=2), {"pages": [1, 2], "titles": ["a", "b"]}, {}),
    ],
)
def test_verify_refuses_outputs_that_break_the_promise(
    tmp_path: Path,
    workflow: Workflow,
    output: bytes,
    facts: dict[str, Any],
    options: dict[str, Any],
) -> None:
    """Unprotected, wrongly permitted, still encrypted or miscounted outputs are tool_failed."""
    path = tmp_path / "out.pdf"
    path.write_bytes(output)
    ctx = StepContext(
        "job", "out", workflow.resolve_options("default", options), logging.getLogger()
    )
    (step,) = workflow.steps
    with pytest.raises(ToolFailed):
        step.verify([path], StepResult([path], "", facts), ctx)


def test_workflows_are_registered() -> None:
    """The four workflows are built-ins."""
    assert {"pdf-merge", "pdf-split", "pdf-protect", "pdf-unprotect"} <= set(workflows())
