"""Images to PDF with img2pdf: JPEG embedded byte for byte, everything else lossless.

img2pdf puts JPEG data into the PDF as it is (no re-encoding, no generation
loss) and PNG and TIFF data losslessly, turning the page for an EXIF
orientation of 90, 180 or 270 degrees instead of touching the pixels. What
img2pdf refuses (mirrored orientations, 16-bit TIFF, unusual colour spaces) and
the formats it would only half understand (GIF, WebP, BMP) are first decoded by
Pillow, turned upright and handed over as a lossless PNG. Pages are checked with
pdfium, a reader independent of img2pdf and qpdf, before they may be published.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import img2pdf
import pypdfium2
from PIL import ExifTags, Image, ImageOps

from hotfolder.errors import CorruptInput, ToolFailed
from hotfolder.workflows.base import (
    OptionSpec,
    StepContext,
    StepResult,
    Workflow,
    human_bytes,
    output_stem,
)
from hotfolder.workflows.image import (
    MAX_PIXELS,
    open_checked,
    pillow_reason,
    raise_system_error,
    too_large,
)
from hotfolder.workflows.pagelayout import OPTIONS as LAYOUT_OPTIONS
from hotfolder.workflows.pagelayout import Layout, check_margin, make_layout, stated_dpi
from hotfolder.workflows.pdf import QPDF_ERRORS, pikepdf_opened

OPTIONS: tuple[OptionSpec, ...] = (*LAYOUT_OPTIONS, MAX_PIXELS)
#: EXIF orientation -> the page rotation img2pdf applies for it.
_ROTATION = {1: 0, 3: 180, 6: 90, 8: 270}
#: Formats img2pdf is given as they are; the others go through Pillow first.
_NATIVE = {"JPEG", "MPO", "PNG", "TIFF"}


def _orientation(image: Image.Image) -> int:
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) else 1


def _scan(source: Path, max_pixels: int) -> tuple[str, list[int], int]:
    """Decode each frame that becomes a page: return format, orientations, frame count.

    The orientations are the frames' EXIF values. Decoding refuses bombs and damaged
    files before img2pdf runs: img2pdf reads only a JPEG's header, so a truncated
    photo would otherwise reach the PDF as a broken picture. Scans come as multi-page
    TIFFs, so every TIFF frame becomes a page; an animated GIF or WebP is a picture,
    and only its first frame does.
    """
    orientations: list[int] = []
    with open_checked(source, max_pixels) as image:
        pil_format = image.format or ""
        total = getattr(image, "n_frames", 1)
        count = total if pil_format == "TIFF" else 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                for index in range(count):
                    image.seek(index)
                    width, height = image.size
                    if width * height > max_pixels:
                        raise too_large(source, (width, height), max_pixels)
                    image.load()
                    orientations.append(_orientation(image))
        except Image.DecompressionBombError:
            raise too_large(source, image.size, max_pixels) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise_system_error(exc)
            raise CorruptInput(
                f"{source.name!r} is damaged or truncated and cannot be decoded "
                f"({pillow_reason(exc, source)}). Export or copy it again."
            ) from None
    return pil_format, orientations, total


def _pdf_mode(image: Image.Image) -> Image.Image:
    """Convert to a pixel mode img2pdf embeds from a PNG without loss of meaning."""
    if image.mode in ("1", "L", "RGB", "RGBA", "LA", "I;16"):
        return image
    if image.mode == "P":
        return image.convert("RGBA") if "transparency" in image.info else image
    if image.mode in ("PA", "La", "RGBa"):
        return image.convert("RGBA")
    if image.mode in ("I", "I;16B", "I;16L", "I;16N"):
        return image.convert("I;16")
    if image.mode == "F":
        return image.convert("L")
    # CMYK, YCbCr, LAB, HSV: PNG stores none of them; RGB is what a viewer shows.
    return image.convert("RGB")


def _as_png(source: Path, max_pixels: int, count: int) -> list[bytes]:
    """Decode the first ``count`` frames with Pillow into upright lossless PNGs."""
    pages: list[bytes] = []
    with open_checked(source, max_pixels) as image, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for index in range(count):
            image.seek(index)
            upright = _pdf_mode(ImageOps.exif_transpose(image))
            kwargs: dict[str, Any] = {}
            dpi = stated_dpi(image.info.get("dpi"))
            if dpi:
                kwargs["dpi"] = dpi
            if image.info.get("icc_profile") and upright.mode != "P":
                kwargs["icc_profile"] = image.info["icc_profile"]
            buffer = io.BytesIO()
            # Not interlaced: img2pdf then copies the PNG data without re-encoding.
            upright.save(buffer, "PNG", compress_level=6, **kwargs)
            pages.append(buffer.getvalue())
    return pages


def _img2pdf(data: Sequence[bytes], target: Path, layout: Layout, **kwargs: Any) -> None:
    with warnings.catch_warnings(), target.open("wb") as handle:
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img2pdf.convert(
            *data,
            layout_fun=layout,
            outputstream=handle,
            nodate=True,
            allow_oversized=False,
            **kwargs,
        )


@dataclass(frozen=True)
class _Made:
    """One PDF made from one image: its page sizes as shown, and how it was made."""

    path: Path
    pages: list[tuple[float, float]]
    jpeg: Path | None  # the JPEG embedded byte for byte, if that is what happened


def _make_pdf(source: Path, target: Path, options: dict[str, Any], ctx: StepContext) -> _Made:
    max_pixels = options["IMAGE.MAX_PIXELS"]
    pil_format, orientations, total = _scan(source, max_pixels)
    if total > len(orientations):
        ctx.warn(f"{source.name!r} has {total} frames; only the first became a page.")
    sizes: list[tuple[float, float]] = []
    rotations = [_ROTATION.get(o, 0) for o in orientations]
    jpeg = source if pil_format == "JPEG" else None
    native = pil_format in _NATIVE and all(o in _ROTATION for o in orientations)
    if native:
        try:
            _img2pdf(
                [source.read_bytes()],
                target,
                make_layout(options, sizes, ctx),
                first_frame_only=len(orientations) == 1,
                rotation=img2pdf.Rotation.auto,
            )
        except MemoryError:
            raise
        except Exception as exc:  # img2pdf raises bare Exception for some inputs
            # Whatever img2pdf refuses, Pillow decodes; its errors are classified there.
            ctx.log.info("img2pdf cannot embed %s as it is (%s); using Pillow", source.name, exc)
            native = False
    if not native:
        sizes.clear()
        _img2pdf(
            _as_png(source, max_pixels, len(orientations)),
            target,
            make_layout(options, sizes, ctx),
            rotation=img2pdf.Rotation.none,
        )
        # Pillow turned the pixels upright already.
        rotations, jpeg = [0] * len(orientations), None
    if len(sizes) != len(orientations):
        raise ToolFailed(
            f"img2pdf made {len(sizes)} page(s) from the {len(orientations)} frame(s) of "
            f"{source.name!r}; nothing was published. Please report this with the file."
        )
    return _Made(target, _shown(sizes, rotations), jpeg)


def _shown(sizes: list[tuple[float, float]], rotations: list[int]) -> list[tuple[float, float]]:
    """Page sizes as a viewer shows them: a page turned by 90 or 270 degrees swaps."""
    return [
        (h, w) if r in (90, 270) else (w, h) for (w, h), r in zip(sizes, rotations, strict=True)
    ]


@dataclass(frozen=True)
class ImageToPdfStep:
    """Make one PDF per image: a page per TIFF page, JPEG data embedded as it is."""

    name: str = "image-to-pdf"
    options: tuple[OptionSpec, ...] = OPTIONS

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<name>.pdf`` per input image into ``out_dir``."""
        options = dict(ctx.options)
        check_margin(options)
        made = [
            _make_pdf(source, out_dir / f"{output_stem(inputs, source, ctx)}.pdf", options, ctx)
            for source in inputs
        ]
        pages = sum(len(m.pages) for m in made)
        size = human_bytes(sum(m.path.stat().st_size for m in made))
        if len(made) == 1:
            how = "JPEG embedded as it is" if made[0].jpeg else "lossless"
            message = f"Made a {pages}-page PDF from {inputs[0].name!r} ({how}, {size})."
        else:
            message = (
                f"Made {len(made)} PDFs with {pages} page(s) from {len(made)} images ({size})."
            )
        return StepResult(
            [m.path for m in made],
            message,
            {"pages": [m.pages for m in made], "jpeg": [m.jpeg for m in made]},
        )

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Check page count and page sizes with pdfium, and embedded JPEG bytes with qpdf."""
        facts = zip(result.outputs, result.facts["pages"], result.facts["jpeg"], strict=True)
        for output, expected, jpeg in facts:
            found = _page_sizes(output)
            if len(found) != len(expected) or not all(
                _close(f, e) for f, e in zip(found, expected, strict=True)
            ):
                raise ToolFailed(
                    f"{output.name!r} has pages {_pt(found)} where {_pt(expected)} were "
                    "made; it was not published. Please report this with the input file."
                )
            if jpeg is not None:
                _check_jpeg_embedded(output, jpeg)


def _close(found: tuple[float, float], expected: tuple[float, float]) -> bool:
    return abs(found[0] - expected[0]) <= 1 and abs(found[1] - expected[1]) <= 1


def _pt(sizes: Sequence[tuple[float, float]]) -> str:
    return ", ".join(f"{w:.0f}x{h:.0f} pt" for w, h in sizes) or "none"


def _page_sizes(path: Path) -> list[tuple[float, float]]:
    try:
        document = pypdfium2.PdfDocument(path)
    except pypdfium2.PdfiumError as exc:
        raise ToolFailed(
            f"The PDF {path.name!r} does not open in an independent reader ({exc}); it was "
            "not published. Please report this with the input file."
        ) from None
    try:
        return [document[i].get_size() for i in range(len(document))]
    finally:
        document.close()


def _check_jpeg_embedded(output: Path, jpeg: Path) -> None:
    """The promise of the JPEG route: the page shows the very bytes of the file."""
    try:
        with pikepdf_opened(output) as pdf:
            images = list(pdf.pages[0].get_images().values()) if len(pdf.pages) == 1 else []
            raw = [image.read_raw_bytes() for image in images]
    except QPDF_ERRORS:
        raw = []
    if raw != [jpeg.read_bytes()]:
        raise ToolFailed(
            f"{output.name!r} does not hold the JPEG data of {jpeg.name!r} unchanged; "
            "it was not published. Please report this with the input file."
        )


IMAGE_TO_PDF = Workflow(
    name="image-to-pdf",
    description="Images (JPEG, PNG, TIFF, WebP, BMP, GIF) to PDF with img2pdf, losslessly.",
    steps=(ImageToPdfStep(),),
    profiles={
        "default": {},
        "a4": {"PAGE.SIZE": "a4", "PAGE.MARGIN": 10.0},
        "letter": {"PAGE.SIZE": "letter", "PAGE.MARGIN": 10.0},
    },
)


WORKFLOWS = (IMAGE_TO_PDF,)


def engine_versions() -> dict[str, str]:
    """Version of img2pdf, for ``hotfolder workflows`` and status files."""
    return {"img2pdf": str(img2pdf.__version__)}
