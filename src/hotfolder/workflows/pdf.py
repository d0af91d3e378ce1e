"""PDF steps on pikepdf (qpdf): opening protected files and lossless optimization.

pikepdf errors are translated here, at the engine boundary, into the job error
tree: a damaged file is ``corrupt_input``, a missing or wrong password is
``password_required`` / ``password_incorrect``, anything that is not a PDF is
``unsupported_format``. Outputs are verified with pdfium (pypdfium2), a reader
independent of qpdf, before they may be published.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pikepdf
import pypdfium2
import pypdfium2.version
from pydantic import BeforeValidator

from hotfolder.errors import (
    CorruptInput,
    PasswordIncorrect,
    PasswordRequired,
    ToolFailed,
    UnsupportedFormat,
)
from hotfolder.workflows.base import (
    OptionSpec,
    StepContext,
    StepResult,
    Workflow,
    human_bytes,
)
from hotfolder.workflows.detect import detect_format


def _as_list(value: Any) -> Any:
    # A folder with one password may write it as a plain string.
    return [value] if isinstance(value, str) else value


PASSWORD = OptionSpec(
    "DOC.PASSWORD",
    Annotated[list[str], BeforeValidator(_as_list)],
    [],
    "Passwords tried in order to open a protected PDF (a string or a list of strings).",
    secret=True,
)
REPAIR = OptionSpec(
    "PDF.REPAIR",
    bool,
    False,
    "Accept PDFs that qpdf had to repair (damaged cross-reference table, truncated file). "
    "Off by default: a repaired half-copied file silently loses pages.",
)


@dataclass
class OpenedPdf:
    """A PDF opened for reading, with what it took to open it."""

    pdf: pikepdf.Pdf
    password: str
    repairs: list[str]

    def close(self) -> None:
        """Release the file handle."""
        self.pdf.close()


def _clean(message: str, path: Path) -> str:
    # qpdf prefixes messages with the absolute work-area path; the user knows the name.
    return str(message).replace(str(path), path.name).strip()


def require_pdf(path: Path) -> None:
    """Raise UnsupportedFormat unless the file's content is a PDF."""
    found = detect_format(path)
    if found != "pdf":
        what = f"a {found.upper()} image" if found else "not a PDF"
        raise UnsupportedFormat(
            f"{path.name!r} is {what}, whatever its name says. "
            "Drop it into a folder whose workflow accepts that format."
        )


def open_pdf(path: Path, passwords: Sequence[str], *, repair: bool) -> OpenedPdf:
    """Open ``path`` trying each password in order, then the empty one.

    Raises UnsupportedFormat, CorruptInput, PasswordRequired or PasswordIncorrect.
    qpdf's repair warnings make the file ``corrupt_input`` unless ``repair``.
    """
    require_pdf(path)
    # The empty password opens files that only restrict permissions (owner password).
    attempts = [*passwords, ""] if passwords else [""]
    for password in attempts:
        try:
            pdf = pikepdf.open(path, password=password)
        except pikepdf.PasswordError:
            continue
        except pikepdf.PdfError as exc:
            raise CorruptInput(
                f"{path.name!r} is damaged and cannot be read ({_clean(str(exc), path)}). "
                "Export or copy it again."
            ) from None
        repairs = [_clean(w, path) for w in pdf.get_warnings()]
        if repairs and not repair:
            pdf.close()
            raise CorruptInput(
                f"{path.name!r} is damaged ({repairs[0]}); it may be truncated or only "
                "partly copied. Copy it again, or set PDF.REPAIR = true to accept "
                "qpdf's repair."
            )
        return OpenedPdf(pdf, password, repairs)
    if passwords:
        raise PasswordIncorrect(
            f"None of the {len(passwords)} password(s) in DOC.PASSWORD opens {path.name!r}. "
            "Add the right password to DOC.PASSWORD."
        )
    raise PasswordRequired(
        f"{path.name!r} is password-protected. Set DOC.PASSWORD for this folder "
        "to the password that opens it."
    )


def count_pages_pdfium(path: Path, password: str) -> int:
    """Open ``path`` with pdfium and return its page count; raise ToolFailed if unreadable."""
    try:
        document = pypdfium2.PdfDocument(path, password=password or None)
    except pypdfium2.PdfiumError as exc:
        raise ToolFailed(
            f"The converted file {path.name!r} does not open in an independent reader "
            f"({exc}); it was not published. Please report this with the input file."
        ) from None
    try:
        return len(document)
    finally:
        document.close()


