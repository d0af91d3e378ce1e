"""pdf-archive: PDF/A-1b, 2b or 3b, losslessly with pikepdf or re-rendered by Ghostscript.

pikepdf's ``pdfa.save`` adds what a file lacks for PDF/A (OutputIntent, XMP
declaration, annotation flags) without touching page content, and validates
what it wrote. Files whose fonts are not embedded or whose colours need an
ICC profile cannot be fixed that way; Ghostscript re-renders them. Ghostscript
10.0.0-10.02.0 corrupt existing text, so the text of every page is compared
(pdfium) before and after, and an output that lost text fails the job.

No output claims PDF/A unless ``pikepdf.pdfa.validate_written`` passed it.
"""

from __future__ import annotations

import shutil
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pikepdf
import pikepdf.pdfa
import pypdfium2
import pypdfium2.version
from pydantic import Field

from hotfolder.errors import (
    CorruptInput,
    JobTimeout,
    PasswordRequired,
    ToolFailed,
    UnsupportedFormat,
)
from hotfolder.memory import out_of_memory
from hotfolder.workflows import ghostscript
from hotfolder.workflows.base import OptionSpec, StepContext, StepResult, Workflow, output_stem
from hotfolder.workflows.pdf import PASSWORD, QPDF_ERRORS, open_pdf, pikepdf_opened
from hotfolder.workflows.pdfafix import fix_written, pikepdf_instead, save_pdfa
from hotfolder.workflows.pdfbounds import SIZE_OPTIONS, check_decoded_sizes
from hotfolder.workflows.repair import REPAIR_CHECKED

PART = OptionSpec(
    "PDFA.PART",
    Literal["1b", "2b", "3b"],
    "2b",
    "PDF/A part and conformance: 1b (oldest readers), 2b (recommended) or 3b "
    "(allows embedded files of any type).",
)
ENGINE = OptionSpec(
    "PDFA.ENGINE",
    Literal["auto", "pikepdf", "ghostscript"],
    "auto",
    "auto: lossless pikepdf when the file allows it, else Ghostscript; pikepdf: never "
    "re-render (files that need fonts embedded fail); ghostscript: always re-render.",
)
GS_TIMEOUT = OptionSpec(
    "PDFA.GS_TIMEOUT",
    Annotated[int, Field(ge=1)],
    600,
    "Seconds one Ghostscript conversion may take before it is stopped.",
)

#: How similar (0..1, character counts without whitespace) a page's text must
#: stay. Re-rendering may change ligatures or spacing, never the letters.
TEXT_SIMILARITY = 0.9

_SHOWN_FINDINGS = 3


