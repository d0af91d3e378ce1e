"""PDF steps on pikepdf (qpdf): opening protected files and optimization.

pikepdf errors are translated here, at the engine boundary, into the job error
tree: a damaged file is ``corrupt_input``, a missing or wrong password is
``password_required`` / ``password_incorrect``, anything that is not a PDF is
``unsupported_format``. Outputs are verified with pdfium (pypdfium2), a reader
independent of qpdf, before they may be published.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

import pikepdf
import PIL
import pypdfium2
import pypdfium2.version
from pydantic import AfterValidator, BeforeValidator, Field

from hotfolder.errors import (
    CorruptInput,
    PasswordIncorrect,
    PasswordRequired,
    ToolFailed,
    UnsupportedFormat,
)
from hotfolder.memory import out_of_memory
from hotfolder.workflows.base import (
    OptionSpec,
    StepContext,
    StepResult,
    Workflow,
    human_bytes,
    output_stem,
)
from hotfolder.workflows.detect import detect_format
from hotfolder.workflows.pdfbounds import (
    SIZE_OPTIONS,
    check_decoded_sizes,
    remove_unused_resources,
)
from hotfolder.workflows.pdfimages import ImageReport, check_images, recompress_images
from hotfolder.workflows.readers import Source, blame_inputs
from hotfolder.workflows.repair import REPAIR_CHECKED, Policy, accepted, check_repaired_text

#: What qpdf raises for a damaged file. QpdfRuntimeError is not a PdfError: qpdf throws
#: it from deep inside (e.g. "/Count is wrong after flattening pages tree" for a fuzzed
#: page tree); caught only as PdfError it became an ``internal`` error.
QPDF_ERRORS: tuple[type[Exception], ...] = (pikepdf.PdfError, pikepdf.QpdfRuntimeError)


def as_list(value: Any) -> Any:
    """Wrap a plain string into a list (a folder with one password may write it so)."""
    return [value] if isinstance(value, str) else value


PASSWORD = OptionSpec(
    "DOC.PASSWORD",
    Annotated[list[str], BeforeValidator(as_list)],
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
    stream: BinaryIO | None = None

    def close(self) -> None:
        """Release the file handle."""
        self.pdf.close()
        if self.stream is not None:
            self.stream.close()


def open_pikepdf(path: Path, password: str = "") -> tuple[pikepdf.Pdf, BinaryIO | None]:
    """``pikepdf.open(path)`` for any file name; returns the Pdf and a stream to close.

    pikepdf passes the path to qpdf as text (for its messages), which a name that is
    not valid UTF-8 (a Latin-1 SMB client, an old zip) cannot be: pikepdf.open
    raises TypeError. Such a file is opened here and handed over as a stream, which
    the caller closes after the Pdf.
    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        stream = path.open("rb")
        try:
            return pikepdf.open(stream, password=password), stream
        except BaseException:
            stream.close()
            raise
    return pikepdf.open(path, password=password), None


@contextmanager
def pikepdf_opened(path: Path, password: str = "") -> Iterator[pikepdf.Pdf]:
    """``with pikepdf.open(path)`` for any file name (see :func:`open_pikepdf`)."""
    pdf, stream = open_pikepdf(path, password)
    try:
        yield pdf
    finally:
        pdf.close()
        if stream is not None:
            stream.close()


def clean_message(message: str, path: Path) -> str:
    """Return a qpdf message with the work-area path cut down to the file name."""
    # qpdf prefixes messages with the absolute work-area path (or, for a file opened
    # as a stream, the stream's repr); the user knows the name.
    text = str(message).replace(f"stream <_io.BufferedReader name={str(path)!r}>", path.name)
    return text.replace(str(path), path.name).strip()


def require_pdf(path: Path) -> None:
    """Raise UnsupportedFormat unless the file's content is a PDF."""
    found = detect_format(path)
    if found != "pdf":
        what = f"a {found.upper()} image" if found else "not a PDF"
        raise UnsupportedFormat(
            f"{path.name!r} is {what}, whatever its name says. "
            "Drop it into a folder whose workflow accepts that format."
        )


