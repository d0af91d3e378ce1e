"""pdf-ocr and scan-archive: searchable PDF (or PDF/A) from scans, with OCRmyPDF and Tesseract.

OCRmyPDF runs as a library inside the worker, one call per file. It is told to
rasterise with pdfium and to make PDF/A with pikepdf only (``rasterizer =
pypdfium``, ``pdfa_backend = internal``): Ghostscript is never called, so
Debian 12's Ghostscript 10.0.0, which corrupts existing text, cannot touch the
file (the tests run the step with no ``gs`` on the PATH). OCRmyPDF starts
Tesseract itself; it is the one engine whose subprocesses do not go through
:mod:`hotfolder.tools`, because it is a library with its own runner.

A job never starts more Tesseract threads than its worker's share of the
cores (``HOTFOLDER_CPU_SHARE``, set by the worker pool): OCRmyPDF gets that many
page threads and each Tesseract one thread (``OMP_THREAD_LIMIT = 1``).

Invariant 8 holds as for pdf-archive: each output reopens in pdfium with the
input's page count, pages that had text keep it (mode ``skip``), and a PDF/A
output passes ``pikepdf.pdfa.validate_written``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ocrmypdf
import ocrmypdf.exceptions as ocr_errors
import pikepdf
import pikepdf.pdfa
import pypdfium2
from PIL import Image

from hotfolder import tools
from hotfolder.errors import (
    CorruptInput,
    HotfolderError,
    OptionInvalid,
    PasswordRequired,
    TooLarge,
    ToolFailed,
    ToolMissing,
    UnsupportedFormat,
)
from hotfolder.workflows import jbig2, ocrprogress
from hotfolder.workflows.base import OptionSpec, StepContext, StepResult, Workflow, output_stem
from hotfolder.workflows.imagepdf import ImageToPdfStep
from hotfolder.workflows.ocroptions import OPTIONS, PACKAGE, PROGRAM, installed_languages
from hotfolder.workflows.pdf import QPDF_ERRORS, open_input
from hotfolder.workflows.pdfa import page_texts, pages_that_lost_text

#: Seconds jbig2dec may take for one page image (a scanned page decodes in milliseconds).
_JBIG2_TIMEOUT = 120

_OUTPUT_TYPE = {"pdfa-1b": "pdfa-1", "pdfa-2b": "pdfa-2", "pdfa-3b": "pdfa-3", "pdf": "pdf"}

# OCRmyPDF logs each stage at INFO ("Postprocessing...") and fontTools every glyph
# table it subsets; a job's log keeps their warnings only.
for _name in ("ocrmypdf", "fontTools"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def cpu_share() -> int:
    """How many cores one job may keep busy: the worker's share, else all of them."""
    share = os.environ.get("HOTFOLDER_CPU_SHARE", "")
    return int(share) if share.isdigit() and int(share) > 0 else max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class _Input:
    """What the step learned about one input before OCR."""

    path: Path  # the file OCRmyPDF reads (a decrypted copy for protected inputs)
    pages: int
    texts: list[str]


def _prepare(source: Path, temp: Path, ctx: StepContext) -> _Input:
    """Open ``source``, check its size, decrypt it if needed; raise the job's errors."""
    opened = open_input(source, ctx)
    try:
        pdf = opened.pdf
        pages = len(pdf.pages)
        limit = ctx.options["OCR.MAX_PAGES"]
        if pages > limit:
            raise TooLarge(
                f"{source.name!r} has {pages} pages, more than OCR.MAX_PAGES = {limit}. "
                "Split it into smaller files, or raise OCR.MAX_PAGES (and the folder's "
                "timeout) for this folder."
            )
        _check_image_sizes(pdf, source, ctx.options["IMAGE.MAX_PIXELS"])
        jbig2.check_jbig2(pdf, source, temp, timeout=_JBIG2_TIMEOUT)
        path = source
        if pdf.is_encrypted or opened.repairs:
            # OCRmyPDF refuses encrypted files; it gets a decrypted (or repaired) copy,
            # and the output is unencrypted as PDF/A requires.
            path = temp / "input.pdf"
            pdf.save(path, encryption=False)
            if pdf.is_encrypted:
                ctx.warn(f"{source.name}: the output is not password-protected.")
    except QPDF_ERRORS as exc:
        raise CorruptInput(f"{source.name!r} could not be read ({exc}). Export it again.") from None
    finally:
        opened.close()
    try:
        texts = page_texts(path)
    except pypdfium2.PdfiumError as exc:
        raise CorruptInput(
            f"{source.name!r} opens in qpdf but not in pdfium ({exc}). Export or scan it again."
        ) from None
    return _Input(path, pages, texts)


