"""Hostile files, built byte by byte: bombs, damage, deep nesting, odd encryption.

Everything is deterministic (fixed seeds), small on disk and quick to build; the
hostility is in what the bytes claim, not in their size.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import pikepdf
from pikepdf import Dictionary, Name


def raw_pdf(objects: list[bytes]) -> bytes:
    """A hand-written PDF whose objects are numbered from 1; object 1 is the catalog."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), extra, data)


def one_page(
    page_extra: bytes = b"",
    resources: bytes = b"<< >>",
    contents: bytes = b"BT /F1 12 Tf 72 720 Td (hostile) Tj ET",
    media_box: bytes = b"[0 0 612 792]",
    more: list[bytes] | None = None,
) -> bytes:
    """Catalog (1), pages (2), page (3), contents (4), then ``more`` objects from 5."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox %s /Resources %s /Contents 4 0 R %s>>"
            % (media_box, resources, page_extra),
            _stream(contents),
            *(more or []),
        ]
    )


def deep_arrays(depth: int) -> bytes:
    """A page holding an array nested ``depth`` deep: [[[[...1...]]]]."""
    return one_page(b"/Deep " + b"[" * depth + b"1" + b"]" * depth + b" ")


def deep_dicts(depth: int) -> bytes:
    """A page holding a dictionary nested ``depth`` deep: << /A << /A ... >> >>."""
    return one_page(b"/Deep " + b"<< /A " * depth + b"1" + b" >>" * depth + b" ")


def deep_page_tree(depth: int) -> bytes:
    """One page at the bottom of ``depth`` nested /Pages nodes."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(depth):
        number = 2 + level
        parent = b"/Parent %d 0 R " % (number - 1) if level else b""
        objects.append(b"<< /Type /Pages %s/Kids [%d 0 R] /Count 1 >>" % (parent, number + 1))
    leaf = 2 + depth
    objects.append(
        b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << >> "
        b"/Contents %d 0 R >>" % (leaf - 1, leaf + 1)
    )
    objects.append(_stream(b"BT ET"))
    return raw_pdf(objects)


def reference_chain(length: int) -> bytes:
    """A page pointing into a chain of ``length`` indirect objects: [6 0 R] -> [7 0 R] ..."""
    chain = [b"[%d 0 R]" % (6 + i) for i in range(length - 1)] + [b"[42]"]
    return one_page(b"/Chain 5 0 R ", more=chain)


def _deflated_zeros(row: int, rows: int) -> bytes:
    compressor = zlib.compressobj(9)
    zeros = bytes(row)
    return b"".join(compressor.compress(zeros) for _ in range(rows)) + compressor.flush()


def image_bomb(side: int) -> bytes:
    """A page showing a ``side`` x ``side`` grey image of zeros: tiny file, huge raster."""
    data = _deflated_zeros(side, side)
    image = _stream(
        data,
        b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Filter /FlateDecode " % (side, side),
    )
    return one_page(
        resources=b"<< /XObject << /Im1 5 0 R >> >>",
        contents=b"q 612 0 0 792 0 0 cm /Im1 Do Q",
        more=[image],
    )


def content_bomb(megabytes: int) -> bytes:
    """A page whose content stream inflates to ``megabytes`` MB of spaces."""
    compressor = zlib.compressobj(9)
    spaces = b" " * (1 << 20)
    data = b"".join(compressor.compress(spaces) for _ in range(megabytes)) + compressor.flush()
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << >> "
            b"/Contents 4 0 R >>",
            _stream(data, b"/Filter /FlateDecode "),
        ]
    )


def huge_page() -> bytes:
    """A page 200 inches square (and a UserUnit asking for 75,000 times that)."""
    return one_page(b"/UserUnit 75000 ", media_box=b"[0 0 14400 14400]")


def external_stream(target: bytes) -> bytes:
    """An image whose data the PDF says lives in another file (/F): ``target``."""
    image = b"<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray "
    image += b"/BitsPerComponent 8 /F (%s) /Length 0 >>\nstream\n\nendstream" % target
    return one_page(
        resources=b"<< /XObject << /Im1 5 0 R >> >>", contents=b"q /Im1 Do Q", more=[image]
    )


