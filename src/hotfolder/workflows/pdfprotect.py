"""pdf-protect and pdf-unprotect: AES-256 passwords and permissions with pikepdf (qpdf).

Protection is PDF 2.0's standard security handler revision 6 (AES-256). The owner
password grants every right; the user password (which may be empty) opens the file
with only the rights PROTECT.ALLOW lists, which readers enforce. Passwords are
secret options: they never appear in a message, a log line or a status file.
Outputs are checked in pdfium: which password opens them and which rights it gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import pikepdf
import pypdfium2
import pypdfium2.raw
from pydantic import AfterValidator, BeforeValidator

from hotfolder.errors import CorruptInput, OptionInvalid, ToolFailed
from hotfolder.workflows.base import OptionSpec, StepContext, StepResult, Workflow, output_stem
from hotfolder.workflows.pdf import (
    PASSWORD,
    QPDF_ERRORS,
    REPAIR,
    check_late_warnings,
    clean_message,
    open_input,
)
from hotfolder.workflows.pdf import (
    engine_versions as pdf_engine_versions,
)
from hotfolder.workflows.readers import Source, blame_inputs, sources_of

Right = Literal["print", "copy", "modify", "annotate", "fill-forms", "assemble"]

#: What each right sets in pikepdf.Permissions, and the bits of the PDF permission
#: value /P it stands for (ISO 32000-2, table 22), which pdfium reports back.
_RIGHTS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "print": (("print_lowres", "print_highres"), (3, 12)),
    "modify": (("modify_other",), (4,)),
    "copy": (("extract",), (5,)),
    "annotate": (("modify_annotation",), (6,)),
    "fill-forms": (("modify_form",), (9,)),
    "assemble": (("modify_assembly",), (11,)),
}
#: Bit 10 (accessibility) is always granted: PDF 2.0 readers ignore it anyway, and
#: denying it would only stop screen readers.
_ACCESSIBILITY_BIT = 10
_CHECKED_BITS = sum(1 << (bit - 1) for _, bits in _RIGHTS.values() for bit in bits) | (
    1 << (_ACCESSIBILITY_BIT - 1)
)
#: Revision 6 of the standard security handler: AES-256 (PDF 2.0).
_REVISION: Final = 6
#: Revision 6 passwords are UTF-8 cut to 127 bytes; longer ones would not reopen.
_MAX_PASSWORD_BYTES = 127


def _password_length(value: str) -> str:
    if len(value.encode("utf-8")) > _MAX_PASSWORD_BYTES:
        raise ValueError(f"AES-256 PDF passwords hold at most {_MAX_PASSWORD_BYTES} bytes (UTF-8)")
    return value


def _rights_list(value: Any) -> Any:
    # "print, copy" from a command line; "" means no rights at all.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


OWNER_PASSWORD = OptionSpec(
    "PROTECT.OWNER_PASSWORD",
    Annotated[str, AfterValidator(_password_length)],
    "",
    "Password that grants every right, including removing the protection (required; "
    "at most 127 bytes).",
    secret=True,
)
USER_PASSWORD = OptionSpec(
    "PROTECT.USER_PASSWORD",
    Annotated[str, AfterValidator(_password_length)],
    "",
    "Password needed to open the file; empty: anyone may open it, with only the "
    "rights in PROTECT.ALLOW.",
    secret=True,
)
ALLOW = OptionSpec(
    "PROTECT.ALLOW",
    Annotated[list[Right], BeforeValidator(_rights_list)],
    ["print", "copy"],
    "Rights a reader without the owner password has: "
    + ", ".join(get_args(Right))
    + " (a list, or comma-separated; empty: view only).",
)


def permissions(rights: Sequence[str]) -> pikepdf.Permissions:
    """Pikepdf permissions granting exactly ``rights`` (and accessibility)."""
    granted = {field for right in rights for field in _RIGHTS[right][0]}
    every = {field for fields, _ in _RIGHTS.values() for field in fields}
    return pikepdf.Permissions(
        accessibility=True, **{field: field in granted for field in sorted(every)}
    )


def permission_bits(rights: Sequence[str]) -> int:
    """The bits of /P that ``rights`` set, limited to the bits this module checks."""
    bits = 1 << (_ACCESSIBILITY_BIT - 1)
    for right in rights:
        for bit in _RIGHTS[right][1]:
            bits |= 1 << (bit - 1)
    return bits


def _passwords(options: Mapping[str, Any]) -> tuple[str, str]:
    owner: str = options["PROTECT.OWNER_PASSWORD"]
    user: str = options["PROTECT.USER_PASSWORD"]
    if not owner:
        raise OptionInvalid(
            "pdf-protect needs an owner password: set PROTECT.OWNER_PASSWORD for this "
            "folder (it is never shown or logged). Without one, anybody could lift the "
            "restrictions."
        )
    if owner == user:
        raise OptionInvalid(
            "PROTECT.OWNER_PASSWORD and PROTECT.USER_PASSWORD are the same, so whoever opens "
            "the file would have every right. Choose a different owner password."
        )
    return owner, user


def _pdfium(path: Path, password: str, source: Source) -> pypdfium2.PdfDocument:
    try:
        return pypdfium2.PdfDocument(path, password=password or None)
    except pypdfium2.PdfiumError as exc:
        blame_inputs([source])
        raise ToolFailed(
            f"The protected file {path.name!r} does not open in pdfium with the password "
            f"it was given ({exc}); it was not published. Please report this."
        ) from None


def _rewrite_error(source: Path, exc: Exception) -> CorruptInput:
    return CorruptInput(
        f"{source.name!r} could not be rewritten ({clean_message(str(exc), source)}). "
        "Export or copy it again."
    )


@dataclass(frozen=True)
class ProtectStep:
    """Encrypt every input with AES-256, an owner password and limited rights."""

    name: str = "pdf-protect"
    options: tuple[OptionSpec, ...] = (
        PASSWORD,
        REPAIR,
        OWNER_PASSWORD,
        USER_PASSWORD,
        ALLOW,
    )

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<stem>.pdf`` per input, encrypted; an already protected input is re-keyed."""
        owner, user = _passwords(ctx.options)
        rights: list[str] = ctx.options["PROTECT.ALLOW"]
        encryption = pikepdf.Encryption(
            owner=owner, user=user, R=_REVISION, allow=permissions(rights), aes=True
        )
        outputs: list[Path] = []
        pages: list[int] = []
        for source in inputs:
            target = out_dir / f"{output_stem(inputs, source, ctx)}.pdf"
            opened = open_input(source, ctx)
            try:
                pages.append(len(opened.pdf.pages))
                opened.pdf.save(target, encryption=encryption)
                check_late_warnings(opened, source, ctx)
            except QPDF_ERRORS as exc:
                raise _rewrite_error(source, exc) from None
            finally:
                opened.close()
            outputs.append(target)
        opens = "needs a password to open" if user else "opens without a password"
        allowed = ", ".join(rights) if rights else "viewing only"
        message = (
            f"Protected {len(outputs)} file(s) with AES-256: {opens}; allowed without the "
            f"owner password: {allowed}."
        )
        return StepResult(outputs, message, {"pages": pages})

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Check in pdfium: the user password is needed, the rights are as set, the owner's all."""
        owner, user = _passwords(ctx.options)
        expected = permission_bits(ctx.options["PROTECT.ALLOW"])
        sources = sources_of(inputs, ctx)
        facts = zip(sources, result.outputs, result.facts["pages"], strict=True)
        for source, output, pages in facts:
            if user:
                try:
                    pypdfium2.PdfDocument(output).close()
                except pypdfium2.PdfiumError:
                    pass
                else:
                    raise ToolFailed(
                        f"{output.name!r} opens without its user password; it was not "
                        "published. Please report this."
                    )
            document = _pdfium(output, user, source)
            try:
                revision = pypdfium2.raw.FPDF_GetSecurityHandlerRevision(document.raw)
                granted = pypdfium2.raw.FPDF_GetDocPermissions(document.raw) & _CHECKED_BITS
                count = len(document)
            finally:
                document.close()
            document = _pdfium(output, owner, source)
            try:
                owned = pypdfium2.raw.FPDF_GetDocPermissions(document.raw) & _CHECKED_BITS
            finally:
                document.close()
            if revision != _REVISION or granted != expected or owned != _CHECKED_BITS:
                raise ToolFailed(
                    f"{output.name!r} is not protected as asked (security revision "
                    f"{revision}, rights {granted:#x} instead of {expected:#x}); it was not "
                    "published. Please report this."
                )
            if count != pages:
                raise ToolFailed(
                    f"{output.name!r} has {count} page(s) where the input had {pages}; "
                    "it was not published. Please report this."
                )