def _check_image_sizes(pdf: pikepdf.Pdf, source: Path, max_pixels: int) -> None:
    """Refuse a page image larger than IMAGE.MAX_PIXELS before anything decodes it."""
    for number, page in enumerate(pdf.pages, start=1):
        for image in page.get_images().values():
            try:
                width, height = int(image.get("/Width", 0)), int(image.get("/Height", 0))
            except (TypeError, ValueError):
                continue  # not a size: the renderer refuses the image, OCR sees no pixels
            if width * height > max_pixels:
                raise TooLarge(
                    f"Page {number} of {source.name!r} has an image of {width} x "
                    f"{height} pixels, more than IMAGE.MAX_PIXELS = {max_pixels}. "
                    "Scan it at a lower resolution, or raise IMAGE.MAX_PIXELS if the file "
                    "is trusted."
                )


def _ocr_arguments(ctx: StepContext, sidecar: Path | None) -> dict[str, Any]:
    options = ctx.options
    mode = options["OCR.MODE"]
    return {
        "language": options["OCR.LANGUAGES"],
        "mode": mode,
        # OCRmyPDF cannot deskew while redoing OCR (the page keeps its text layout).
        "deskew": options["OCR.DESKEW"] and mode != "redo",
        "rotate_pages": options["OCR.ROTATE"],
        # OCRmyPDF refuses a threshold without rotation.
        "rotate_pages_threshold": options["OCR.ROTATE_CONFIDENCE"]
        if options["OCR.ROTATE"]
        else None,
        "clean": options["OCR.CLEAN"],
        "output_type": _OUTPUT_TYPE[options["OCR.OUTPUT"]],
        "sidecar": sidecar,
        # Never Ghostscript (see the module docstring).
        "rasterizer": "pypdfium",
        "pdfa_backend": "internal",
        "jobs": cpu_share(),
        "use_threads": True,
        "progress_bar": True,  # drawn by ocrprogress, which prints nothing
        "plugins": [ocrprogress.__name__],
        "max_image_mpixels": options["IMAGE.MAX_PIXELS"] / 1_000_000,
    }


@contextmanager
def _temp_below(directory: Path) -> Iterator[None]:
    """OCRmyPDF's scratch folder (``tempfile.mkdtemp``) below the job's step directory.

    A worker stopped at the job's timeout is killed, and OCRmyPDF cannot clean up;
    below the step directory, its page images go when the job's work dir does.
    """
    saved = tempfile.tempdir
    tempfile.tempdir = str(directory)
    try:
        yield
    finally:
        tempfile.tempdir = saved


def _run_ocrmypdf(
    prepared: _Input, target: Path, source: Path, work: Path, ctx: StepContext
) -> None:
    sidecar = target.with_suffix(".txt") if ctx.options["OCR.SIDECAR"] else None
    arguments = _ocr_arguments(ctx, sidecar)
    os.environ["OMP_THREAD_LIMIT"] = "1"
    try:
        with ocrprogress.reporting(ctx.report_progress), _temp_below(work):
            code = ocrmypdf.ocr(prepared.path, target, **arguments)
    except Image.DecompressionBombError:
        raise TooLarge(
            f"A page of {source.name!r} renders to more than IMAGE.MAX_PIXELS = "
            f"{ctx.options['IMAGE.MAX_PIXELS']} pixels. Raise IMAGE.MAX_PIXELS if the file "
            "is trusted."
        ) from None
    except ocr_errors.ExitCodeException as exc:
        raise _translate(exc, source) from None
    if code != ocrmypdf.ExitCode.ok:
        raise ToolFailed(
            f"OCRmyPDF finished {source.name!r} with exit code {int(code)} ({code.name}); "
            "the file was not published."
        )


