"""Image conversion on Pillow: format, quality, size limits, orientation, metadata.

Pillow's errors are translated here: an image Pillow cannot identify is
``unsupported_format`` (or ``corrupt_input`` when its magic bytes say it is an
image), a decompression bomb is ``too_large``. Outputs are reopened and their
size and format checked before they may be published. :func:`open_checked` and
the ``IMAGE.*`` option specs are shared with the other Pillow-based steps.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import PIL
from PIL import ExifTags, Image, ImageOps
from pydantic import Field

from hotfolder.errors import CorruptInput, TooLarge, ToolFailed, UnsupportedFormat
from hotfolder.workflows.base import (
    OptionSpec,
    StepContext,
    StepResult,
    Workflow,
    human_bytes,
    output_stem,
)
from hotfolder.workflows.detect import detect_format

# Target format -> (Pillow format name, file suffix, modes it can store as they are).
FORMATS: dict[str, tuple[str, str, frozenset[str]]] = {
    "png": ("PNG", ".png", frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})),
    "jpeg": ("JPEG", ".jpg", frozenset({"L", "RGB", "CMYK"})),
    "tiff": ("TIFF", ".tif", frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"})),
    "webp": ("WEBP", ".webp", frozenset({"RGB", "RGBA"})),
}

_Positive = Annotated[int, Field(ge=0)]

QUALITY = OptionSpec(
    "IMAGE.QUALITY",
    Annotated[int, Field(ge=1, le=100)],
    85,
    "JPEG and WebP quality from 1 (smallest) to 100 (best).",
)
MAX_PIXELS = OptionSpec(
    "IMAGE.MAX_PIXELS",
    Annotated[int, Field(ge=1)],
    Image.MAX_IMAGE_PIXELS or 89_478_485,
    "Refuse images with more pixels than this (decompression-bomb guard).",
)

OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "IMAGE.FORMAT",
        Literal["png", "jpeg", "tiff", "webp"],
        "png",
        "Target format: png, jpeg, tiff or webp.",
    ),
    QUALITY,
    OptionSpec("IMAGE.MAX_WIDTH", _Positive, 0, "Shrink wider images to this width (0: no limit)."),
    OptionSpec(
        "IMAGE.MAX_HEIGHT", _Positive, 0, "Shrink taller images to this height (0: no limit)."
    ),
    OptionSpec(
        "IMAGE.METADATA",
        Literal["strip", "keep"],
        "keep",
        "keep: copy EXIF, XMP and the ICC profile; strip: drop EXIF and XMP "
        "(the ICC profile stays, colours depend on it).",
    ),
    OptionSpec(
        "IMAGE.THUMBNAIL",
        _Positive,
        0,
        "Also write <name>-thumb.<ext>, fitting in this many pixels square, in the "
        "target format (0: no thumbnail).",
    ),
    MAX_PIXELS,
)


def open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open an image header, refusing non-images and bombs before decoding.

    Raises UnsupportedFormat (not an image, or a PDF), CorruptInput (an image
    header Pillow cannot read) or TooLarge (more than ``max_pixels`` pixels).
    """
    found = detect_format(path)
    if found in (None, "pdf"):
        what = "a PDF" if found else "not an image Pillow can read"
        raise UnsupportedFormat(
            f"{path.name!r} is {what}. This folder converts PNG, JPEG, TIFF, WebP, GIF "
            "and BMP images."
        )
    # Workers run one job at a time, so the process-wide limit can be the job's:
    # Pillow then refuses far larger images from the header, before decoding.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Between 1x and 2x the limit Pillow only warns; the check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise too_large(path, _claimed_pixels(str(exc)), max_pixels) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise_system_error(exc)
        raise CorruptInput(
            f"{path.name!r} looks like a {found.upper()} image but cannot be read "
            f"({pillow_reason(exc, path)}). Export or copy it again."
        ) from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise too_large(path, (width, height), max_pixels)
    return image


def raise_system_error(exc: BaseException) -> None:
    """Re-raise an OSError that carries an errno: the system failed, not the file.

    Pillow reports damaged data as OSError without an errno ("image file is
    truncated"); a full disk or an I/O error while reading or saving has one, and
    must reach the runner as ``io_error`` (retried), never as ``corrupt_input``.
    """
    if isinstance(exc, OSError) and exc.errno is not None:
        raise exc


