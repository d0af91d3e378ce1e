"""pdf-merge and pdf-split on pikepdf: pages moved between documents, nothing re-rendered.

Pages are copied with ``Pdf.add_pages_from``, which brings along what the document
holds for them: form fields, named destinations, layers and the bookmarks that lead
to them. Protected inputs are opened with DOC.PASSWORD; the files written are not
encrypted (a merge cannot keep several inputs' protections), which the status says.
Outputs are counted again in pdfium before they may be published.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pikepdf
import pypdfium2
from pydantic import AfterValidator, Field

from hotfolder.errors import CorruptInput, OptionInvalid, ToolFailed
from hotfolder.workflows.base import (
    OptionSpec,
    StepContext,
    StepResult,
    Workflow,
    output_stem,
)
from hotfolder.workflows.pages import parse_page_ranges
from hotfolder.workflows.pdf import (
    PASSWORD,
    QPDF_ERRORS,
    REPAIR,
    OpenedPdf,
    check_late_warnings,
    clean_message,
    count_pages_pdfium,
    open_input,
)
from hotfolder.workflows.pdf import (
    engine_versions as pdf_engine_versions,
)
from hotfolder.workflows.readers import sources_of

#: Page numbers in split file names have at least this many digits (p001).
_MIN_DIGITS = 3

BOOKMARKS = OptionSpec(
    "MERGE.BOOKMARKS",
    bool,
    True,
    "Add one bookmark per input, named after its file, holding that input's own "
    "bookmarks; false keeps only the inputs' own bookmarks, one after another.",
)


def _check_ranges(text: str) -> str:
    # The page count is only known per file; the syntax can be checked at config load.
    try:
        parse_page_ranges(text, sys.maxsize, option="SPLIT.RANGES")
    except OptionInvalid:
        raise ValueError(
            'write pages and ranges separated by commas, like "1-3,4,5-" ("5-" runs to '
            "the last page); pages count from 1 and a range names its lower page first"
        ) from None
    return text


RANGES = OptionSpec(
    "SPLIT.RANGES",
    Annotated[str, AfterValidator(_check_ranges)],
    "",
    'One output file per page or range, like "1-3,4,5-" ("5-" runs to the last page). '
    "Empty: split every SPLIT.EVERY pages.",
)
EVERY = OptionSpec(
    "SPLIT.EVERY",
    Annotated[int, Field(ge=1)],
    1,
    "Pages per output file when SPLIT.RANGES is empty (1: one file per page).",
)


def _save(pdf: pikepdf.Pdf, target: Path, version: str) -> None:
    pdf.save(
        target,
        min_version=version,
        object_stream_mode=pikepdf.ObjectStreamMode.generate,
        compress_streams=True,
        # Same inputs, same bytes out.
        deterministic_id=True,
    )


def _unprotected_warning(source: Path, opened: OpenedPdf, ctx: StepContext, what: str) -> None:
    if opened.pdf.is_encrypted:
        ctx.warn(
            f"{source.name!r} was password-protected; {what} not. Chain pdf-protect "
            "after this step to protect the result."
        )


def _top_level_bookmarks(pdf: pikepdf.Pdf) -> int:
    outlines = pdf.Root.get("/Outlines")
    item = outlines.get("/First") if isinstance(outlines, pikepdf.Dictionary) else None
    seen: set[tuple[int, int]] = set()
    # A damaged outline may loop back on itself; each item counts once.
    while isinstance(item, pikepdf.Dictionary) and item.objgen not in seen:
        seen.add(item.objgen)
        item = item.get("/Next")
    return len(seen)


@dataclass(frozen=True)
class _Section:
    title: str
    first_page: int
    pages: int
    bookmarks: int


def _nest_bookmarks(pdf: pikepdf.Pdf, sections: Sequence[_Section]) -> None:
    """Put one bookmark per input at the top, holding the bookmarks its pages brought."""
    with pdf.open_outline() as outline:
        carried = list(outline.root)
        root: list[pikepdf.OutlineItem] = []
        start = 0
        for section in sections:
            if not section.pages:
                continue  # no page to lead to (and no bookmarks came with it)
            entry = pikepdf.OutlineItem(section.title, section.first_page)
            entry.children = carried[start : start + section.bookmarks]
            start += section.bookmarks
            root.append(entry)
        outline.root = root


def _top_level_titles(path: Path) -> list[str]:
    document = pypdfium2.PdfDocument(path)
    try:
        return [mark.get_title() for mark in document.get_toc() if mark.level == 0]
    finally:
        document.close()


@dataclass(frozen=True)
class MergeStep:
    """Concatenate every input, in the order given, into one PDF."""

    name: str = "pdf-merge"
    options: tuple[OptionSpec, ...] = (PASSWORD, REPAIR, BOOKMARKS)

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<job name>.pdf`` with the pages of all inputs, unencrypted."""
        target = out_dir / f"{ctx.job_name}.pdf"
        merged = pikepdf.new()
        sections: list[_Section] = []
        versions: list[str] = []
        # Copied pages read their stream data from the sources when the merged file
        # is written, so every source stays open until then.
        with contextlib.ExitStack() as sources:
            opened_all: list[tuple[Path, OpenedPdf]] = []
            for source in inputs:
                opened = open_input(source, ctx)
                sources.callback(opened.close)
                opened_all.append((source, opened))
                _unprotected_warning(source, opened, ctx, "the merged file is")
                sections.append(self._append(merged, source, opened, ctx))
                versions.append(opened.pdf.pdf_version)
            if sum(section.pages for section in sections) == 0:
                raise CorruptInput("None of the inputs has a page; there is nothing to merge.")
            try:
                if ctx.options["MERGE.BOOKMARKS"]:
                    _nest_bookmarks(merged, sections)
                _save(merged, target, max(versions, key=_version_key))
            except QPDF_ERRORS as exc:
                raise CorruptInput(
                    f"The inputs could not be merged ({clean_message(str(exc), target)}). "
                    "Export them again."
                ) from None
            for source, opened in opened_all:
                check_late_warnings(opened, source, ctx)
        pages = [section.pages for section in sections]
        message = f"Merged {len(inputs)} file(s) into {sum(pages)} page(s)."
        return StepResult([target], message, {"pages": pages, "titles": _titles(sections)})

    def _append(
        self, merged: pikepdf.Pdf, source: Path, opened: OpenedPdf, ctx: StepContext
    ) -> _Section:
        before = _top_level_bookmarks(merged)
        first = len(merged.pages)
        try:
            copied = merged.add_pages_from(opened.pdf)
        except QPDF_ERRORS as exc:
            raise CorruptInput(
                f"The pages of {source.name!r} could not be copied "
                f"({clean_message(str(exc), source)}). Export it again."
            ) from None
        if not copied.pages_added:
            ctx.warn(f"{source.name!r} has no pages; nothing of it is in the merged file.")
        if copied.renamed_fields:
            ctx.warn(
                f"{len(copied.renamed_fields)} form field(s) of {source.name!r} had names an "
                "earlier input already used and were renamed."
            )
        return _Section(
            source.stem, first, copied.pages_added, _top_level_bookmarks(merged) - before
        )

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Check in pdfium: the page count is the inputs' sum; one bookmark per input."""
        (output,) = result.outputs
        expected = sum(result.facts["pages"])
        pages = count_pages_pdfium(output, "", sources_of(inputs, ctx))
        if pages != expected:
            raise ToolFailed(
                f"The merged file has {pages} page(s) where the inputs have {expected}; "
                "it was not published. Please report this."
            )
        if ctx.options["MERGE.BOOKMARKS"]:
            titles = _top_level_titles(output)
            if titles != result.facts["titles"]:
                raise ToolFailed(
                    "The merged file's bookmarks do not name its inputs; it was not "
                    "published. Please report this."
                )