def _translate(exc: ocr_errors.ExitCodeException, source: Path) -> HotfolderError:
    """OCRmyPDF's exception as the job error a user can act on."""
    detail = str(exc).strip().replace(str(source.parent), "").splitlines()
    reason = detail[0] if detail else type(exc).__name__
    if isinstance(exc, ocr_errors.MissingDependencyError):
        return ToolMissing(
            f"OCRmyPDF is missing a program it needs ({reason}). Install the Debian "
            f"package {PACKAGE!r} and the language packs, then restart hotfolder."
        )
    if isinstance(exc, ocr_errors.EncryptedPdfError):
        return PasswordRequired(f"{source.name!r} is encrypted. Set DOC.PASSWORD for this folder.")
    if isinstance(exc, ocr_errors.DigitalSignatureError):
        return UnsupportedFormat(
            f"{source.name!r} is digitally signed; adding a text layer would invalidate the "
            "signature. Remove the signature first, or keep the file as it is."
        )
    if isinstance(exc, ocr_errors.PdfaConversionFailedError):
        return UnsupportedFormat(
            f"{source.name!r} cannot become PDF/A without re-rendering ({reason}), and "
            "pdf-ocr never re-renders pages that have text. Set OCR.OUTPUT = pdf for a "
            "searchable PDF, then pdf-archive makes the PDF/A (it embeds fonts and checks "
            "the text)."
        )
    if isinstance(exc, ocr_errors.TesseractConfigError | ocr_errors.BadArgsError):
        return OptionInvalid(f"OCRmyPDF refused the options: {reason}.")
    if isinstance(
        exc,
        ocr_errors.InputFileError | ocr_errors.UnsupportedImageFormatError | ocr_errors.DpiError,
    ):
        return CorruptInput(
            f"OCRmyPDF cannot read {source.name!r} ({reason}). Scan or export it again."
        )
    return ToolFailed(
        f"OCRmyPDF failed on {source.name!r} ({type(exc).__name__}: {reason}); nothing was "
        "published."
    )