def open_pdf(path: Path, passwords: Sequence[str], *, repair: Policy) -> OpenedPdf:
    """Open ``path`` trying each password in order, then the empty one.

    Raises UnsupportedFormat, CorruptInput, PasswordRequired or PasswordIncorrect.
    qpdf's repair warnings make the file ``corrupt_input`` unless ``repair`` accepts
    them (:mod:`hotfolder.workflows.repair`).
    """
    require_pdf(path)
    # The empty password opens files that only restrict permissions (owner password).
    attempts = [*passwords, ""] if passwords else [""]
    for password in attempts:
        try:
            with warnings.catch_warnings():
                # Folder passwords are tried on every file, protected or not.
                warnings.filterwarnings("ignore", "A password was provided", UserWarning)
                pdf, stream = open_pikepdf(path, password)
        except pikepdf.PasswordError:
            continue
        except QPDF_ERRORS as exc:
            raise out_of_memory(str(exc)) or CorruptInput(
                f"{path.name!r} is damaged and cannot be read ({clean_message(str(exc), path)}). "
                "Export or copy it again."
            ) from None
        repairs = [clean_message(w, path) for w in pdf.get_warnings()]
        if not accepted(repairs, path, repair):
            OpenedPdf(pdf, password, repairs, stream).close()
            raise CorruptInput(
                f"{path.name!r} is damaged ({repairs[0]}); it may be truncated or only "
                "partly copied. Copy it again, or set PDF.REPAIR = true to accept "
                "qpdf's repair."
            )
        return OpenedPdf(pdf, password, repairs, stream)
    if passwords:
        raise PasswordIncorrect(
            f"None of the {len(passwords)} password(s) in DOC.PASSWORD opens {path.name!r}. "
            "Add the right password to DOC.PASSWORD."
        )
    raise PasswordRequired(
        f"{path.name!r} is password-protected. Set DOC.PASSWORD for this folder "
        "to the password that opens it."
    )


def open_input(source: Path, ctx: StepContext) -> OpenedPdf:
    """Open a step's input with its DOC.PASSWORD and PDF.REPAIR; warn about repairs.

    A manifest may give the input its own password; otherwise the job's is used.
    Raises what :func:`open_pdf` raises.
    """
    passwords = ctx.document_option(source, "DOC.PASSWORD")
    opened = open_pdf(source, passwords, repair=ctx.options["PDF.REPAIR"])
    for repair in opened.repairs:
        ctx.warn(f"repaired: {repair} (qpdf)")
    return opened


def check_late_warnings(opened: OpenedPdf, source: Path, ctx: StepContext) -> None:
    """Fail (CorruptInput) on damage qpdf met only while writing, unless PDF.REPAIR.

    Call after saving and before closing ``opened``; with PDF.REPAIR the damage
    becomes warnings.
    """
    found = opened.pdf.get_warnings()[len(opened.repairs) :]
    if memory := out_of_memory(*found):
        raise memory
    late = [clean_message(w, source) for w in found]
    # Damage met while writing is in the content, never only in the xref table.
    if late and ctx.options["PDF.REPAIR"] is not True:
        raise CorruptInput(
            f"{source.name!r} has damaged content ({late[0]}). Export it again, "
            "or set PDF.REPAIR = true to accept qpdf's repair."
        )
    for warning in late:
        ctx.warn(f"qpdf: {warning}")


def count_pages_pdfium(path: Path, password: str, sources: Iterable[Source] = ()) -> int:
    """Open ``path`` with pdfium and return its page count.

    When pdfium cannot open the output, raise CorruptInput if it cannot open one of
    the ``sources`` (the inputs) either, else ToolFailed.
    """
    try:
        document = pypdfium2.PdfDocument(path, password=password or None)
    except pypdfium2.PdfiumError as exc:
        blame_inputs(sources)
        raise ToolFailed(
            f"The converted file {path.name!r} does not open in an independent reader "
            f"({exc}); it was not published. Please report this with the input file."
        ) from None
    try:
        return len(document)
    finally:
        document.close()


MIN_IMAGE_DPI = 50


def _image_dpi(value: int) -> int:
    # 10 dpi would turn photos into mosaics; a typo should not do that to a folder.
    if value and value < MIN_IMAGE_DPI:
        raise ValueError(f"use 0 (off) or at least {MIN_IMAGE_DPI}")
    return value


IMAGE_QUALITY = OptionSpec(
    "PDF.IMAGE_QUALITY",
    Annotated[int, Field(ge=0, le=100)],
    0,
    "JPEG quality (1-100) for recompressing photos inside the PDF; 0 keeps every image "
    "lossless. Only replaces an image when the result is smaller.",
)
IMAGE_MAX_DPI = OptionSpec(
    "PDF.IMAGE_MAX_DPI",
    Annotated[int, Field(ge=0), AfterValidator(_image_dpi)],
    0,
    f"Downsample images drawn at more than this resolution (pixels per inch, 0 or at "
    f"least {MIN_IMAGE_DPI}); 0 keeps every image's pixel size.",
)


