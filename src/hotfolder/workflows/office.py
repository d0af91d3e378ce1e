"""office-to-pdf: Word, Excel, PowerPoint, OpenDocument, RTF and text to PDF with LibreOffice.

Each conversion runs one headless ``soffice`` through :func:`hotfolder.tools.run`
with a LibreOffice profile, HOME and TMPDIR of its own below the step's work
directory: parallel workers never share a profile (LibreOffice's single-instance
pipe is named after it) and nothing of a conversion survives it. The profile is
seeded with settings that keep a document from reaching out: linked images and
other external references are not fetched, and macros never run.

LibreOffice exits 0 even when it cannot load a file; success is judged by the PDF
it wrote. Inputs are passed under neutral names (``in-001.docx``) so that odd
file names (spaces, non-ASCII, leading dashes) never reach its command line.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pypdfium2
from pydantic import Field

from hotfolder import tools
from hotfolder.errors import CorruptInput, JobTimeout, OptionInvalid, ToolFailed, ToolMissing
from hotfolder.workflows.base import (
    OptionSpec,
    StepContext,
    StepResult,
    Workflow,
    human_bytes,
    output_stem,
)
from hotfolder.workflows.office_detect import Family, OfficeFormat, detect_office
from hotfolder.workflows.pdf import QPDF_ERRORS, count_pages_pdfium, pikepdf_opened

WRITER_PACKAGE = "libreoffice-writer-nogui"

# The LibreOffice module each family needs, by the library it installs next to
# soffice.bin, and the Debian package that brings it.
_COMPONENTS: dict[Family, tuple[str, str]] = {
    "text": ("libswlo.so", WRITER_PACKAGE),
    "spreadsheet": ("libsclo.so", "libreoffice-calc-nogui"),
    "presentation": ("libsdlo.so", "libreoffice-impress-nogui"),
}

# Written into every fresh profile before LibreOffice first starts: block links to
# anything outside the document (a linked image would otherwise be fetched from
# any URL while converting) and never run macros.
_PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
 xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="BlockUntrustedRefererLinks" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
</oor:items>
"""

TIMEOUT = OptionSpec(
    "OFFICE.TIMEOUT",
    Annotated[float, Field(gt=0)],
    300.0,
    "Seconds LibreOffice may spend on each input file before it is stopped.",
)
PAGE_RANGE = OptionSpec(
    "OFFICE.PAGE_RANGE",
    Annotated[str, Field(pattern=r"^\s*(\d+\s*(-\s*\d*)?\s*(,\s*\d+\s*(-\s*\d*)?\s*)*)?$")],
    "",
    'Pages to export, like "1-3,7" or "2-" (to the end); empty exports every page.',
)


def run_soffice(
    files: Sequence[Path], convert_to: str, outdir: Path, scratch: Path, *, timeout: float
) -> str:
    """Convert ``files`` with one headless LibreOffice; return what it printed.

    ``convert_to`` is soffice's ``--convert-to`` argument (``pdf``, ``docx`` …);
    the outputs land in ``outdir`` named after the files. ``scratch`` (an empty
    directory) receives the fresh profile, HOME and TMPDIR. Raises ToolMissing,
    JobTimeout (the whole process group is killed) or ToolFailed.
    """
    soffice = tools.find("soffice", package=WRITER_PACKAGE)
    profile, home, tmp = scratch / "profile", scratch / "home", scratch / "tmp"
    (profile / "user").mkdir(parents=True)
    (profile / "user" / "registrymodifications.xcu").write_text(_PROFILE_SETTINGS)
    home.mkdir()
    tmp.mkdir()
    done = tools.run(
        [
            soffice,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--nodefault",
            "--nologo",
            "--convert-to",
            convert_to,
            "--outdir",
            outdir,
            *files,
        ],
        timeout=timeout,
        what="LibreOffice conversion",
        env={"HOME": str(home), "TMPDIR": str(tmp)},
    )
    printed = (done.stdout + done.stderr).decode("utf-8", "replace")
    return printed.replace(str(scratch) + os.sep, "")


def require_components(soffice: str, families: set[Family]) -> None:
    """Raise ToolMissing when LibreOffice lacks the module (Calc, Impress) a file needs.

    Without it LibreOffice only says "source file could not be loaded", which
    would read as a damaged file. Installations laid out differently are trusted.
    """
    program = Path(os.path.realpath(soffice)).parent
    libraries = {family: program / library for family, (library, _) in _COMPONENTS.items()}
    if not any(path.exists() for path in libraries.values()):
        return
    for family in sorted(families):
        if not libraries[family].exists():
            package = _COMPONENTS[family][1]
            raise ToolMissing(
                f"LibreOffice is installed without the module for {family} files, so this "
                f"file cannot be converted. Install the Debian package {package!r} "
                f"(apt-get install {package}) and restart hotfolder."
            )


def _stage(source: Path, link: Path) -> None:
    # A copy, not a hard link: linking changes the original's ctime, which the check
    # after the conversion reads as a writer still at work, and LibreOffice must
    # never get a name through which it could write the user's original.
    shutil.copyfile(source, link)


def _pdf_options(page_range: str) -> str:
    if not page_range:
        return "pdf"
    # writer_pdf_Export takes the JSON filter data for Calc and Impress documents too.
    data = {"PageRange": {"type": "string", "value": page_range}}
    return "pdf:writer_pdf_Export:" + json.dumps(data, separators=(",", ":"))


