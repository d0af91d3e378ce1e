"""pdf-optimize on real pikepdf: outputs checked for content, errors for their code."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import pikepdf
import pypdfium2
import pytest

from hotfolder.errors import HotfolderError
from hotfolder.workflows.base import StepContext, StepResult
from hotfolder.workflows.pdf import PDF_OPTIMIZE, engine_versions
from tests.samples import jpeg_bytes, pdf_bytes


def optimize(
    tmp_path: Path, data: bytes, profile: str = "default", **options: Any
) -> tuple[StepResult, StepContext]:
    source = tmp_path / "in.pdf"
    source.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    ctx = StepContext(
        "job", "report", PDF_OPTIMIZE.resolve_options(profile, options), logging.getLogger("t")
    )
    (step,) = PDF_OPTIMIZE.steps
    result = step.run([source], out, ctx)
    step.verify([source], result, ctx)
    return result, ctx


def text_of(path: Path, password: str | None = None) -> list[str]:
    document = pypdfium2.PdfDocument(path, password=password)
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


def failure_code(tmp_path: Path, data: bytes, **options: Any) -> str:
    with pytest.raises(HotfolderError) as caught:
        optimize(tmp_path, data, **options)
    return caught.value.code


def test_optimize_keeps_pages_and_text(tmp_path: Path) -> None:
    """The output has the same pages and text, named after the job."""
    result, _ctx = optimize(tmp_path, pdf_bytes(pages=3, text="Quarterly"))
    (output,) = result.outputs
    assert output.name == "report.pdf"
    assert [t.strip() for t in text_of(output)] == [f"Quarterly page {n}" for n in (1, 2, 3)]
    assert "3 page(s)" in result.message


def test_optimize_is_reproducible(tmp_path: Path) -> None:
    """The same input gives byte-identical output (deterministic /ID)."""
    outputs = []
    for attempt in ("a", "b"):
        (tmp_path / attempt).mkdir()
        result, _ = optimize(tmp_path / attempt, pdf_bytes(pages=2))
        outputs.append(result.outputs[0].read_bytes())
    assert outputs[0] == outputs[1]


def test_web_profile_linearizes(tmp_path: Path) -> None:
    """Profile web writes a linearized file."""
    result, _ = optimize(tmp_path, pdf_bytes(pages=2), "web")
    with pikepdf.open(result.outputs[0]) as pdf:
        assert pdf.is_linearized


def test_object_streams_generated(tmp_path: Path) -> None:
    """The default writes object streams; disable writes none."""
    result, _ = optimize(tmp_path, pdf_bytes(pages=5))
    assert b"/ObjStm" in result.outputs[0].read_bytes()
    plain = tmp_path / "plain"
    plain.mkdir()
    result, _ = optimize(plain, pdf_bytes(pages=5), **{"PDF.OBJECT_STREAMS": "disable"})
    assert b"/ObjStm" not in result.outputs[0].read_bytes()


def test_unused_resources_removed(tmp_path: Path) -> None:
    """A font no page uses is dropped from the page resources."""
    pdf = pikepdf.open(io.BytesIO(pdf_bytes()))
    unused = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Courier
        )
    )
    pdf.pages[0].Resources.Font.F9 = unused
    source = tmp_path / "src.pdf"
    pdf.save(source)
    result, _ = optimize(tmp_path, source.read_bytes())
    with pikepdf.open(result.outputs[0]) as out:
        assert set(out.pages[0].Resources.Font.keys()) == {"/F1"}


def test_password_list_tried_in_order_and_encryption_kept(tmp_path: Path) -> None:
    """The second password opens the file; the output needs the same password."""
    result, _ = optimize(
        tmp_path, pdf_bytes(pages=2, password="letmein"), **{"DOC.PASSWORD": ["no", "letmein"]}
    )
    output = result.outputs[0]
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(output)
    with pikepdf.open(output, password="letmein") as pdf:
        assert pdf.is_encrypted and len(pdf.pages) == 2


def test_single_password_string_accepted(tmp_path: Path) -> None:
    """DOC.PASSWORD may be a plain string."""
    result, _ = optimize(tmp_path, pdf_bytes(password="pw"), **{"DOC.PASSWORD": "pw"})
    assert result.facts["password"] == "pw"


@pytest.mark.parametrize(
    ("data", "options", "code"),
    [
        (pdf_bytes(password="letmein"), {}, "password_required"),
        (pdf_bytes(password="letmein"), {"DOC.PASSWORD": ["a", "b"]}, "password_incorrect"),
        (b"%PDF-1.7\n" + os.urandom(4000), {}, "corrupt_input"),
        (pdf_bytes(pages=30)[:3000], {}, "corrupt_input"),
        (jpeg_bytes(), {}, "unsupported_format"),
        (b"plain text, named .pdf", {}, "unsupported_format"),
        (pdf_bytes(), {"PDF.OBJECT_STREAMS": "sometimes"}, "option_invalid"),
    ],
)
def test_failures_have_codes(
    tmp_path: Path, data: bytes, options: dict[str, Any], code: str
) -> None:
    """Each kind of bad input fails with its own code."""
    assert failure_code(tmp_path, data, **options) == code


def test_repair_option_accepts_truncated_file_with_warnings(tmp_path: Path) -> None:
    """With PDF.REPAIR the repaired file is written and the repairs are warned about."""
    data = pdf_bytes(pages=4)
    cut = data[: data.rindex(b"xref")]
    result, ctx = optimize(tmp_path, cut, **{"PDF.REPAIR": True})
    assert len(text_of(result.outputs[0])) == 4
    assert any("qpdf repaired" in w for w in ctx.warnings)


def test_password_never_in_message(tmp_path: Path) -> None:
    """A wrong password is not echoed back into the status message."""
    with pytest.raises(HotfolderError) as caught:
        optimize(tmp_path, pdf_bytes(password="x"), **{"DOC.PASSWORD": ["hunter2"]})
    assert "hunter2" not in caught.value.message


def test_engine_versions() -> None:
    """The probed versions name pikepdf and qpdf."""
    versions = engine_versions()
    assert versions["pikepdf"] == pikepdf.__version__
    assert versions["qpdf"][0].isdigit()