def _titles(sections: Sequence[_Section]) -> list[str]:
    return [section.title for section in sections if section.pages]


def _version_key(version: str) -> tuple[int, ...]:
    parts = [int(part) for part in version.split(".") if part.isdigit()]
    return tuple(parts)


def _parts(options: Mapping[str, Any], count: int) -> tuple[list[tuple[int, int]], bool]:
    """The 1-based inclusive page ranges to write, and whether they came from SPLIT.RANGES."""
    text: str = options["SPLIT.RANGES"]
    if text.strip():
        ranges = parse_page_ranges(text, count, option="SPLIT.RANGES")
        twice = {r for r in ranges if ranges.count(r) > 1}
        if twice:
            first, last = min(twice)
            raise OptionInvalid(
                f"SPLIT.RANGES {text!r} asks for pages {first}-{last} twice (the document "
                f"has {count} page(s)); name each range once."
            )
        return ranges, True
    every: int = options["SPLIT.EVERY"]
    return [(first, min(first + every - 1, count)) for first in range(1, count + 1, every)], False


def _part_name(stem: str, first: int, last: int, count: int, ranges: bool) -> str:
    digits = max(_MIN_DIGITS, len(str(count)))
    name = f"{stem}-p{first:0{digits}d}"
    if ranges and last != first:
        name += f"-{last:0{digits}d}"
    return f"{name}.pdf"


