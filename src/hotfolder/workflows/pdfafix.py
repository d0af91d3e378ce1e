"""Lossless fixes that let pikepdf make PDF/A of files it would otherwise refuse.

Two causes of refusals on real-world files are repaired here, both without
touching what a page shows:

* **Page boxes PDF/A forbids.** A CropBox, BleedBox, TrimBox or ArtBox of 0 x 0
  (some generators write ``/ArtBox [0 0 0 0]``) or reaching outside the
  MediaBox. Viewers clip every box to the MediaBox; the box is clipped here the
  same way, and one with nothing left (or less than PDF/A's 3-unit minimum) is
  removed, which means "the same as the CropBox".
* **Bookmarks without a title**, which PDF/A requires: they get an empty one.
* **A soft mask that is also drawn as an image** (Ghostscript stores it once):
  the validator checks an object in one role only, so the mask gets its own
  copy of the same bytes.
* **JPEG 2000 images** (``/JPXDecode``), which pikepdf's validator cannot check,
  so it never claims such a file is PDF/A. A grey or RGB JPX image is decoded
  and stored again with Flate: lossless relative to the decoded pixels (the
  file grows). Other JPX images (CMYK, with alpha) stay, and the file takes the
  Ghostscript route, whose output is validated.

And the other way round: with ``PDFA.ENGINE = ghostscript``, a file Ghostscript
fails on is written by the lossless path when it can be (:func:`pikepdf_instead`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
import pikepdf.pdfa
from pikepdf.models.image import PdfImage

from hotfolder.errors import ToolFailed
from hotfolder.workflows.base import StepContext
from hotfolder.workflows.pdf import QPDF_ERRORS, pikepdf_opened

_BOXES = ("/CropBox", "/BleedBox", "/TrimBox", "/ArtBox")
#: PDF/A (ISO 19005-2, 6.1.13) wants each side of a box to be at least 3 units.
_MIN_SIDE = 3.0
_JPX = pikepdf.Name("/JPXDecode")
_COLOUR_SPACES = {"L": pikepdf.Name.DeviceGray, "RGB": pikepdf.Name.DeviceRGB}


def _rect(box: pikepdf.Object) -> tuple[float, float, float, float] | None:
    try:
        x0, y0, x1, y1 = (float(value) for value in box)
    except (TypeError, ValueError):
        return None
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def normalise_boxes(pdf: pikepdf.Pdf) -> int:
    """Clip each page's boxes to its MediaBox, drop empty ones; return pages changed."""
    changed = 0
    for page in pdf.pages:
        media = _rect(page.mediabox)
        if media is None:
            continue
        touched = False
        for name in _BOXES:
            if name not in page.obj:
                continue
            box = _rect(page.obj[name])
            clipped = None
            if box is not None:
                clipped = (
                    max(box[0], media[0]),
                    max(box[1], media[1]),
                    min(box[2], media[2]),
                    min(box[3], media[3]),
                )
            if clipped is None or min(clipped[2] - clipped[0], clipped[3] - clipped[1]) < _MIN_SIDE:
                del page.obj[name]
                touched = True
            elif clipped != box:
                page.obj[name] = pikepdf.Array(clipped)
                touched = True
        changed += touched
    return changed


def transcode_jpx(pdf: pikepdf.Pdf) -> int:
    """Store grey and RGB JPEG 2000 images with Flate instead; return how many."""
    done = 0
    seen: set[tuple[int, int]] = set()
    for page in pdf.pages:
        for image in page.get_images().values():
            if image.get("/Filter") != _JPX or image.objgen in seen:
                continue
            seen.add(image.objgen)
            if not isinstance(image, pikepdf.Stream) or "/SMaskInData" in image:
                continue
            pixels = PdfImage(image).as_pil_image()
            space = _COLOUR_SPACES.get(pixels.mode)
            if space is None:
                continue
            image.write(zlib.compress(pixels.tobytes()), filter=pikepdf.Name.FlateDecode)
            image.ColorSpace = space
            image.BitsPerComponent = 8
            image.Width, image.Height = pixels.size
            for key in ("/Decode", "/DecodeParms"):
                if key in image:
                    del image[key]
            done += 1
    return done