def many_pages(count: int) -> bytes:
    """``count`` pages sharing one content stream."""
    pdf = pikepdf.new()
    content = pdf.make_stream(b"BT /F1 12 Tf 72 720 Td (page) Tj ET")
    for _ in range(count):
        page = Dictionary(
            Type=Name.Page, MediaBox=[0, 0, 612, 792], Resources=Dictionary(), Contents=content
        )
        pdf.pages.append(pikepdf.Page(page))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def stable(data: bytes) -> bytes:
    """``data`` re-saved with an ID computed from its content: the same bytes every run."""
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pdf.save(out, deterministic_id=True)
    return out.getvalue()


def encrypted(data: bytes, user: str, revision: int) -> bytes:
    """``data`` re-saved with a user password: RC4 for revisions 2 and 3, AES from 4."""
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        modern = revision >= 4
        encryption = pikepdf.Encryption(
            owner="owner-secret", user=user, R=revision, aes=modern, metadata=modern
        )
        pdf.save(out, encryption=encryption)
    return out.getvalue()


def truncated(data: bytes, seed: int) -> bytes:
    """``data`` cut at a seeded point before its end-of-file trailer."""
    return data[: random.Random(seed).randrange(1, data.rindex(b"startxref"))]


def fuzzed(data: bytes, seed: int, flips: int = 24, keep: int = 0) -> bytes:
    """``data`` with ``flips`` seeded random bytes overwritten (the first ``keep`` kept)."""
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(flips):
        out[rng.randrange(keep, len(out))] = rng.randrange(256)
    return bytes(out)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """A grey PNG of width x height zero pixels; ``rows`` limits the data actually present."""
    data = _deflated_zeros(width + 1, height if rows is None else rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def gif_huge() -> bytes:
    """A GIF whose screen and frame claim 65535 x 65535 pixels."""
    screen = struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0)
    return b"GIF89a" + screen + frame + b"\x02\x02\x44\x01\x00\x3b"


def jpeg_huge(jpeg: bytes) -> bytes:
    """``jpeg`` with its frame header (SOF0) claiming 65500 x 65500 pixels."""
    start = jpeg.index(b"\xff\xc0")
    return jpeg[: start + 5] + struct.pack(">HH", 65500, 65500) + jpeg[start + 9 :]


def tiff_huge() -> bytes:
    """A TIFF claiming 100000 x 100000 grey pixels in one 8-byte strip."""
    entries = [
        (256, 4, 1, 100_000),  # width
        (257, 4, 1, 100_000),  # height
        (258, 3, 1, 8),  # bits per sample
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 1),  # black is zero
        (273, 4, 1, 8),  # strip offset
        (277, 3, 1, 1),  # samples per pixel
        (278, 4, 1, 100_000),  # rows per strip
        (279, 4, 1, 8),  # strip byte count
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHII", *entry) for entry in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 16) + bytes(8) + ifd


def direct_root() -> bytes:
    """A one-page PDF whose trailer holds the catalog itself, not a reference to it.

    qpdf reads and rewrites it without a warning; pdfium refuses it ("Data format
    error"), and so would any reader as strict as pdfium.
    """
    indirect = one_page()
    start = indirect.index(b"1 0 obj")
    end = indirect.index(b"endobj\n", start) + len(b"endobj\n")
    # Keep every offset: blank out object 1 and mark it free instead of removing it.
    data = indirect[:start] + b" " * (end - start) + indirect[end:]
    entry = b"%010d 00000 n \n" % start
    data = data.replace(entry, b"0000000000 65535 f \n", 1)
    return data.replace(b"/Root 1 0 R", b"/Root << /Type /Catalog /Pages 2 0 R >>")


def undecodable_image() -> bytes:
    """A page with two images: noise worth recompressing, and JPEG data that is not JPEG.

    qpdf passes the broken image through untouched; pdfium cannot decode it.
    """
    noise = random.Random(3).randbytes(200 * 200 * 3)
    rgb = b"/Type /XObject /Subtype /Image /ColorSpace /DeviceRGB /BitsPerComponent 8 "
    good = _stream(zlib.compress(noise), rgb + b"/Width 200 /Height 200 /Filter /FlateDecode ")
    fake = b"\xff\xd8\xff\xe0" + random.Random(4).randbytes(3000)
    bad = _stream(fake, rgb + b"/Width 100 /Height 100 /Filter /DCTDecode ")
    return one_page(
        resources=b"<< /XObject << /Im1 5 0 R /Im2 6 0 R >> >>",
        contents=b"q 200 0 0 200 0 0 cm /Im1 Do Q q 100 0 0 100 300 300 cm /Im2 Do Q",
        more=[good, bad],
    )