def normalize_text(text: str) -> str:
    """Page text reduced to what must survive re-rendering: NFKC, no whitespace or controls."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(
        ch for ch in folded if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf")
    )


def text_similarity(before: str, after: str) -> float:
    """How much of two page texts is shared, from 0 to 1 (Dice over character counts).

    Order-insensitive on purpose: Ghostscript may re-order text runs, which
    loses nothing; lost, replaced or garbled characters lower the score.
    """
    a, b = Counter(normalize_text(before)), Counter(normalize_text(after))
    total = sum(a.values()) + sum(b.values())
    if total == 0:
        return 1.0
    return 2 * sum((a & b).values()) / total


def pages_that_lost_text(before: Sequence[str], after: Sequence[str]) -> list[int]:
    """1-based numbers of pages that had text before and lost (nearly) all or part of it.

    A missing page counts as lost; pages without text before are not judged.
    """
    lost = []
    for number, text in enumerate(before, start=1):
        if not normalize_text(text):
            continue
        kept = after[number - 1] if number <= len(after) else ""
        if text_similarity(text, kept) < TEXT_SIMILARITY:
            lost.append(number)
    return lost


def page_texts(path: Path, password: str = "") -> list[str]:
    """The text of every page as pdfium extracts it; raises pypdfium2.PdfiumError."""
    document = pypdfium2.PdfDocument(path, password=password or None)
    try:
        texts = []
        for page in document:
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return texts
    finally:
        document.close()


def _findings(report: pikepdf.pdfa.Report) -> str:
    shown = [f"{f.message} ({f.rule})" for f in report.findings[:_SHOWN_FINDINGS]]
    more = len(report.findings) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _warn_annotations(ctx: StepContext, name: str, removed: Counter[str]) -> None:
    if removed:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(removed.items()))
        ctx.warn(f"{name}: hidden annotations, which PDF/A forbids, were removed ({kinds}).")


def _warn_prepared(ctx: StepContext, name: str, prepared: Any) -> None:
    # prepare() changes no page content, but it may drop things a reader could miss.
    if prepared is None:
        return
    _warn_annotations(ctx, name, prepared.annotations_removed)
    if prepared.document_javascript_removed:
        ctx.warn(f"{name}: document JavaScript was removed (PDF/A forbids it).")
    if prepared.xmp_dropped:
        ctx.warn(f"{name}: XMP properties PDF/A does not permit were dropped.")


@dataclass(frozen=True)
class ArchiveStep:
    """Write every input as PDF/A, validated, and say which engine made it."""

    name: str = "pdf-archive"
    options: tuple[OptionSpec, ...] = (
        PASSWORD,
        REPAIR_CHECKED,
        PART,
        ENGINE,
        GS_TIMEOUT,
        *SIZE_OPTIONS,
    )

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<stem>.pdf`` per input into ``out_dir``, unencrypted, as PDF/A."""
        temp = out_dir / "temp"
        temp.mkdir(exist_ok=True)
        outputs: list[Path] = []
        files: list[dict[str, Any]] = []
        try:
            for index, source in enumerate(inputs):
                target = out_dir / f"{output_stem(inputs, source, ctx)}.pdf"
                files.append(self._convert(source, target, temp / f"{index:03d}", ctx))
                outputs.append(target)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return StepResult(outputs, _summary(ctx.options["PDFA.PART"], files), {"files": files})

    def _convert(self, source: Path, target: Path, temp: Path, ctx: StepContext) -> dict[str, Any]:
        part: str = ctx.options["PDFA.PART"]
        engine: str = ctx.options["PDFA.ENGINE"]
        # A manifest may give this input its own password.
        passwords = ctx.document_option(source, "DOC.PASSWORD")
        opened = open_pdf(source, passwords, repair=ctx.options["PDF.REPAIR"])
        password = opened.password
        try:
            for repair in opened.repairs:
                ctx.warn(f"repaired: {repair} (qpdf)")
            pages = len(opened.pdf.pages)
            # pdfium, pikepdf's checks and Ghostscript all hold page content in memory.
            check_decoded_sizes(
                opened.pdf,
                source.name,
                ctx.options["PDF.MAX_DECODED_MB"],
                ctx.options["PDF.MAX_IMAGE_PIXELS"],
            )
            before = _input_texts(source, password)
            if engine != "ghostscript":
                try:
                    report = save_pdfa(
                        opened.pdf, target, part, lambda w: ctx.warn(f"{source.name}: {w}")
                    )
                except pikepdf.pdfa.PdfaError as exc:
                    # A content stream qpdf could not decode for lack of memory.
                    if memory := out_of_memory(*opened.pdf.get_warnings()):
                        raise memory from None
                    reason = _findings(exc.report)
                except QPDF_ERRORS as exc:
                    raise out_of_memory(str(exc)) or CorruptInput(
                        f"{source.name!r} could not be rewritten ({exc}). Export it again."
                    ) from None
                else:
                    _warn_prepared(ctx, source.name, report.prepared)
                    return {"engine": "pikepdf", "pages": pages, "text": before}
                if engine == "pikepdf":
                    raise UnsupportedFormat(
                        f"{source.name!r} cannot become PDF/A-{part} without re-rendering "
                        f"({reason}). Set PDFA.ENGINE = auto so that Ghostscript embeds "
                        "fonts and converts colours."
                    )
                ctx.log.info("%s needs Ghostscript: %s", source.name, reason)
        finally:
            opened.close()
        temp.mkdir()
        try:
            made = _ghostscript(source, password, temp, ctx)
            _check_text(before, _output_texts(made), ghostscript.version())
        except ToolFailed as failed:
            if engine != "ghostscript":
                raise  # pikepdf was tried first and could not do it
            return pikepdf_instead(source, target, password, failed, ctx, before)
        made.replace(target)
        return {"engine": "ghostscript", "pages": pages, "text": before}

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Validate every output as PDF/A and compare its pages and text with the input's."""
        part = ctx.options["PDFA.PART"]
        for output, facts in zip(result.outputs, result.facts["files"], strict=True):
            _check_valid(output, part)
            after = _output_texts(output)
            if len(after) != facts["pages"]:
                raise ToolFailed(
                    f"The PDF/A file has {len(after)} page(s) where the input had "
                    f"{facts['pages']}; it was not published. Please report this."
                )
            if facts["engine"] == "ghostscript":
                _check_text(facts["text"], after, ghostscript.version())
            elif lost := pages_that_lost_text(facts["text"], after):
                raise ToolFailed(
                    f"pikepdf's PDF/A file lost the text of page(s) {_pages(lost)}; it was "
                    "not published. Please report this with the input file."
                )


