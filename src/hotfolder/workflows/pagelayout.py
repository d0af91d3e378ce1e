"""Page layout for image-to-pdf: paper sizes, resolution, margins, the 200-inch limit.

These are the ``PAGE.*`` and ``IMAGE.DPI`` options and the layout callback img2pdf
calls once per page. Sizes are in PDF points (1/72 inch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from hotfolder.errors import OptionInvalid
from hotfolder.workflows.base import OptionSpec, StepContext

_MM = 72 / 25.4
#: Paper sizes in points (portrait); a page is turned to match its image.
PAPER: dict[str, tuple[float, float]] = {
    "a3": (297 * _MM, 420 * _MM),
    "a4": (210 * _MM, 297 * _MM),
    "a5": (148 * _MM, 210 * _MM),
    "letter": (612.0, 792.0),
    "legal": (612.0, 1008.0),
}
#: Pages larger than 200 inches break many viewers (Acrobat's limit, PDF 1.7 annex C).
MAX_PAGE_PT = 14400.0
#: What img2pdf assumes for an image that states no resolution; docs say the same.
DEFAULT_DPI = 96


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "PAGE.SIZE",
        Annotated[Literal["image", "a3", "a4", "a5", "letter", "legal"], BeforeValidator(_lower)],
        "image",
        "image: each page is as large as its image at the image's resolution; "
        "a3, a4, a5, letter, legal: that paper, turned to match the image.",
    ),
    OptionSpec(
        "PAGE.FIT",
        Literal["shrink", "fill"],
        "shrink",
        "On paper sizes: shrink only images too large for the page (shrink) "
        "or scale every image to fill it (fill).",
    ),
    OptionSpec(
        "PAGE.MARGIN",
        Annotated[float, Field(ge=0, le=100)],
        0.0,
        "White margin around the image, in millimetres.",
    ),
    OptionSpec(
        "IMAGE.DPI",
        Annotated[int, Field(ge=0, le=10000)],
        0,
        f"Resolution that sets the printed size (0: the image's own, {DEFAULT_DPI} "
        "if it states none).",
    ),
)


def stated_dpi(dpi: Any) -> tuple[float, float] | None:
    """An image's resolution, or None when it states none or a 1-dpi placeholder."""
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    # TIFF writers store 1 x 1 "no unit" when they know no resolution.
    return (x, y) if min(x, y) >= 2 else None


#: img2pdf's layout callback: pixel width, height and dpi -> page and image size in pt.
Layout = Callable[[int, int, tuple[float, float]], tuple[float, float, float, float]]


def make_layout(
    options: dict[str, Any], sizes: list[tuple[float, float]], ctx: StepContext
) -> Layout:
    """img2pdf's layout callback: page and image size in points for each page.

    Every page size it decides is appended to ``sizes`` so that verify can compare
    what pdfium reads with what was meant.
    """
    forced = options["IMAGE.DPI"]
    paper = PAPER.get(options["PAGE.SIZE"])
    margin = options["PAGE.MARGIN"] * _MM
    fill = options["PAGE.FIT"] == "fill"

    def layout(
        width_px: int, height_px: int, dpi: tuple[float, float]
    ) -> tuple[float, float, float, float]:
        dpi_x, dpi_y = (forced, forced) if forced else stated_dpi(dpi) or (DEFAULT_DPI,) * 2
        image_w, image_h = width_px * 72 / dpi_x, height_px * 72 / dpi_y
        if paper is None:
            page_w, page_h = image_w + 2 * margin, image_h + 2 * margin
        else:
            # Landscape images go on landscape paper (before any EXIF turn, which
            # turns page and image together).
            short, long_ = paper
            page_w, page_h = (long_, short) if image_w > image_h else (short, long_)
            box_w, box_h = page_w - 2 * margin, page_h - 2 * margin
            scale = min(box_w / image_w, box_h / image_h)
            if fill or scale < 1:
                image_w, image_h = image_w * scale, image_h * scale
        largest = max(page_w, page_h)
        if largest > MAX_PAGE_PT:
            factor = MAX_PAGE_PT / largest
            page_w, page_h, image_w, image_h = (
                v * factor for v in (page_w, page_h, image_w, image_h)
            )
            warning = (
                f"A {width_px}x{height_px} image at {dpi_x:g} dpi would make a page over "
                "200 inches; the page was scaled down to 200 inches (all pixels kept). "
                "Set IMAGE.DPI for such images."
            )
            if warning not in ctx.warnings:  # once, even if img2pdf is tried twice
                ctx.warn(warning)
        sizes.append((page_w, page_h))
        return page_w, page_h, image_w, image_h

    return layout


def check_margin(options: dict[str, Any]) -> None:
    """Raise OptionInvalid when PAGE.MARGIN leaves too little of the paper for the image."""
    paper = PAPER.get(options["PAGE.SIZE"])
    # Leave at least an inch of paper for the image.
    if paper is not None and min(paper) - 2 * options["PAGE.MARGIN"] * _MM < 72:
        raise OptionInvalid(
            f"PAGE.MARGIN = {options['PAGE.MARGIN']:g} mm leaves less than an inch for the "
            f"image on {options['PAGE.SIZE']} paper; use a smaller margin."
        )