@dataclass(frozen=True)
class SplitStep:
    """Split each input into one PDF per page, per N pages or per named range."""

    name: str = "pdf-split"
    options: tuple[OptionSpec, ...] = (PASSWORD, REPAIR, RANGES, EVERY)

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<stem>-p001.pdf`` (or ``<stem>-p001-003.pdf`` for ranges) per part."""
        outputs: list[Path] = []
        pages: list[int] = []
        total = 0
        for source in inputs:
            opened = open_input(source, ctx)
            try:
                count = len(opened.pdf.pages)
                total += count
                if count == 0:
                    raise CorruptInput(f"{source.name!r} has no pages; there is nothing to split.")
                _unprotected_warning(source, opened, ctx, "the split files are")
                parts, ranges = _parts(ctx.options, count)
                stem = output_stem(inputs, source, ctx)
                for first, last in parts:
                    target = out_dir / _part_name(stem, first, last, count, ranges)
                    self._write(opened, source, first, last, target)
                    outputs.append(target)
                    pages.append(last - first + 1)
                check_late_warnings(opened, source, ctx)
            finally:
                opened.close()
        what = f"{total} page(s)" if len(inputs) == 1 else f"{len(inputs)} files ({total} pages)"
        message = f"Split {what} into {len(outputs)} file(s)."
        return StepResult(outputs, message, {"pages": pages})

    def _write(self, opened: OpenedPdf, source: Path, first: int, last: int, target: Path) -> None:
        part = pikepdf.new()
        try:
            part.add_pages_from(opened.pdf, range(first - 1, last))
            if opened.pdf.trailer.get("/Info") is not None:
                # Title, author and subject still describe every part of the document.
                part.trailer.Info = part.copy_foreign(opened.pdf.docinfo)
            _save(part, target, opened.pdf.pdf_version)
        except QPDF_ERRORS as exc:
            raise CorruptInput(
                f"Pages {first}-{last} of {source.name!r} could not be written "
                f"({clean_message(str(exc), source)}). Export it again."
            ) from None
        finally:
            part.close()

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Check in pdfium that every part has the pages it should."""
        for output, expected in zip(result.outputs, result.facts["pages"], strict=True):
            pages = count_pages_pdfium(output, "", sources_of(inputs, ctx))
            if pages != expected:
                raise ToolFailed(
                    f"{output.name!r} has {pages} page(s) where it should have {expected}; "
                    "it was not published. Please report this."
                )


PDF_MERGE = Workflow(
    name="pdf-merge",
    description="Merge all of a job's PDFs, in order, into one, with a bookmark per input.",
    steps=(MergeStep(),),
    profiles={"default": {}},
    multi_input=True,
)

PDF_SPLIT = Workflow(
    name="pdf-split",
    description="Split PDFs into one file per page, per N pages or per page range.",
    steps=(SplitStep(),),
    profiles={"default": {}},
)


WORKFLOWS = (PDF_MERGE, PDF_SPLIT)


def engine_versions() -> dict[str, str]:
    """Versions of the engines merge and split use (pikepdf, qpdf, pdfium)."""
    return pdf_engine_versions()
