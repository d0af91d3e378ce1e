"""Who is to blame when the independent reader refuses a file: the input or the engine.

Outputs are checked in pdfium, a reader independent of qpdf (DESIGN.md §3.8). qpdf
is lenient: it opens, and rewrites unchanged, files that pdfium refuses (a trailer
whose ``/Root`` is not an indirect object, a missing header, an image stream that
does not decode). Such an output then fails its check through no fault of the
engine, so before a failed check becomes ``tool_failed`` ("please report this") the
inputs are put to the same reader: one it refuses is ``corrupt_input``, with advice
the operator can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pypdfium2
import pypdfium2.raw

from hotfolder.errors import CorruptInput
from hotfolder.workflows.base import StepContext

#: An input and the passwords that may open it (DOC.PASSWORD, then none).
Source = tuple[Path, Sequence[str]]


def unreadable_input(source: Path, reader: str, reason: str) -> CorruptInput:
    """The error for an input that ``reader`` cannot read: the input's fault."""
    reason = reason.rstrip(".")
    return CorruptInput(
        f"{source.name!r} cannot be read by {reader} ({reason}), although the converter "
        "accepted it; other programs may fail on it too, so its result was not published. "
        "Export it again from the program that made it."
    )


def pdfium_refusal(path: Path, passwords: Sequence[str] = ()) -> str:
    """Why pdfium cannot open ``path`` with any of ``passwords`` (or none); "" if it can.

    A file that only wants another password is readable: the step opened it with
    one qpdf accepted, so a password error says nothing against the input.
    """
    reason = ""
    for password in [*passwords, ""]:
        try:
            pypdfium2.PdfDocument(path, password=password or None).close()
        except pypdfium2.PdfiumError as exc:
            if getattr(exc, "err_code", None) == pypdfium2.raw.FPDF_ERR_PASSWORD:
                return ""
            reason = str(exc)
        else:
            return ""
    return reason


def blame_inputs(sources: Iterable[Source]) -> None:
    """Raise CorruptInput for the first input pdfium cannot open, else return.

    Call when an output failed to open in pdfium, before blaming the engine.
    """
    for source, passwords in sources:
        reason = pdfium_refusal(source, passwords)
        if reason:
            raise unreadable_input(source, "pdfium", reason)


def sources_of(inputs: Iterable[Path], ctx: StepContext) -> list[Source]:
    """Each input with the passwords its step may open it with."""
    if "DOC.PASSWORD" not in ctx.options:
        return [(path, []) for path in inputs]
    return [(path, ctx.document_option(path, "DOC.PASSWORD")) for path in inputs]