def pillow_reason(exc: BaseException, path: Path) -> str:
    """Pillow's message without the work-area path (the user knows the file by name)."""
    return str(exc).replace(str(path), path.name)


def _claimed_pixels(pillow_message: str) -> str:
    # Pillow says "Image size (900000000 pixels) exceeds limit of ..."
    match = re.search(r"\((\d+) pixels\)", pillow_message)
    return f"{int(match.group(1)):,} pixels" if match else "too many pixels"


def too_large(path: Path, size: tuple[int, int] | str, max_pixels: int) -> TooLarge:
    """The error for an image with more pixels than IMAGE.MAX_PIXELS allows."""
    shown = size if isinstance(size, str) else f"{size[0]} x {size[1]} pixels"
    return TooLarge(
        f"{path.name!r} has {shown}, more than IMAGE.MAX_PIXELS = {max_pixels}. "
        "Raise IMAGE.MAX_PIXELS for this folder if the file is trusted."
    )


def _to_storable(image: Image.Image, target: str) -> Image.Image:
    """Convert the pixel mode to one the target format stores without loss of meaning."""
    modes = FORMATS[target][2]
    if image.mode in modes:
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if image.mode in ("I", "I;16B", "I;16L", "I;16N") and "I;16" in modes:
        # Pillow 13 refuses to clip 32-bit integer images silently.
        return image.convert("I;16")
    if has_alpha and "RGBA" in modes:
        return image.convert("RGBA")
    if has_alpha:
        # JPEG has no alpha: flatten onto white, as a viewer would show it on paper.
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode in ("1", "L", "I", "F", "I;16") and "L" in modes:
        return image.convert("L")
    return image.convert("RGB")


