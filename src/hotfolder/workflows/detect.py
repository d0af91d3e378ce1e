"""Format detection by content (magic bytes), never by file name.

Users rename files, mail clients append ``.dat`` and scanners write ``.PDF``;
only the first bytes of a file say what it really is.
"""

from __future__ import annotations

from pathlib import Path

# PDF readers accept the header anywhere in the first KiB (ISO 32000-1 §7.5.2
# note; Acrobat and qpdf both do), so the scan window is that long.
_HEAD = 1024

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def detect_bytes(head: bytes) -> str | None:
    """Return the format of a file starting with ``head``, or None if unknown."""
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    # "BM" alone would match plain text; the BMP header's reserved words are zero.
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0" and len(head) >= 26:
        return "bmp"
    if b"%PDF-" in head[:_HEAD]:
        return "pdf"
    return None


def detect_format(path: Path) -> str | None:
    """Return ``pdf``, ``jpeg``, ``png``, ``tiff``, ``webp``, ``gif``, ``bmp`` or None."""
    with path.open("rb") as handle:
        return detect_bytes(handle.read(_HEAD))