@dataclass(frozen=True)
class OcrStep:
    """Add a searchable text layer to every input PDF; PDF/A by default."""

    name: str = "pdf-ocr"
    options: tuple[OptionSpec, ...] = OPTIONS

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<stem>.pdf`` (and ``<stem>.txt`` with OCR.SIDECAR) per input."""
        if installed_languages() is None:
            tools.find(PROGRAM, package=PACKAGE)  # raises ToolMissing
        temp = out_dir / "temp"
        outputs: list[Path] = []
        files: list[dict[str, Any]] = []
        try:
            for index, source in enumerate(inputs):
                work = temp / f"{index:03d}"
                work.mkdir(parents=True)
                target = out_dir / f"{output_stem(inputs, source, ctx)}.pdf"
                prepared = _prepare(source, work, ctx)
                _run_ocrmypdf(prepared, target, source, work, ctx)
                outputs.append(target)
                if ctx.options["OCR.SIDECAR"]:
                    outputs.append(target.with_suffix(".txt"))
                files.append({"pdf": target, "pages": prepared.pages, "text": prepared.texts})
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return StepResult(outputs, _summary(files, ctx), {"files": files})

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Reopen each PDF in pdfium: page count, text kept (mode skip), PDF/A validity."""
        output = ctx.options["OCR.OUTPUT"]
        for facts in result.facts["files"]:
            pdf: Path = facts["pdf"]
            try:
                after = page_texts(pdf)
            except pypdfium2.PdfiumError as exc:
                raise ToolFailed(
                    f"OCRmyPDF's output does not open in an independent reader ({exc}); "
                    "it was not published."
                ) from None
            if len(after) != facts["pages"]:
                raise ToolFailed(
                    f"OCRmyPDF's output has {len(after)} page(s) where the input had "
                    f"{facts['pages']}; it was not published."
                )
            if ctx.options["OCR.MODE"] == "skip" and (
                lost := pages_that_lost_text(facts["text"], after)
            ):
                raise ToolFailed(
                    f"OCRmyPDF's output lost the existing text of page(s) "
                    f"{', '.join(map(str, lost[:10]))}; it was not published."
                )
            sidecar = pdf.with_suffix(".txt")
            if ctx.options["OCR.SIDECAR"] and not _is_text(sidecar):
                raise ToolFailed(
                    f"OCRmyPDF's text file {sidecar.name!r} is missing or not UTF-8 text; "
                    "nothing was published."
                )
            if output != "pdf":
                part = output.removeprefix("pdfa-")
                report = pikepdf.pdfa.validate_written(pdf, part)
                if not report.passed:
                    shown = "; ".join(f"{f.message} ({f.rule})" for f in report.findings[:3])
                    raise ToolFailed(
                        f"OCRmyPDF's output is not valid PDF/A-{part} ({report.verdict}: "
                        f"{shown}); it was not published. Set OCR.OUTPUT = pdf for a plain "
                        "searchable PDF."
                    )


def _is_text(path: Path) -> bool:
    try:
        path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return True


def _summary(files: Sequence[dict[str, Any]], ctx: StepContext) -> str:
    pages = sum(f["pages"] for f in files)
    output = ctx.options["OCR.OUTPUT"]
    kind = "searchable PDF" if output == "pdf" else f"searchable PDF/A-{output[5:]} (validated)"
    languages = "+".join(ctx.options["OCR.LANGUAGES"])
    what = f"{pages} page(s)" if len(files) == 1 else f"{len(files)} files, {pages} page(s)"
    return (
        f"OCR ({languages}, mode {ctx.options['OCR.MODE']}) made a {kind} of {what} "
        f"with Tesseract {tesseract_version()}."
    )


def tesseract_version() -> str:
    """The installed Tesseract's version (``5.3.0``), ``missing`` or ``unknown``."""
    line = tools.version(PROGRAM, "--version")
    return line.removeprefix("tesseract ").strip()


PDF_OCR = Workflow(
    name="pdf-ocr",
    description="Searchable PDF/A from scanned PDFs with OCRmyPDF and Tesseract; pages "
    "that have text keep it; every output validated.",
    steps=(OcrStep(),),
    profiles={
        "default": {},
        "fast": {"OCR.DESKEW": False, "OCR.CLEAN": False, "OCR.ROTATE": False},
        "archive": {
            "OCR.OUTPUT": "pdfa-2b",
            "OCR.DESKEW": True,
            "OCR.ROTATE": True,
            "OCR.CLEAN": True,
        },
    },
)

SCAN_ARCHIVE = Workflow(
    name="scan-archive",
    description="Scanned images (TIFF, JPEG, PNG) to searchable PDF/A: image-to-pdf, then pdf-ocr.",
    steps=(ImageToPdfStep(), OcrStep()),
    profiles=PDF_OCR.profiles,
)

WORKFLOWS = (PDF_OCR, SCAN_ARCHIVE)


def engine_versions() -> dict[str, str]:
    """Versions of the OCR engines, for ``hotfolder workflows`` and status files."""
    return {
        "ocrmypdf": ocrmypdf.__version__,
        "tesseract": tesseract_version(),
        "jbig2dec": tools.version(jbig2.PROGRAM, "--version").removeprefix("jbig2dec "),
    }