def _input_texts(source: Path, password: str) -> list[str]:
    try:
        return page_texts(source, password)
    except pypdfium2.PdfiumError as exc:
        if "password" in str(exc).lower():
            # qpdf accepted the empty password of an R5/R6 file that pdfium refuses.
            raise PasswordRequired(
                f"{source.name!r} is password-protected. Set DOC.PASSWORD for this "
                "folder to the password that opens it."
            ) from None
        raise CorruptInput(
            f"{source.name!r} opens in qpdf but not in pdfium ({exc}), so its text cannot be "
            "checked after conversion. Export it again."
        ) from None


def _output_texts(output: Path) -> list[str]:
    try:
        return page_texts(output)
    except pypdfium2.PdfiumError as exc:
        raise ToolFailed(
            f"The PDF/A file does not open without a password in an independent reader "
            f"({exc}); it was not published. Please report this with the input file."
        ) from None


def _ghostscript(source: Path, password: str, temp: Path, ctx: StepContext) -> Path:
    """Re-render ``source`` with Ghostscript into a validated file below ``temp``."""
    part: str = ctx.options["PDFA.PART"]
    # Ghostscript gets a decrypted copy (PDF/A forbids encryption, and the password
    # stays out of its command line), with annotations given the Print flag that
    # Ghostscript's PDF/A mode would otherwise delete (links without /F).
    plain = temp / "input.pdf"
    try:
        with pikepdf_opened(source, password) as pdf:
            repaired = pikepdf.pdfa.repair_annotation_flags(pdf)
            pdf.save(plain, encryption=False)
    except QPDF_ERRORS as exc:
        raise out_of_memory(str(exc)) or CorruptInput(
            f"{source.name!r} could not be decrypted and copied for Ghostscript ({exc}). "
            "Export it again."
        ) from None
    _warn_annotations(ctx, source.name, repaired.removed)
    made = temp / "pdfa.pdf"
    timeout = ctx.options["PDFA.GS_TIMEOUT"]
    try:
        warnings = ghostscript.convert_to_pdfa(
            plain, made, int(part[0]), work_dir=temp, timeout=timeout
        )
    except JobTimeout:
        raise JobTimeout(
            f"Ghostscript did not finish converting {source.name!r} within {timeout} s and "
            "was stopped. Raise PDFA.GS_TIMEOUT (and the folder's timeout) if the file is "
            "simply large."
        ) from None
    for warning in warnings:
        if ghostscript.DOCINFO_DROPPED not in warning:
            ctx.warn(f"{source.name}: {warning}")
        elif lost := _info_lost(plain, made):
            ctx.warn(
                f"{source.name}: Ghostscript dropped document information it could not copy "
                f"into the PDF/A metadata ({', '.join(lost)})."
            )
    fix_written(made, lambda w: ctx.warn(f"{source.name}: {w}"))
    _check_valid(made, part)
    return made


