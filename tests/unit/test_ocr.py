"""pdf-ocr on real OCRmyPDF and Tesseract: text found, no Ghostscript, text kept."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pikepdf
import pikepdf.pdfa
import pytest

from hotfolder.errors import HotfolderError, OptionInvalid
from hotfolder.workflows import ocrprogress
from hotfolder.workflows.base import StepContext, StepResult
from hotfolder.workflows.ocr import PDF_OCR, cpu_share, engine_versions
from hotfolder.workflows.ocroptions import installed_languages
from hotfolder.workflows.pdfa import page_texts
from tests.scans import LINES, scan_pdf

STEP = PDF_OCR.steps[0]


@pytest.fixture
def no_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with the OCR programs and without ``gs``: any Ghostscript call would fail."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("tesseract", "unpaper", "jbig2dec"):
        found = shutil.which(program)
        assert found, f"{program} is installed by scripts/setup.sh"
        (bin_dir / program).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert shutil.which("gs") is None


def ocr(
    tmp_path: Path, data: bytes, profile: str = "default", **options: Any
) -> tuple[StepResult, StepContext, list[tuple[int, int]]]:
    source = tmp_path / "in.pdf"
    source.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    reports: list[tuple[int, int]] = []
    ctx = StepContext(
        "job",
        "scan",
        PDF_OCR.resolve_options(profile, options),
        logging.getLogger("t"),
        progress=lambda done, total: reports.append((done, total)),
    )
    result = STEP.run([source], out, ctx)
    STEP.verify([source], result, ctx)
    return result, ctx, reports


def test_scan_becomes_valid_searchable_pdfa_without_ghostscript(tmp_path, no_ghostscript) -> None:
    """Two scanned pages, one upside down: both read, upright, PDF/A-2b, progress per page."""
    pages = scan_pdf(dpi=150)
    # Orientation detection needs a few lines of text to be confident enough to turn.
    upside_down = scan_pdf(dpi=200, rotate=180, lines=LINES * 3, height_in=3.5)
    merged = pikepdf.new()
    for data in (pages, upside_down):
        merged.pages.extend(pikepdf.open(_write(tmp_path / "p.pdf", data)).pages)
    both = tmp_path / "both.pdf"
    merged.save(both)
    result, _, reports = ocr(tmp_path, both.read_bytes(), **{"OCR.SIDECAR": True})
    pdf, sidecar = result.outputs
    texts = page_texts(pdf)
    assert all("quick brown fox" in text for text in texts), texts
    assert pikepdf.pdfa.validate_written(pdf, "2b").passed
    assert "Invoice 4711" in sidecar.read_text()
    assert reports[0] == (0, 2) and reports[-1] == (2, 2)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_skip_mode_keeps_existing_text_exactly_and_plain_pdf_needs_no_pdfa(tmp_path) -> None:
    """A page with text is not rasterised: its text is the same before and after."""
    from tests.samples import pdf_bytes

    data = pdf_bytes(2, text="Born digital")
    result, _, _ = ocr(tmp_path, data, **{"OCR.OUTPUT": "pdf"})
    source = tmp_path / "in.pdf"
    assert page_texts(result.outputs[0]) == page_texts(source)
    with pikepdf.open(result.outputs[0]) as out:
        assert not any(page.get_images() for page in out.pages)  # nothing was rasterised


def test_unembedded_fonts_cannot_become_pdfa_here_and_say_what_to_do(tmp_path) -> None:
    from tests.samples import pdf_bytes

    with pytest.raises(HotfolderError) as caught:
        ocr(tmp_path, pdf_bytes(1))
    assert caught.value.code == "unsupported_format"
    assert "OCR.OUTPUT = pdf" in caught.value.message


def test_encrypted_scan_opens_with_its_password_and_comes_out_unprotected(tmp_path) -> None:
    result, ctx, _ = ocr(tmp_path, scan_pdf(password="pw"), "fast", **{"DOC.PASSWORD": "pw"})
    assert "Invoice 4711" in page_texts(result.outputs[0])[0]
    assert any("not password-protected" in w for w in ctx.warnings)


def test_languages_are_checked_against_what_tesseract_has() -> None:
    assert installed_languages() is not None and {"eng", "deu"} <= set(installed_languages() or ())
    options = PDF_OCR.resolve_options("default", {"OCR.LANGUAGES": "deu+eng"})
    assert options["OCR.LANGUAGES"] == ["deu", "eng"]
    with pytest.raises(OptionInvalid) as caught:
        PDF_OCR.resolve_options("default", {"OCR.LANGUAGES": ["eng", "xyz"]})
    assert "xyz" in caught.value.message and "installed: deu, eng" in caught.value.message
    assert "tesseract-ocr-xyz" in caught.value.message
    with pytest.raises(OptionInvalid):
        PDF_OCR.resolve_options("default", {"OCR.LANGUAGES": ["../etc"]})


def test_profiles_and_engine_versions() -> None:
    fast = PDF_OCR.resolve_options("fast", {})
    assert not fast["OCR.DESKEW"] and not fast["OCR.CLEAN"]
    archive = PDF_OCR.resolve_options("archive", {})
    assert archive["OCR.OUTPUT"] == "pdfa-2b" and archive["OCR.DESKEW"] and archive["OCR.ROTATE"]
    versions = engine_versions()
    assert versions["ocrmypdf"].startswith("17.") and versions["tesseract"][0].isdigit()


def test_one_job_uses_only_its_workers_share_of_the_cores(monkeypatch) -> None:
    from hotfolder.executor import cpu_share as share_of

    assert share_of(os.cpu_count() or 1) == 1
    assert share_of(1) == (os.cpu_count() or 1)
    monkeypatch.setenv("HOTFOLDER_CPU_SHARE", "1")
    assert cpu_share() == 1


def test_progress_bar_reports_whole_pages_of_the_ocr_stage_only() -> None:
    seen: list[tuple[int, int]] = []
    with ocrprogress.reporting(lambda done, total: seen.append((done, total))):
        with ocrprogress.PageProgress(total=3, desc="OCR", unit="page") as bar:
            for _ in range(6):
                bar.update(0.5)
        with ocrprogress.PageProgress(total=9, desc="Scanning contents") as other:
            other.update(9)
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    ocrprogress.PageProgress(total=2, desc="OCR").update(2)  # outside: reports nowhere