def _fit(image: Image.Image, max_width: int, max_height: int) -> Image.Image:
    width, height = image.size
    limit_w = max_width or width
    limit_h = max_height or height
    if width <= limit_w and height <= limit_h:
        return image
    scale = min(limit_w / width, limit_h / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _save_kwargs(image: Image.Image, target: str, options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    icc = image.info.get("icc_profile")
    if icc:
        kwargs["icc_profile"] = icc
    if options["IMAGE.METADATA"] == "keep":
        exif = image.getexif()
        if exif:
            if ExifTags.Base.Orientation in exif:
                # The pixels are turned upright; a kept tag would turn them again.
                exif[ExifTags.Base.Orientation] = 1
            kwargs["exif"] = exif
        xmp = image.info.get("xmp")
        if xmp:
            kwargs["xmp"] = xmp
    if target == "jpeg":
        kwargs.update(quality=options["IMAGE.QUALITY"], optimize=True, progressive=True)
    elif target == "webp":
        kwargs.update(quality=options["IMAGE.QUALITY"], method=4)
    elif target == "png":
        kwargs.update(optimize=False, compress_level=6)
    elif target == "tiff":
        kwargs.update(compression="tiff_lzw" if image.mode != "1" else "group4")
    return kwargs


@dataclass(frozen=True)
class _Written:
    """One file a conversion wrote and the size it was written at."""

    path: Path
    size: tuple[int, int]


def _convert_one(
    source: Path, stem: str, out_dir: Path, options: dict[str, Any], ctx: StepContext
) -> tuple[list[_Written], str]:
    """Convert ``source`` to ``<stem>.<ext>`` (and its thumbnail); return files and summary."""
    target = options["IMAGE.FORMAT"]
    pil_format, suffix, _modes = FORMATS[target]
    written: list[_Written] = []
    with open_checked(source, options["IMAGE.MAX_PIXELS"]) as image:
        frames = getattr(image, "n_frames", 1)
        original = image.size
        try:
            with warnings.catch_warnings():
                # The pixel limit is ours (IMAGE.MAX_PIXELS), checked above.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image.load()
                storable = _to_storable(ImageOps.exif_transpose(image), target)
                kwargs = _save_kwargs(image, target, options)
                versions = [(stem, _fit(storable, *_limits(options)))]
                if options["IMAGE.THUMBNAIL"]:
                    # From the full-size pixels, not the shrunk main output: one
                    # resampling step keeps the thumbnail sharp.
                    edge = options["IMAGE.THUMBNAIL"]
                    versions.append((f"{stem}-thumb", _fit(storable, edge, edge)))
                for name, pixels in versions:
                    out = out_dir / f"{name}{suffix}"
                    pixels.save(out, pil_format, **kwargs)
                    written.append(_Written(out, pixels.size))
        except Image.DecompressionBombError:
            raise too_large(source, original, options["IMAGE.MAX_PIXELS"]) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise_system_error(exc)
            raise CorruptInput(
                f"{source.name!r} is damaged or truncated and cannot be decoded "
                f"({pillow_reason(exc, source)}). Export or copy it again."
            ) from None
    if frames > 1:
        ctx.warn(f"{source.name!r} has {frames} frames; only the first was converted.")
    main = written[0]
    summary = (
        f"Converted {original[0]}x{original[1]} {image.format or ''} to "
        f"{main.size[0]}x{main.size[1]} {pil_format} ({human_bytes(main.path.stat().st_size)})."
    )
    if len(written) > 1:
        summary += f" Thumbnail {written[1].size[0]}x{written[1].size[1]}."
    return written, summary


@dataclass(frozen=True)
class ConvertStep:
    """Convert images to another format, shrinking and orienting them on the way."""

    name: str = "image-convert"
    options: tuple[OptionSpec, ...] = OPTIONS

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<name>.<ext>`` (and ``<name>-thumb.<ext>``) per input into ``out_dir``."""
        options = dict(ctx.options)
        written: list[_Written] = []
        summary = ""
        for source in inputs:
            files, summary = _convert_one(
                source, output_stem(inputs, source, ctx), out_dir, options, ctx
            )
            written.extend(files)
        pil_format = FORMATS[options["IMAGE.FORMAT"]][0]
        if len(inputs) > 1:
            total = sum(w.path.stat().st_size for w in written)
            summary = f"Converted {len(inputs)} images to {pil_format} ({human_bytes(total)})."
        return StepResult(
            [w.path for w in written],
            summary,
            {"sizes": [w.size for w in written], "format": pil_format},
        )

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Reopen every output, decode it fully and check its format and size."""
        for output, size in zip(result.outputs, result.facts["sizes"], strict=True):
            try:
                with Image.open(output) as image:
                    image.load()
                    found = (image.format, image.size)
            except (OSError, SyntaxError, ValueError) as exc:
                raise ToolFailed(
                    f"Pillow wrote an unreadable file {output.name!r} ({exc}); it was not "
                    "published. Please report this with the input file."
                ) from None
            expected = (result.facts["format"], tuple(size))
            if found != expected:
                raise ToolFailed(
                    f"{output.name!r} is {found[0]} {found[1]} where {expected[0]} "
                    f"{expected[1]} was written; it was not published. Please report this."
                )


def _limits(options: dict[str, Any]) -> tuple[int, int]:
    return options["IMAGE.MAX_WIDTH"], options["IMAGE.MAX_HEIGHT"]


IMAGE_CONVERT = Workflow(
    name="image-convert",
    description="Convert images (PNG, JPEG, TIFF, WebP, GIF, BMP) with Pillow.",
    steps=(ConvertStep(),),
    profiles={
        "default": {},
        "web": {
            "IMAGE.FORMAT": "jpeg",
            "IMAGE.QUALITY": 82,
            "IMAGE.MAX_WIDTH": 2048,
            "IMAGE.MAX_HEIGHT": 2048,
            "IMAGE.METADATA": "strip",
        },
        "archive": {"IMAGE.FORMAT": "tiff", "IMAGE.METADATA": "keep"},
        # The main output is the thumbnail; IMAGE.THUMBNAIL adds one next to a full copy.
        "thumbnail": {
            "IMAGE.FORMAT": "jpeg",
            "IMAGE.QUALITY": 80,
            "IMAGE.MAX_WIDTH": 256,
            "IMAGE.MAX_HEIGHT": 256,
            "IMAGE.METADATA": "strip",
        },
    },
)


WORKFLOWS = (IMAGE_CONVERT,)


def engine_versions() -> dict[str, str]:
    """Version of the image engine, for ``hotfolder workflows`` and status files."""
    return {"Pillow": PIL.__version__}