def separate_roles(pdf: pikepdf.Pdf) -> int:
    """Give each soft mask that is also a page's XObject its own copy; return how many.

    Ghostscript stores an image once when it is both drawn and another image's
    /SMask; the validator checks an object in one role only and answers
    not_checked. A copy of the raw stream (same filters, same bytes) separates them.
    """
    drawn: set[tuple[int, int]] = set()
    for page in pdf.pages:
        resources = page.obj.get("/Resources")
        xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
        if isinstance(xobjects, pikepdf.Dictionary):
            drawn.update(value.objgen for value in xobjects.values() if value.is_indirect)
    copied = 0
    for page in pdf.pages:
        for image in page.get_images().values():
            mask = image.get("/SMask")
            if not isinstance(mask, pikepdf.Stream) or mask.objgen not in drawn:
                continue
            copy = pikepdf.Stream(pdf, mask.read_raw_bytes())
            for key, value in mask.items():
                if key != "/Length":
                    copy[key] = value
            image.SMask = pdf.make_indirect(copy)
            copied += 1
    return copied


def title_outlines(pdf: pikepdf.Pdf) -> int:
    """Give bookmarks without a /Title (which PDF/A requires) an empty one; return how many."""
    outlines = pdf.Root.get("/Outlines")
    if not isinstance(outlines, pikepdf.Dictionary):
        return 0
    fixed, seen = 0, set()
    stack = [outlines.get("/First")]
    while stack:
        item = stack.pop()
        if not isinstance(item, pikepdf.Dictionary) or item.objgen in seen:
            continue
        seen.add(item.objgen)
        if "/Title" not in item:
            item.Title = pikepdf.String("")
            fixed += 1
        stack += [item.get("/Next"), item.get("/First")]
    return fixed


def fix_written(path: Path, warn: Callable[[str], None]) -> None:
    """Apply the lossless fixes to a file another engine (Ghostscript) wrote, in place."""
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        boxes, roles, titles = normalise_boxes(pdf), separate_roles(pdf), title_outlines(pdf)
        if boxes or roles or titles:
            pdf.save(path)
    if boxes:
        warn(f"page boxes PDF/A forbids were clipped to the page on {boxes} page(s)")
    if titles:
        warn(f"{titles} bookmark(s) without a title were given an empty one")


def save_pdfa(
    pdf: pikepdf.Pdf, target: Path, part: str, warn: Callable[[str], None]
) -> pikepdf.pdfa.Report:
    """``pikepdf.pdfa.save`` after normalising page boxes, again after transcoding JPX.

    Raises pikepdf.pdfa.PdfaError when the file still cannot be PDF/A losslessly.
    """
    boxes, titles = normalise_boxes(pdf), title_outlines(pdf)
    if boxes:
        warn(f"page boxes PDF/A forbids were clipped to the page on {boxes} page(s)")
    if titles:
        warn(f"{titles} bookmark(s) without a title were given an empty one")
    try:
        return pikepdf.pdfa.save(pdf, target, part)
    except pikepdf.pdfa.PdfaError:
        images = transcode_jpx(pdf)
        if not images:
            raise
    warn(f"{images} JPEG 2000 image(s) stored losslessly with Flate so PDF/A can be checked")
    return pikepdf.pdfa.save(pdf, target, part)


def pikepdf_instead(
    source: Path,
    target: Path,
    password: str,
    failed: ToolFailed,
    ctx: StepContext,
    before: list[str],
) -> dict[str, Any]:
    """PDFA.ENGINE = ghostscript, and Ghostscript failed: the lossless path, if it can."""
    part: str = ctx.options["PDFA.PART"]
    try:
        with pikepdf_opened(source, password) as pdf:
            pages = len(pdf.pages)
            save_pdfa(pdf, target, part, lambda w: ctx.warn(f"{source.name}: {w}"))
    except pikepdf.pdfa.PdfaError:
        raise failed from None
    except QPDF_ERRORS:
        raise failed from None
    ctx.warn(f"{source.name}: Ghostscript failed ({failed.message}); written by pikepdf instead.")
    return {"engine": "pikepdf", "pages": pages, "text": before}
