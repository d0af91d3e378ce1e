"""Lossless fixes that let pikepdf make PDF/A of files it would otherwise refuse.

Two causes of refusals on real-world files are repaired here, both without
touching what a page shows:

* **Page boxes PDF/A forbids.** A CropBox, BleedBox, TrimBox or ArtBox of 0 x 0
  (some generators write ``/ArtBox [0 0 0 0]``) or reaching outside the
  MediaBox. Viewers clip every box to the MediaBox; the box is clipped here the
  same way, and one with nothing left (or less than PDF/A's 3-unit minimum) is
  removed, which means "the same as the CropBox".
* **JPEG 2000 images** (``/JPXDecode``), which pikepdf's validator cannot check,
  so it never claims such a file is PDF/A. A grey or RGB JPX image is decoded
  and stored again with Flate: lossless relative to the decoded pixels (the
  file grows). Other JPX images (CMYK, with alpha) stay, and the file takes the
  Ghostscript route, whose output is validated.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pikepdf.pdfa
from pikepdf.models.image import PdfImage

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


def save_pdfa(
    pdf: pikepdf.Pdf, target: Path, part: str, warn: Callable[[str], None]
) -> pikepdf.pdfa.Report:
    """``pikepdf.pdfa.save`` after normalising page boxes, again after transcoding JPX.

    Raises pikepdf.pdfa.PdfaError when the file still cannot be PDF/A losslessly.
    """
    boxes = normalise_boxes(pdf)
    if boxes:
        warn(f"page boxes PDF/A forbids were clipped to the page on {boxes} page(s)")
    try:
        return pikepdf.pdfa.save(pdf, target, part)
    except pikepdf.pdfa.PdfaError:
        images = transcode_jpx(pdf)
        if not images:
            raise
    warn(f"{images} JPEG 2000 image(s) stored losslessly with Flate so PDF/A can be checked")
    return pikepdf.pdfa.save(pdf, target, part)
