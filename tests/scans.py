"""Small generated scans with known text, for the OCR tests (kept small: OCR is slow)."""

from __future__ import annotations

import io

import img2pdf
import pikepdf
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = [
    "Invoice 4711 from Hotfolder Paper Supplies",
    "The quick brown fox jumps over the lazy dog",
    "Please pay within thirty days of receipt",
]


def scan_image(
    lines: list[str] = LINES,
    dpi: int = 150,
    rotate: int = 0,
    skew: float = 0.0,
    blur: bool = False,
    width_in: float = 6.0,
    height_in: float = 3.0,
) -> Image.Image:
    """A grey page with ``lines`` at 14 pt, optionally skewed, blurred, turned by ``rotate``."""
    size = (int(width_in * dpi), int(height_in * dpi))
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, int(dpi * 14 / 72))
    for index, line in enumerate(lines):
        draw.text((int(dpi * 0.5), int(dpi * (0.5 + 0.35 * index))), line, fill=0, font=font)
    if skew:
        page = page.rotate(skew, resample=Image.Resampling.BICUBIC, fillcolor=255, expand=False)
    if blur:
        page = page.filter(ImageFilter.GaussianBlur(0.6))
    if rotate:
        page = page.rotate(rotate, expand=True)
    return page


def image_bytes(image: Image.Image, fmt: str = "PNG", dpi: int = 150) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, dpi=(dpi, dpi))
    return out.getvalue()


def scan_pdf(
    pages: int = 1, dpi: int = 150, password: str | None = None, **kwargs: object
) -> bytes:
    """A PDF of ``pages`` scanned pages (images only, no text)."""
    images = [image_bytes(scan_image(dpi=dpi, **kwargs), dpi=dpi) for _ in range(pages)]  # type: ignore[arg-type]
    data = img2pdf.convert(*images)
    if password is None:
        return data
    pdf = pikepdf.open(io.BytesIO(data))
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(owner="o-" + password, user=password, R=6))
    return out.getvalue()