@dataclass(frozen=True)
class UnprotectStep:
    """Remove the password and the restrictions of every input (DOC.PASSWORD opens it)."""

    name: str = "pdf-unprotect"
    options: tuple[OptionSpec, ...] = (PASSWORD, REPAIR)

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<stem>.pdf`` per input, not encrypted."""
        outputs: list[Path] = []
        pages: list[int] = []
        protected = 0
        for source in inputs:
            target = out_dir / f"{output_stem(inputs, source, ctx)}.pdf"
            opened = open_input(source, ctx)
            try:
                if opened.pdf.is_encrypted:
                    protected += 1
                else:
                    ctx.warn(f"{source.name!r} was not password-protected; written as it was.")
                pages.append(len(opened.pdf.pages))
                opened.pdf.save(target, encryption=False, deterministic_id=True)
                check_late_warnings(opened, source, ctx)
            except QPDF_ERRORS as exc:
                raise _rewrite_error(source, exc) from None
            finally:
                opened.close()
            outputs.append(target)
        message = f"Removed the protection of {protected} of {len(outputs)} file(s)."
        return StepResult(outputs, message, {"pages": pages})

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Check in pdfium: opens without a password, not encrypted, same page count."""
        sources = sources_of(inputs, ctx)
        facts = zip(sources, result.outputs, result.facts["pages"], strict=True)
        for source, output, pages in facts:
            try:
                document = pypdfium2.PdfDocument(output)
            except pypdfium2.PdfiumError as exc:
                blame_inputs([source])
                raise ToolFailed(
                    f"{output.name!r} does not open without a password in pdfium ({exc}); "
                    "it was not published. Please report this."
                ) from None
            try:
                revision = pypdfium2.raw.FPDF_GetSecurityHandlerRevision(document.raw)
                count = len(document)
            finally:
                document.close()
            if revision != -1 or count != pages:
                raise ToolFailed(
                    f"{output.name!r} is still encrypted or has {count} page(s) instead of "
                    f"{pages}; it was not published. Please report this."
                )


PDF_PROTECT = Workflow(
    name="pdf-protect",
    description="Protect PDFs with AES-256: an owner password, an optional user password "
    "and the rights readers get (print, copy, modify...).",
    steps=(ProtectStep(),),
    profiles={
        "default": {},
        "view-only": {"PROTECT.ALLOW": []},
        "unrestricted": {"PROTECT.ALLOW": list(get_args(Right))},
    },
)

PDF_UNPROTECT = Workflow(
    name="pdf-unprotect",
    description="Remove the password and restrictions of PDFs opened with DOC.PASSWORD.",
    steps=(UnprotectStep(),),
    profiles={"default": {}},
)


WORKFLOWS = (PDF_PROTECT, PDF_UNPROTECT)


def engine_versions() -> dict[str, str]:
    """Versions of the engines protection uses (pikepdf, qpdf, pdfium)."""
    return pdf_engine_versions()
