"""How much a PDF's streams decode to, found out without decoding them whole.

A 2 MB PDF can hold a page content stream that inflates to gigabytes of spaces.
Engines that parse page content (pdfium for text and rendering, qpdf's
unused-resource pass, pikepdf's PDF/A checks, Ghostscript) hold all of it in
memory, several times over. Before such a step runs, every stream of the file
is measured here: Flate data is inflated in small pieces and counted, up to the
limit and no further. A stream past ``PDF.MAX_DECODED_MB`` fails the job with
``too_large`` in about a second, naming the option, instead of growing the
worker to its memory limit.

Images are different: pdfium, Ghostscript and qpdf decode image data row by row
(a 60000 x 60000 image renders in about 140 MB), so their data is not inflated
here; an image larger than ``PDF.MAX_IMAGE_PIXELS`` (from its dictionary) fails,
which bounds the time such a file takes. The one step that decodes image data
whole, image recompression in pdf-optimize, bounds it itself.

Streams whose first filter is not Flate (LZW, RunLength, ASCII85, …) are
measured only when they are too short to exceed the limit whatever they hold;
longer ones are left to ``worker_memory_limit``, the backstop for everything.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

import pikepdf
from pydantic import Field

from hotfolder.errors import TooLarge
from hotfolder.memory import current_limit_mb, needed_more_message
from hotfolder.workflows.base import OptionSpec

MB = 1024 * 1024

MAX_DECODED = OptionSpec(
    "PDF.MAX_DECODED_MB",
    Annotated[int, Field(ge=1)],
    512,
    "Largest decompressed stream (a page's content, a font) a step decodes, in MB; a PDF "
    "with a larger one fails with too_large. Raise it (and worker_memory_limit) for "
    "huge drawings.",
)
MAX_IMAGE_PIXELS = OptionSpec(
    "PDF.MAX_IMAGE_PIXELS",
    Annotated[int, Field(ge=1)],
    1_000_000_000,
    "Largest image (width x height) a PDF may hold; a larger one fails with too_large. "
    "A 600 dpi A0 scan has 0.56 billion pixels.",
)
#: The options of every step that measures its inputs with check_decoded_sizes.
SIZE_OPTIONS = (MAX_DECODED, MAX_IMAGE_PIXELS)

#: A page whose content streams decode to more than this skips pdf-optimize's
#: unused-resource pass: qpdf parses the content in memory (about twice its size).
REMOVE_UNUSED_MAX_CONTENT_MB = 64

#: Compressed bytes inflated at a time while counting: at most ~1 MB comes out, which
#: malloc reuses (bigger pieces are fresh mappings that page-fault as they fill).
_INPUT_PIECE = 1024
#: The most Deflate expands its input (258 bytes from one 2-bit code, and a little).
_FLATE_RATIO = 1032
#: The most any generalized PDF filter expands its input (LZW codes of 4096 bytes).
_WORST_RATIO = 4096


@dataclass
class DecodedSizes:
    """What the streams of one PDF decode to, each counted up to the limit."""

    #: Decoded bytes of each page's content streams together, in page order.
    page_content: list[int] = field(default_factory=list)


def inflated_size(data: bytes, cap: int) -> int:
    """Bytes the zlib ``data`` inflates to, counted up to ``cap`` + 1."""
    inflater = zlib.decompressobj()
    view = memoryview(data)
    total = offset = 0
    try:
        # Small input pieces: Deflate expands at most about 1032 times, so no piece
        # inflates to more than about 1 MB, and no input is copied.
        while offset < len(view) and total <= cap and not inflater.eof:
            total += len(inflater.decompress(view[offset : offset + _INPUT_PIECE]))
            offset += _INPUT_PIECE
    except zlib.error:
        # Damaged data: qpdf decodes what it can and warns; the size so far is a bound.
        pass
    return total


def _filters(stream: pikepdf.Stream) -> list[str]:
    value = stream.get("/Filter")
    if isinstance(value, pikepdf.Array):
        return [str(item) for item in value]
    return [str(value)] if value is not None else []


def decoded_size(stream: pikepdf.Stream, cap: int, exact_above: int = 0) -> int:
    """What ``stream`` decodes to in bytes, counted up to ``cap`` + 1; 0 if unknown.

    A stream too short to decode to more than ``exact_above`` bytes is not decoded:
    that bound is returned instead (ordinary files are measured without inflating).
    """
    filters = _filters(stream)
    try:
        raw = stream.read_raw_bytes()
    except (pikepdf.PdfError, pikepdf.QpdfRuntimeError):
        return 0  # unreadable: the step's own error handling reports it
    if not filters:
        return len(raw)
    flate = filters[0] in ("/FlateDecode", "/Fl")
    bound = len(raw) * (_FLATE_RATIO if flate else _WORST_RATIO)
    if bound <= max(exact_above, 0):
        return bound
    if flate:
        # A predictor or a further filter changes the size little; the inflate counts.
        return inflated_size(raw, cap)
    return 0


def image_pixels(image: pikepdf.Stream) -> int:
    """Width x height of an image XObject, from its dictionary (0 if unreadable)."""
    try:
        return max(0, int(image.get("/Width", 0))) * max(0, int(image.get("/Height", 0)))
    except (TypeError, ValueError):
        return 0


def remove_unused_resources(pdf: pikepdf.Pdf, sizes: DecodedSizes, name: str) -> list[str]:
    """Qpdf's unused-resource pass, unless a page's content is too big for it; warnings.

    The pass parses each page's content in memory, at about twice its size (1 GiB
    of content: 2 GB); ``save`` alone handles the same file in constant memory.
    """
    largest = max(sizes.page_content, default=0)
    if largest > REMOVE_UNUSED_MAX_CONTENT_MB * MB:
        return [
            f"Unused resources were kept in {name!r}: a page's content is {largest // MB} MB, "
            f"more than the {REMOVE_UNUSED_MAX_CONTENT_MB} MB that pass parses "
            "(PDF.REMOVE_UNUSED)."
        ]
    pdf.remove_unreferenced_resources()
    return []


def _streams(pdf: pikepdf.Pdf) -> Iterator[pikepdf.Stream]:
    for obj in pdf.objects:
        if isinstance(obj, pikepdf.Stream):
            yield obj


def _content_streams(page: pikepdf.Page) -> list[pikepdf.Stream]:
    contents = page.obj.get("/Contents")
    if isinstance(contents, pikepdf.Stream):
        return [contents]
    if isinstance(contents, pikepdf.Array):
        return [item for item in contents if isinstance(item, pikepdf.Stream)]
    return []


def _too_large(name: str, what: str, limit_mb: int, option: str) -> TooLarge:
    # Inflated sizes are counted only up to the limit: "more than" is all that is known.
    if option == "worker_memory_limit":
        return TooLarge(
            f"{name!r} has {what} that decompresses to more than the worker's memory "
            f"limit. {needed_more_message(limit_mb)}"
        )
    return TooLarge(
        f"{name!r} has {what} that decompresses to more than "
        f"PDF.MAX_DECODED_MB = {limit_mb} MB; it was not converted, since the engines "
        "would hold all of it in memory. Raise PDF.MAX_DECODED_MB (and "
        "worker_memory_limit) if such files are expected."
    )


def _what(stream: pikepdf.Stream) -> str:
    subtype = stream.get("/Subtype")
    if subtype == pikepdf.Name.Image:
        return "an image stream"
    if subtype == pikepdf.Name.Form:
        return "a form XObject"
    return f"a stream (object {stream.objgen[0]})"


def check_decoded_sizes(
    pdf: pikepdf.Pdf, name: str, limit_mb: int, max_pixels: int = MAX_IMAGE_PIXELS.default
) -> DecodedSizes:
    """Measure every stream of ``pdf``; raise TooLarge when one is past ``limit_mb``.

    Images are checked against ``max_pixels`` instead (see the module's docstring).

    Also checks each page's content streams together (a page may split its content
    into many streams), and returns those sizes. A stream larger than the worker's
    whole memory limit fails as the limit's, whatever ``limit_mb`` allows: no engine
    could hold it, and counting further would only take time.
    """
    memory_mb = current_limit_mb()
    if memory_mb and memory_mb < limit_mb:
        limit_mb, option = memory_mb, "worker_memory_limit"
    else:
        option = "PDF.MAX_DECODED_MB"
    cap = limit_mb * MB
    # Content is measured closely enough to decide on the unused-resource pass too.
    small = min(cap, REMOVE_UNUSED_MAX_CONTENT_MB * MB)
    contents = [_content_streams(page) for page in pdf.pages]
    content_ids = {stream.objgen for streams in contents for stream in streams}
    sizes: dict[tuple[int, int], int] = {}
    for stream in _streams(pdf):
        if stream.get("/Subtype") == pikepdf.Name.Image:
            pixels = image_pixels(stream)
            if pixels > max_pixels:
                width, height = stream.get("/Width"), stream.get("/Height")
                raise TooLarge(
                    f"{name!r} has a {width} x {height} image ({pixels:,} pixels), more than "
                    f"PDF.MAX_IMAGE_PIXELS = {max_pixels:,}; it was not converted. Raise "
                    "PDF.MAX_IMAGE_PIXELS if such images are expected."
                )
            continue
        size = decoded_size(stream, cap, small if stream.objgen in content_ids else cap)
        if size > cap:
            raise _too_large(name, _what(stream), limit_mb, option)
        sizes[stream.objgen] = size
    result = DecodedSizes()
    for number, streams in enumerate(contents, start=1):
        total = sum(sizes.get(stream.objgen, 0) for stream in streams)
        if total > small:
            # Bounds of many short streams add up: count what they really hold.
            total = sum(decoded_size(stream, cap) for stream in streams)
        if total > cap:
            raise _too_large(name, f"page {number} content", limit_mb, option)
        result.page_content.append(total)
    return result