_INFO_KEYS = ("/Title", "/Author", "/Subject", "/Keywords", "/Creator")


def _info_lost(before: Path, after: Path) -> list[str]:
    """Document information entries ``before`` has and ``after`` lacks (Title, Author...)."""
    try:
        with pikepdf_opened(before, "") as old, pikepdf_opened(after, "") as new:
            return [key[1:] for key in _INFO_KEYS if key in old.docinfo and key not in new.docinfo]
    except QPDF_ERRORS:
        return []  # an output qpdf cannot open fails its validation next


def _check_valid(path: Path, part: str) -> None:
    report = pikepdf.pdfa.validate_written(path, part)
    if not report.passed:
        raise ToolFailed(
            f"The output is not valid PDF/A-{part} ({report.verdict}: {_findings(report)}); "
            "it was not published. Try another PDFA.PART, or PDFA.ENGINE = ghostscript."
        )


def _check_text(before: Sequence[str], after: Sequence[str], gs_version: str) -> None:
    lost = pages_that_lost_text(before, after)
    if not lost:
        return
    known = (
        f"Ghostscript {gs_version} is one of the releases (10.0.0 to 10.02.0) known to "
        "corrupt existing text"
        if ghostscript.is_text_corrupting(gs_version)
        else f"Ghostscript {gs_version} changed the text"
    )
    raise ToolFailed(
        f"{known}: page(s) {_pages(lost)} lost text while being converted to PDF/A, so the "
        "file was not published. Upgrade Ghostscript to 10.02.1 or later, or embed the "
        "fonts (export the PDF again with fonts embedded) so that the lossless pikepdf "
        "path can be used."
    )


def _pages(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


def _summary(part: str, files: Sequence[dict[str, Any]]) -> str:
    by_gs = [f for f in files if f["engine"] == "ghostscript"]
    checked = sum(1 for f in by_gs for text in f["text"] if normalize_text(text))
    gs_note = (
        f"Ghostscript {ghostscript.version()} (fonts embedded, colours as sRGB; "
        f"text checked on {checked} page(s))"
    )
    if len(files) == 1:
        engine = gs_note if by_gs else "pikepdf (lossless)"
        return f"PDF/A-{part} written by {engine}, validated."
    lossless = len(files) - len(by_gs)
    return (
        f"{len(files)} files written as PDF/A-{part}: {lossless} by pikepdf (lossless), "
        f"{len(by_gs)} by {gs_note if by_gs else 'Ghostscript'}; all validated."
    )


PDF_ARCHIVE = Workflow(
    name="pdf-archive",
    description="PDF/A-1b, 2b or 3b: lossless with pikepdf, else re-rendered by Ghostscript; "
    "every output validated.",
    steps=(ArchiveStep(),),
    profiles={
        "default": {},
        "pdfa-1b": {"PDFA.PART": "1b"},
        "pdfa-3b": {"PDFA.PART": "3b"},
        "lossless": {"PDFA.ENGINE": "pikepdf"},
    },
)


WORKFLOWS = (PDF_ARCHIVE,)


def engine_versions() -> dict[str, str]:
    """Versions of the PDF/A engines, for ``hotfolder workflows`` and status files."""
    return {
        "ghostscript": ghostscript.version(),
        "pikepdf": pikepdf.__version__,
        "pdfium": str(pypdfium2.version.PDFIUM_INFO),
    }