def _no_output(source: Path, found: OfficeFormat, printed: str, page_range: str) -> Exception:
    if "could not be loaded" in printed:
        return CorruptInput(
            f"LibreOffice could not open {source.name!r} ({found.label}): it is damaged or "
            "incomplete. Open it in its program, save it again and drop the new copy."
        )
    if page_range:
        return OptionInvalid(
            f"OFFICE.PAGE_RANGE = {page_range!r} selects no page of {source.name!r}, so "
            "LibreOffice wrote no PDF. Choose pages the document has, or leave it empty."
        )
    detail = _output_tail(printed)
    return ToolFailed(f"LibreOffice wrote no PDF for {source.name!r} ({found.label}): {detail}")


def _output_tail(printed: str, limit: int = 600) -> str:
    """The end of LibreOffice's output for a message, without its harmless warnings."""
    lines = [line for line in printed.splitlines() if "javaldx" not in line and line.strip()]
    text = " ".join(lines) or "no error output"
    return text if len(text) <= limit else "…" + text[-limit:]


def _unique(out_dir: Path, stem: str, used: set[str]) -> Path:
    # Several inputs may share a stem (a.docx, a.xlsx); none may overwrite another.
    name, number = f"{stem}.pdf", 1
    while name in used:
        number += 1
        name = f"{stem}-{number}.pdf"
    used.add(name)
    return out_dir / name


def _count_pages(path: Path) -> int:
    try:
        with pikepdf_opened(path) as pdf:
            return len(pdf.pages)
    except QPDF_ERRORS as exc:
        raise ToolFailed(
            f"LibreOffice wrote a damaged PDF {path.name!r} ({exc}); it was not published. "
            "Please report this with the input file."
        ) from None


def pdf_has_text(path: Path) -> bool:
    """True when any page of the PDF has extractable, non-blank text (read by pdfium)."""
    document = pypdfium2.PdfDocument(path)
    try:
        return any(page.get_textpage().get_text_range().strip() for page in document)
    finally:
        document.close()


@dataclass(frozen=True)
class OfficeToPdfStep:
    """Convert office documents and text to PDF with headless LibreOffice."""

    name: str = "office-to-pdf"
    options: tuple[OptionSpec, ...] = (TIMEOUT, PAGE_RANGE)

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write one ``<stem>.pdf`` per input into ``out_dir``, all in one LibreOffice run."""
        formats = [detect_office(source) for source in inputs]
        require_components(
            tools.find("soffice", package=WRITER_PACKAGE), {found.family for found in formats}
        )
        page_range = "".join(ctx.options["OFFICE.PAGE_RANGE"].split())
        timeout = ctx.options["OFFICE.TIMEOUT"] * len(inputs)
        outputs: list[Path] = []
        used: set[str] = set()
        with tempfile.TemporaryDirectory(
            prefix=".soffice-", dir=out_dir, ignore_cleanup_errors=True
        ) as scratch_name:
            scratch = Path(scratch_name)
            staged, produced = scratch / "in", scratch / "pdf"
            staged.mkdir()
            links = [staged / f"in-{n:03d}.{found.suffix}" for n, found in enumerate(formats, 1)]
            for source, link in zip(inputs, links, strict=True):
                _stage(source, link)
            try:
                printed = run_soffice(
                    links, _pdf_options(page_range), produced, scratch, timeout=timeout
                )
            except JobTimeout:
                raise JobTimeout(
                    f"LibreOffice did not finish within {timeout:g} s (OFFICE.TIMEOUT = "
                    f"{ctx.options['OFFICE.TIMEOUT']:g} s per file) and was stopped. Raise "
                    "OFFICE.TIMEOUT for this folder if the documents are simply large."
                ) from None
            for source, found, link in zip(inputs, formats, links, strict=True):
                pdf = produced / f"{link.stem}.pdf"
                if not pdf.is_file() or pdf.stat().st_size == 0:
                    raise _no_output(source, found, printed, page_range)
                target = _unique(out_dir, output_stem(inputs, source, ctx), used)
                pdf.replace(target)
                outputs.append(target)
        pages = [_count_pages(path) for path in outputs]
        if len(outputs) == 1:
            message = (
                f"Converted {formats[0].label} to PDF with LibreOffice: {pages[0]} page(s), "
                f"{human_bytes(outputs[0].stat().st_size)}."
            )
        else:
            message = (
                f"Converted {len(outputs)} documents to PDF with LibreOffice: "
                f"{sum(pages)} page(s) in all."
            )
        # With a page range the chosen pages may well be blank; text is not promised.
        expect_text = [found.has_text and not page_range for found in formats]
        return StepResult(outputs, message, {"pages": pages, "expect_text": expect_text})

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Reopen each PDF with pdfium: same pages, at least one, text where the input had it."""
        for output, pages, expect_text in zip(
            result.outputs, result.facts["pages"], result.facts["expect_text"], strict=True
        ):
            found = count_pages_pdfium(output, "")
            if found != pages or found < 1:
                raise ToolFailed(
                    f"{output.name!r} has {found} page(s) in pdfium where {pages} were written; "
                    "it was not published. Please report this with the input file."
                )
            if expect_text and not pdf_has_text(output):
                raise ToolFailed(
                    f"The document behind {output.name!r} has text but the PDF LibreOffice "
                    "wrote has none (missing fonts?); it was not published."
                )


OFFICE_TO_PDF = Workflow(
    name="office-to-pdf",
    description="Word, Excel, PowerPoint, OpenDocument, RTF and text to PDF with LibreOffice.",
    steps=(OfficeToPdfStep(),),
    profiles={"default": {}},
)


WORKFLOWS = (OFFICE_TO_PDF,)


def engine_versions() -> dict[str, str]:
    """Version of LibreOffice, for ``hotfolder workflows`` and status files."""
    return {"libreoffice": tools.version("soffice", "--version")}