@dataclass(frozen=True)
class OptimizeStep:
    """Rewrite PDFs: object streams, recompressed streams, unused resources, images."""

    name: str = "pdf-optimize"
    options: tuple[OptionSpec, ...] = (
        PASSWORD,
        REPAIR_CHECKED,
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
        IMAGE_QUALITY,
        IMAGE_MAX_DPI,
        *SIZE_OPTIONS,
    )

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<stem>.pdf`` per input into ``out_dir``; encryption is kept as it was."""
        outputs: list[Path] = []
        files: list[dict[str, Any]] = []
        for source in inputs:
            target = out_dir / f"{output_stem(inputs, source, ctx)}.pdf"
            files.append(self._optimize(source, target, ctx))
            outputs.append(target)
        return StepResult(outputs, _summary(files, ctx), {"files": files})

    def _optimize(self, source: Path, target: Path, ctx: StepContext) -> dict[str, Any]:
        opened = open_input(source, ctx)
        images = ImageReport()
        try:
            pdf = opened.pdf
            pages = len(pdf.pages)
            encrypted = pdf.is_encrypted
            if ctx.options["PDF.IMAGE_QUALITY"] or ctx.options["PDF.IMAGE_MAX_DPI"]:
                images = recompress_images(
                    pdf, ctx.options["PDF.IMAGE_QUALITY"], ctx.options["PDF.IMAGE_MAX_DPI"]
                )
                if images.no_downsampling:
                    ctx.warn(
                        f"Images in {source.name!r} were not downsampled: {images.no_downsampling}."
                    )
            sizes = check_decoded_sizes(
                pdf,
                source.name,
                ctx.options["PDF.MAX_DECODED_MB"],
                ctx.options["PDF.MAX_IMAGE_PIXELS"],
            )
            if ctx.options["PDF.REMOVE_UNUSED"]:
                for warning in remove_unused_resources(pdf, sizes, source.name):
                    ctx.warn(warning)
            # qpdf cannot decode streams while keeping encryption; encrypted files get
            # object streams, unused-resource removal and image recompression only.
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
            check_late_warnings(opened, source, ctx)
        except QPDF_ERRORS as exc:
            raise out_of_memory(str(exc)) or CorruptInput(
                f"{source.name!r} could not be rewritten: {clean_message(str(exc), source)}. "
                "Export or copy it again."
            ) from None
        finally:
            opened.close()
        return {
            "pages": pages,
            "password": opened.password,
            "before": source.stat().st_size,
            "after": target.stat().st_size,
            "images": images.images,
            "images_changed": images.changed,
            "repaired": bool(opened.repairs),
        }

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Check each output in pdfium: page count, images per page; linearization in qpdf."""
        for source, output, facts in zip(
            inputs, result.outputs, result.facts["files"], strict=True
        ):
            password = facts["password"]
            pages = count_pages_pdfium(output, password, [(source, [password])])
            if pages != facts["pages"]:
                raise ToolFailed(
                    f"The optimized file has {pages} page(s) where the input had "
                    f"{facts['pages']}; it was not published. Please report this."
                )
            if facts["images_changed"]:
                check_images(source, output, password)
            if facts["repaired"]:
                check_repaired_text(source, output, password)
            if ctx.options["PDF.LINEARIZE"]:
                with pikepdf_opened(output, password) as pdf:
                    if not pdf.is_linearized:
                        raise ToolFailed("qpdf did not linearize the output; it was not published.")


def _summary(files: list[dict[str, Any]], ctx: StepContext) -> str:
    before = sum(f["before"] for f in files)
    after = sum(f["after"] for f in files)
    pages = sum(f["pages"] for f in files)
    change = (after - before) * 100 / before if before else 0.0
    what = f"{pages} page(s)" if len(files) == 1 else f"{len(files)} files, {pages} page(s)"
    message = f"Optimized {what}: {human_bytes(before)} -> {human_bytes(after)} ({change:+.0f} %)."
    changed = sum(f["images_changed"] for f in files)
    if changed:
        message += f" Recompressed {changed} of {sum(f['images'] for f in files)} image(s)."
    if ctx.options["PDF.LINEARIZE"]:
        message += " Linearized for fast web view."
    return message


PDF_OPTIMIZE = Workflow(
    name="pdf-optimize",
    description="PDF optimization with pikepdf (qpdf): lossless by default; web profile "
    "linearizes, smallest recompresses and downsamples images with Pillow.",
    steps=(OptimizeStep(),),
    profiles={
        "default": {},
        "web": {"PDF.LINEARIZE": True},
        "smallest": {
            "PDF.IMAGE_QUALITY": 75,
            "PDF.IMAGE_MAX_DPI": 150,
            "PDF.OBJECT_STREAMS": "generate",
            "PDF.RECOMPRESS": True,
            "PDF.REMOVE_UNUSED": True,
        },
    },
)


WORKFLOWS = (PDF_OPTIMIZE,)


def engine_versions() -> dict[str, str]:
    """Versions of the PDF engines, for ``hotfolder workflows`` and status files."""
    return {
        "pikepdf": pikepdf.__version__,
        "qpdf": pikepdf.__libqpdf_version__,
        "pdfium": str(pypdfium2.version.PDFIUM_INFO),
        "Pillow": PIL.__version__,  # image recompression
    }
