"""Real sample documents generated for tests (no binary fixtures needed)."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
from PIL import Image


def pdf_bytes(pages: int = 1, text: str = "Hello hotfolder", password: str | None = None) -> bytes:
    """A PDF with ``pages`` pages, each showing ``text`` and its page number."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    for number in range(1, pages + 1):
        content = f"BT /F1 24 Tf 72 720 Td ({text} page {number}) Tj ET".encode()
        page = pikepdf.Page(
            pikepdf.Dictionary(
                Type=pikepdf.Name.Page,
                MediaBox=[0, 0, 612, 792],
                Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
                Contents=pdf.make_stream(content),
            )
        )
        pdf.pages.append(page)
    out = io.BytesIO()
    encryption = (
        pikepdf.Encryption(owner=password + "-owner", user=password, R=6) if password else False
    )
    pdf.save(out, encryption=encryption)
    return out.getvalue()


def write_pdf(path: Path, **kwargs: object) -> Path:
    path.write_bytes(pdf_bytes(**kwargs))  # type: ignore[arg-type]
    return path


def jpeg_bytes(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG", quality=90)
    return out.getvalue()


def png_bytes(width: int = 32, height: int = 32) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height))
    for x in range(width):
        for y in range(height):
            image.putpixel((x, y), (x * 7 % 256, y * 5 % 256, (x + y) % 256))
    image.save(out, "PNG")
    return out.getvalue()
