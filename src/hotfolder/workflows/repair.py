"""Which repairs qpdf made to a damaged PDF may be accepted without asking.

Viewers open PDFs with a broken cross-reference table silently (they rebuild
it, as qpdf does), so refusing them makes an archive workflow fail on files
users see as fine. A file cut short is different: qpdf "repairs" it too, and a
half-copied scan loses pages without a word. The policy ``PDF.REPAIR = "xref"``
(the default of the steps that compare every page's text before and after)
therefore accepts a repair only when qpdf rebuilt nothing but the
cross-reference table and the file still ends with its ``%%EOF`` marker;
``true`` accepts whatever qpdf repairs, ``false`` nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pypdfium2

from hotfolder.errors import ToolFailed
from hotfolder.workflows.base import OptionSpec

Policy = bool | Literal["xref"]

REPAIR_CHECKED = OptionSpec(
    "PDF.REPAIR",
    bool | Literal["xref"],
    "xref",
    "Damaged PDFs: xref accepts files whose only damage is a cross-reference table qpdf "
    "rebuilt (the file is complete; text is compared); true accepts any repair qpdf "
    "makes (also truncated files); false refuses every damaged file.",
)

#: What qpdf says while it rebuilds a cross-reference table, and nothing else.
_XREF_WARNINGS = (
    "file is damaged",
    "xref",
    "cross-reference table",
    "reported number of objects",
)
#: A complete PDF ends with %%EOF, give or take trailing junk some writers append.
_TAIL = 1024


def ends_complete(path: Path) -> bool:
    """True when the file's last kilobyte holds the ``%%EOF`` marker of a complete PDF."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - _TAIL))
        return b"%%EOF" in handle.read()


def only_xref_rebuilt(repairs: Sequence[str]) -> bool:
    """True when every one of qpdf's warnings is about rebuilding the cross-reference table."""
    return all(any(marker in warning for marker in _XREF_WARNINGS) for warning in repairs)


def accepted(repairs: Sequence[str], path: Path, policy: Policy) -> bool:
    """Whether ``path``, opened with qpdf's warnings ``repairs``, may be used under ``policy``."""
    if not repairs or policy is True:
        return True
    if policy == "xref":
        return only_xref_rebuilt(repairs) and ends_complete(path)
    return False


def check_repaired_text(source: Path, output: Path, password: str) -> None:
    """Refuse (ToolFailed) an output of a repaired file that lost text pdfium reads in it.

    pdfium rebuilds a damaged file on its own, independently of qpdf: a page whose
    text it finds in the input but not in qpdf's output was lost by the repair.
    """
    # pdfa holds the text comparison and imports pdf, which imports this module.
    from hotfolder.workflows.pdfa import page_texts, pages_that_lost_text

    try:
        before = page_texts(source, password)
        after = page_texts(output, password)
    except pypdfium2.PdfiumError as exc:
        raise ToolFailed(
            f"The repaired file {output.name!r} could not be compared with its input in an "
            f"independent reader ({exc}); it was not published."
        ) from None
    lost = pages_that_lost_text(before, after)
    if lost or len(after) < len(before):
        raise ToolFailed(
            f"qpdf's repair of {source.name!r} lost text or pages "
            f"({len(before)} page(s) before, {len(after)} after); it was not published. "
            "Export the file again, or set PDF.REPAIR = false to refuse damaged files."
        )