@dataclass(frozen=True)
class OptimizeStep:
    """Rewrite a PDF losslessly: object streams, recompressed streams, unused resources."""

    name: str = "pdf-optimize"
    options: tuple[OptionSpec, ...] = (
        PASSWORD,
        REPAIR,
        OptionSpec("PDF.LINEARIZE", bool, False, "Linearize for fast web view."),
        OptionSpec(
            "PDF.OBJECT_STREAMS",
            Literal["generate", "preserve", "disable"],
            "generate",
            "Object streams: generate (smallest), preserve, or disable (PDF 1.4 readers).",
        ),
        OptionSpec(
            "PDF.RECOMPRESS",
            bool,
            True,
            "Recompress Flate streams at the highest level (lossless).",
        ),
        OptionSpec(
            "PDF.REMOVE_UNUSED",
            bool,
            True,
            "Remove fonts, images and other resources no page uses.",
        ),
    )

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<job name>.pdf`` into ``out_dir``; encryption is kept as it was."""
        source = inputs[0]
        opened = open_pdf(source, ctx.options["DOC.PASSWORD"], repair=ctx.options["PDF.REPAIR"])
        for repair in opened.repairs:
            ctx.warn(f"qpdf repaired the input: {repair}")
        target = out_dir / f"{ctx.job_name}.pdf"
        try:
            pdf = opened.pdf
            pages = len(pdf.pages)
            encrypted = pdf.is_encrypted
            if ctx.options["PDF.REMOVE_UNUSED"]:
                pdf.remove_unreferenced_resources()
            # qpdf cannot decode streams while keeping encryption; encrypted files
            # get object streams and unused-resource removal only.
            recompress = bool(ctx.options["PDF.RECOMPRESS"]) and not encrypted
            pdf.save(
                target,
                # Keep the file as protected as it came; dropping encryption silently
                # would publish a document its owner meant to restrict.
                encryption=True if encrypted else None,
                object_stream_mode=pikepdf.ObjectStreamMode[ctx.options["PDF.OBJECT_STREAMS"]],
                compress_streams=True,
                recompress_flate=recompress,
                stream_decode_level=pikepdf.StreamDecodeLevel.generalized if recompress else None,
                linearize=ctx.options["PDF.LINEARIZE"],
                # Same input, same bytes out (qpdf cannot do this for encrypted files).
                deterministic_id=not encrypted,
            )
            late = [_clean(w, source) for w in pdf.get_warnings()[len(opened.repairs) :]]
        except pikepdf.PdfError as exc:
            raise CorruptInput(
                f"{source.name!r} could not be rewritten: {_clean(str(exc), source)}. "
                "Export or copy it again."
            ) from None
        finally:
            opened.close()
        if late and not ctx.options["PDF.REPAIR"]:
            raise CorruptInput(
                f"{source.name!r} has damaged content ({late[0]}). Export it again, "
                "or set PDF.REPAIR = true to accept qpdf's repair."
            )
        for warning in late:
            ctx.warn(f"qpdf: {warning}")
        before, after = source.stat().st_size, target.stat().st_size
        change = (after - before) * 100 / before
        message = (
            f"Optimized {pages} page(s): {human_bytes(before)} -> {human_bytes(after)} "
            f"({change:+.0f} %)."
        )
        if ctx.options["PDF.LINEARIZE"]:
            message += " Linearized for fast web view."
        return StepResult(
            [target], message, {"pages": pages, "password": opened.password, "bytes": before}
        )

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Check the output opens in pdfium with the same page count (and is linearized)."""
        (output,) = result.outputs
        pages = count_pages_pdfium(output, result.facts["password"])
        if pages != result.facts["pages"]:
            raise ToolFailed(
                f"The optimized file has {pages} page(s) where the input had "
                f"{result.facts['pages']}; it was not published. Please report this."
            )
        if ctx.options["PDF.LINEARIZE"]:
            with pikepdf.open(output, password=result.facts["password"]) as pdf:
                if not pdf.is_linearized:
                    raise ToolFailed("qpdf did not linearize the output; it was not published.")


PDF_OPTIMIZE = Workflow(
    name="pdf-optimize",
    description="Lossless PDF optimization with pikepdf (qpdf); web profile linearizes.",
    steps=(OptimizeStep(),),
    profiles={"default": {}, "web": {"PDF.LINEARIZE": True}},
)


WORKFLOWS = (PDF_OPTIMIZE,)


def engine_versions() -> dict[str, str]:
    """Versions of the PDF engines, for ``hotfolder workflows`` and status files."""
    return {
        "pikepdf": pikepdf.__version__,
        "qpdf": pikepdf.__libqpdf_version__,
        "pdfium": str(pypdfium2.version.PDFIUM_INFO),
    }
