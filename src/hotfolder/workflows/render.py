"""PDF pages to images with pdfium (pypdfium2), saved by Pillow as PNG, JPEG or TIFF.

Protected files are opened with pikepdf first (:func:`hotfolder.workflows.pdf.open_pdf`)
so that a missing or wrong password fails the same way in every PDF workflow;
pdfium then renders with the password that worked. Before any page is rendered
its pixel count at the requested resolution is checked, so a poster-sized page
at 1200 dpi fails with ``too_large`` instead of exhausting the worker's memory.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pypdfium2
import pypdfium2.version
from PIL import Image
from pydantic import Field

from hotfolder.errors import CorruptInput, OptionInvalid, TooLarge, ToolFailed
from hotfolder.workflows.base import (
    OptionSpec,
    StepContext,
    StepResult,
    Workflow,
    human_bytes,
    output_stem,
)
from hotfolder.workflows.image import QUALITY
from hotfolder.workflows.pages import page_numbers, parse_page_ranges
from hotfolder.workflows.pdf import PASSWORD, REPAIR, open_pdf
from hotfolder.workflows.pdfbounds import SIZE_OPTIONS, check_decoded_sizes

# Format -> (Pillow format name, file suffix).
FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", ".png"),
    "jpeg": ("JPEG", ".jpg"),
    "tiff": ("TIFF", ".tif"),
}

OPTIONS: tuple[OptionSpec, ...] = (
    PASSWORD,
    REPAIR,
    OptionSpec(
        "RENDER.DPI",
        Annotated[int, Field(ge=10, le=1200)],
        150,
        "Resolution in dots per inch (10 to 1200); an A4 page at 150 dpi is 1241 x 1754 pixels.",
    ),
    OptionSpec(
        "RENDER.PAGES",
        str,
        "",
        'Pages to render, like "1-3,7" or "5-" (to the end); empty: every page.',
    ),
    OptionSpec(
        "RENDER.FORMAT",
        Literal["png", "jpeg", "tiff"],
        "png",
        "Image format: png, jpeg or tiff.",
    ),
    OptionSpec(
        "RENDER.MULTIPAGE_TIFF",
        bool,
        False,
        "Write all pages into one multi-page TIFF (needs RENDER.FORMAT = tiff).",
    ),
    QUALITY,
    OptionSpec(
        "RENDER.MAX_PIXELS",
        Annotated[int, Field(ge=1)],
        100_000_000,
        "Refuse to render a page to more pixels than this (memory guard; about 300 MB).",
    ),
    *SIZE_OPTIONS,
)


@dataclass(frozen=True)
class _Plan:
    """What will be rendered from one PDF, decided before any page is drawn."""

    source: Path
    password: str
    pages: list[int]  # 1-based
    sizes: list[tuple[int, int]]  # pixel size of each page, as pdfium renders it
    page_count: int


def _pixels(points: float, scale: float) -> int:
    # The same rounding pypdfium2's render() uses for its bitmap.
    return math.ceil(points * scale)


def _open_document(path: Path, password: str) -> pypdfium2.PdfDocument:
    try:
        return pypdfium2.PdfDocument(path, password=password or None)
    except pypdfium2.PdfiumError as exc:
        raise CorruptInput(
            f"{path.name!r} opens in qpdf but not in pdfium ({exc}); it is probably "
            "damaged. Export or copy it again."
        ) from None


def _plan(source: Path, options: dict[str, Any], ctx: StepContext) -> _Plan:
    passwords = ctx.document_option(source, "DOC.PASSWORD")
    opened = open_pdf(source, passwords, repair=options["PDF.REPAIR"])
    password = opened.password
    for repair in opened.repairs:
        ctx.warn(f"qpdf repaired the input: {repair}")
    try:
        # pdfium holds a page's whole content, and decodes fonts whole, to draw it.
        check_decoded_sizes(
            opened.pdf, source.name, options["PDF.MAX_DECODED_MB"], options["PDF.MAX_IMAGE_PIXELS"]
        )
    finally:
        opened.close()
    scale = options["RENDER.DPI"] / 72
    document = _open_document(source, password)
    try:
        count = len(document)
        if count == 0:
            raise CorruptInput(f"{source.name!r} has no pages. Export it again.")
        ranges = parse_page_ranges(options["RENDER.PAGES"], count, option="RENDER.PAGES")
        pages = page_numbers(ranges)
        sizes = []
        for number in pages:
            width, height = document[number - 1].get_size()
            size = (_pixels(width, scale), _pixels(height, scale))
            if size[0] * size[1] > options["RENDER.MAX_PIXELS"]:
                raise TooLarge(
                    f"Page {number} of {source.name!r} would be {size[0]} x {size[1]} pixels "
                    f"at {options['RENDER.DPI']} dpi, more than RENDER.MAX_PIXELS = "
                    f"{options['RENDER.MAX_PIXELS']}. Lower RENDER.DPI, or raise "
                    "RENDER.MAX_PIXELS if the worker has the memory."
                )
            sizes.append(size)
    finally:
        document.close()
    return _Plan(source, password, pages, sizes, count)


def _rendered(plan: _Plan, dpi: int) -> Iterator[Image.Image]:
    """Yield the planned pages one at a time, so only one bitmap is held at once."""
    document = _open_document(plan.source, plan.password)
    try:
        # Filled-in form fields are part of what the page shows.
        document.init_forms()
        for number in plan.pages:
            page = document[number - 1]
            bitmap = page.render(scale=dpi / 72, rev_byteorder=True, may_draw_forms=True)
            image = bitmap.to_pil()
            # to_pil() shares the bitmap's buffer; copy before pdfium frees it.
            yield image.convert("RGB") if image.mode != "RGB" else image.copy()
            bitmap.close()
            page.close()
    finally:
        document.close()


def _save_kwargs(fmt: str, dpi: int, options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dpi": (dpi, dpi)}
    if fmt == "jpeg":
        kwargs.update(quality=options["IMAGE.QUALITY"], optimize=True)
    elif fmt == "tiff":
        kwargs.update(compression="tiff_lzw")
    else:
        kwargs.update(compress_level=6)
    return kwargs


def _render_one(
    plan: _Plan, stem: str, out_dir: Path, options: dict[str, Any]
) -> list[tuple[Path, list[tuple[int, int]]]]:
    """Render one PDF; return each output with the pixel size of each of its frames."""
    fmt = options["RENDER.FORMAT"]
    pil_format, suffix = FORMATS[fmt]
    kwargs = _save_kwargs(fmt, options["RENDER.DPI"], options)
    pages = _rendered(plan, options["RENDER.DPI"])
    if options["RENDER.MULTIPAGE_TIFF"]:
        target = out_dir / f"{stem}{suffix}"
        first = next(pages)
        # Pillow pulls the remaining pages from the generator while it writes.
        first.save(target, pil_format, save_all=True, append_images=pages, **kwargs)
        return [(target, plan.sizes)]
    width = max(3, len(str(plan.page_count)))
    outputs = []
    for number, size, image in zip(plan.pages, plan.sizes, pages, strict=True):
        target = out_dir / f"{stem}-p{number:0{width}d}{suffix}"
        image.save(target, pil_format, **kwargs)
        outputs.append((target, [size]))
    return outputs


@dataclass(frozen=True)
class RenderStep:
    """Render the pages of each PDF to images."""

    name: str = "pdf-to-image"
    options: tuple[OptionSpec, ...] = OPTIONS

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Write ``<name>-p001.<ext>`` per page (or ``<name>.tif``) per input PDF."""
        options = dict(ctx.options)
        if options["RENDER.MULTIPAGE_TIFF"] and options["RENDER.FORMAT"] != "tiff":
            raise OptionInvalid(
                "RENDER.MULTIPAGE_TIFF = true needs RENDER.FORMAT = tiff, not "
                f"{options['RENDER.FORMAT']}; set both, or turn RENDER.MULTIPAGE_TIFF off."
            )
        # Plan every input first: a bad range or a huge page fails before any rendering.
        plans = [_plan(source, options, ctx) for source in inputs]
        outputs: list[tuple[Path, list[tuple[int, int]]]] = []
        for plan in plans:
            stem = output_stem(inputs, plan.source, ctx)
            try:
                outputs.extend(_render_one(plan, stem, out_dir, options))
            except pypdfium2.PdfiumError as exc:
                raise CorruptInput(
                    f"pdfium could not render {plan.source.name!r} ({exc}). Export it again."
                ) from None
        pages = sum(len(plan.pages) for plan in plans)
        size = human_bytes(sum(path.stat().st_size for path, _ in outputs))
        fmt = FORMATS[options["RENDER.FORMAT"]][0]
        message = (
            f"Rendered {pages} page(s) at {options['RENDER.DPI']} dpi to {len(outputs)} "
            f"{fmt} file(s) ({size})."
        )
        return StepResult(
            [path for path, _ in outputs],
            message,
            {"frames": [frames for _, frames in outputs], "format": fmt},
        )

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Reopen every image with Pillow: format, frame count and pixel size of each frame."""
        # The outputs are at most RENDER.MAX_PIXELS each, checked before rendering.
        Image.MAX_IMAGE_PIXELS = ctx.options["RENDER.MAX_PIXELS"]
        for output, expected in zip(result.outputs, result.facts["frames"], strict=True):
            try:
                found = _frames(output)
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise ToolFailed(
                    f"{output.name!r} does not decode ({exc}); it was not published. "
                    "Please report this with the input file."
                ) from None
            wanted = (result.facts["format"], [tuple(size) for size in expected])
            if found != wanted:
                raise ToolFailed(
                    f"{output.name!r} is {found[0]} with frames {found[1]} where {wanted[0]} "
                    f"with {wanted[1]} was rendered; it was not published. Please report this."
                )


def _frames(path: Path) -> tuple[str | None, list[tuple[int, int]]]:
    sizes = []
    with warnings.catch_warnings(), Image.open(path) as image:
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            image.load()
            sizes.append(image.size)
        return image.format, sizes


PDF_TO_IMAGE = Workflow(
    name="pdf-to-image",
    description="Render PDF pages to PNG, JPEG or TIFF images with pdfium.",
    steps=(RenderStep(),),
    profiles={
        "default": {},
        "preview": {"RENDER.PAGES": "1", "RENDER.FORMAT": "jpeg", "RENDER.DPI": 72},
        "archive": {"RENDER.FORMAT": "tiff", "RENDER.MULTIPAGE_TIFF": True, "RENDER.DPI": 300},
    },
)


WORKFLOWS = (PDF_TO_IMAGE,)


def engine_versions() -> dict[str, str]:
    """Versions of the render engine, for ``hotfolder workflows`` and status files."""
    return {
        "pypdfium2": str(pypdfium2.version.PYPDFIUM_INFO),
        "pdfium": str(pypdfium2.version.PDFIUM_INFO),
    }
