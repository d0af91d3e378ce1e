"""Format detection looks at content, not names."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotfolder.workflows.detect import detect_bytes, detect_format
from tests.samples import jpeg_bytes, pdf_bytes, png_bytes


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (pdf_bytes(), "pdf"),
        (b"junk before the header %PDF-1.4\n", "pdf"),
        (jpeg_bytes(), "jpeg"),
        (png_bytes(), "png"),
        (b"II*\x00\x08\x00", "tiff"),
        (b"MM\x00*\x00\x00", "tiff"),
        (b"GIF89a\x01\x00", "gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"BM" + b"\x10\x00\x00\x00" + b"\x00" * 30, "bmp"),
        (b"BMW is a car, not a bitmap header at all", None),
        (b"hello", None),
        (b"", None),
    ],
)
def test_detect_bytes(head: bytes, expected: str | None) -> None:
    """Each signature maps to its format; text never passes for an image."""
    assert detect_bytes(head) == expected


def test_detect_format_ignores_the_extension(tmp_path: Path) -> None:
    """A JPEG named .pdf is a JPEG."""
    path = tmp_path / "photo.pdf"
    path.write_bytes(jpeg_bytes())
    assert detect_format(path) == "jpeg"
