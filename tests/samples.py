"""Real sample documents generated for tests (no binary fixtures needed)."""

from __future__ import annotations

import io
import struct
import zipfile
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


# --- Office documents (office-to-pdf) ---------------------------------------------

_ODF_NS = " ".join(
    f'xmlns:{prefix}="urn:oasis:names:tc:opendocument:xmlns:{name}"'
    for prefix, name in (
        ("office", "office:1.0"),
        ("text", "text:1.0"),
        ("table", "table:1.0"),
        ("draw", "drawing:1.0"),
        ("style", "style:1.0"),
        ("fo", "xsl-fo-compatible:1.0"),
        ("svg", "svg-compatible:1.0"),
        ("manifest", "manifest:1.0"),
    )
)
_OOXML_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML = '<?xml version="1.0" encoding="UTF-8"?>'


def _zip(parts: dict[str, str | bytes], mimetype: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        if mimetype is not None:
            # ODF wants the mimetype entry first and stored, so it shows at a fixed offset.
            archive.writestr(zipfile.ZipInfo("mimetype"), mimetype, zipfile.ZIP_STORED)
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def odf_bytes(kind: str, pages: list[str], encrypted: bool = False) -> bytes:
    """An OpenDocument file: kind ``text`` (one page per entry, page breaks between),
    ``spreadsheet`` (one sheet per entry) or ``presentation`` (one slide per entry)."""
    if kind == "text":
        styles = (
            '<style:style style:name="PB" style:family="paragraph">'
            '<style:paragraph-properties fo:break-before="page"/></style:style>'
        )
        body = "".join(
            f'<text:p text:style-name="PB">{t}</text:p>' if i else f"<text:p>{t}</text:p>"
            for i, t in enumerate(pages)
        )
    elif kind == "spreadsheet":
        styles = ""
        body = "".join(
            f'<table:table table:name="Sheet{i + 1}"><table:table-row>'
            f'<table:table-cell office:value-type="string"><text:p>{t}</text:p>'
            "</table:table-cell></table:table-row></table:table>"
            for i, t in enumerate(pages)
        )
    else:
        styles = ""
        body = "".join(
            f'<draw:page draw:name="slide{i + 1}"><draw:frame svg:x="2cm" svg:y="2cm" '
            'svg:width="20cm" svg:height="3cm"><draw:text-box>'
            f"<text:p>{t}</text:p></draw:text-box></draw:frame></draw:page>"
            for i, t in enumerate(pages)
        )
    mime = f"application/vnd.oasis.opendocument.{kind}"
    content = (
        f'{_XML}<office:document-content {_ODF_NS} office:version="1.3">'
        f"<office:automatic-styles>{styles}</office:automatic-styles>"
        f"<office:body><office:{kind}>{body}</office:{kind}></office:body>"
        "</office:document-content>"
    )
    cipher = (
        "<manifest:encryption-data manifest:checksum-type="
        '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0#sha256-1k" manifest:checksum="AA=="/>'
        if encrypted
        else ""
    )
    manifest = (
        f'{_XML}<manifest:manifest {_ODF_NS} manifest:version="1.3">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
        f"{cipher}</manifest:file-entry></manifest:manifest>"
    )
    return _zip({"META-INF/manifest.xml": manifest, "content.xml": content}, mimetype=mime)


def _content_types(overrides: dict[str, str]) -> str:
    return (
        f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        + "".join(
            f'<Override PartName="/{part}" ContentType="application/vnd.openxmlformats-'
            f'officedocument.{kind}+xml"/>'
            for part, kind in overrides.items()
        )
        + "</Types>"
    )


def _relationships(targets: dict[str, tuple[str, str]], external: bool = False) -> str:
    mode = ' TargetMode="External"' if external else ""
    return (
        f'{_XML}<Relationships xmlns="{_PKG_REL}">'
        + "".join(
            f'<Relationship Id="{rid}" Type="{_OOXML_REL}/{kind}" Target="{target}"{mode}/>'
            for rid, (kind, target) in targets.items()
        )
        + "</Relationships>"
    )


def docx_bytes(pages: list[str], image_url: str | None = None, body: str | None = None) -> bytes:
    """A Word document with one page per entry; ``image_url`` adds a linked (not
    embedded) picture; ``body`` replaces word/document.xml (for damaged files)."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    page_break = '<w:r><w:br w:type="page"/></w:r>'
    paragraphs = "".join(
        f"<w:p>{page_break if i else ''}<w:r><w:t>{t}</w:t></w:r></w:p>"
        for i, t in enumerate(pages)
    )
    parts: dict[str, str | bytes] = {
        "[Content_Types].xml": _content_types(
            {"word/document.xml": "wordprocessingml.document.main"}
        ),
        "_rels/.rels": _relationships({"rId1": ("officeDocument", "word/document.xml")}),
    }
    if image_url:
        a = "http://schemas.openxmlformats.org/drawingml/2006"
        paragraphs += (
            f'<w:p><w:r><w:drawing><wp:inline xmlns:wp="{a}/wordprocessingDrawing">'
            '<wp:extent cx="914400" cy="914400"/><wp:docPr id="1" name="Linked"/>'
            f'<a:graphic xmlns:a="{a}/main"><a:graphicData uri="{a}/picture">'
            f'<pic:pic xmlns:pic="{a}/picture"><pic:nvPicPr><pic:cNvPr id="1" name="Linked"/>'
            f'<pic:cNvPicPr/></pic:nvPicPr><pic:blipFill><a:blip xmlns:r="{_OOXML_REL}" '
            'r:link="rIdImage"/></pic:blipFill><pic:spPr><a:xfrm><a:off x="0" y="0"/>'
            '<a:ext cx="914400" cy="914400"/></a:xfrm><a:prstGeom prst="rect"/></pic:spPr>'
            "</pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"
        )
        parts["word/_rels/document.xml.rels"] = _relationships(
            {"rIdImage": ("image", image_url)}, external=True
        )
    parts["word/document.xml"] = (
        body
        if body is not None
        else f'{_XML}<w:document xmlns:w="{w}"><w:body>{paragraphs}</w:body></w:document>'
    )
    return _zip(parts)


def xlsx_bytes(sheets: list[str]) -> bytes:
    """An Excel workbook with one sheet per entry, its text in cell A1."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    parts: dict[str, str | bytes] = {
        "[Content_Types].xml": _content_types(
            {"xl/workbook.xml": "spreadsheetml.sheet.main"}
            | {f"xl/worksheets/sheet{i}.xml": "spreadsheetml.worksheet" for i in range(len(sheets))}
        ),
        "_rels/.rels": _relationships({"rId1": ("officeDocument", "xl/workbook.xml")}),
        "xl/workbook.xml": (
            f'{_XML}<workbook xmlns="{main}" xmlns:r="{_OOXML_REL}"><sheets>'
            + "".join(
                f'<sheet name="Sheet{i + 1}" sheetId="{i + 1}" r:id="rId{i}"/>'
                for i in range(len(sheets))
            )
            + "</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": _relationships(
            {f"rId{i}": ("worksheet", f"worksheets/sheet{i}.xml") for i in range(len(sheets))}
        ),
    }
    for i, text in enumerate(sheets):
        parts[f"xl/worksheets/sheet{i}.xml"] = (
            f'{_XML}<worksheet xmlns="{main}"><sheetData><row r="1"><c r="A1" t="inlineStr">'
            f"<is><t>{text}</t></is></c></row></sheetData></worksheet>"
        )
    return _zip(parts)


def rtf_bytes(pages: list[str]) -> bytes:
    """An RTF document with one page per entry."""
    body = "\\page ".join(f"{text}\\par " for text in pages)
    return ("{\\rtf1\\ansi{\\fonttbl{\\f0 Helvetica;}}\\f0 " + body + "}").encode()


def ole_bytes(streams: dict[str, bytes]) -> bytes:
    """A minimal OLE2 compound file (MS-CFB version 3) with ``streams`` in its root.

    Streams are padded to 4096 bytes so that all of them live in regular sectors.
    """
    sector, end, free = 512, 0xFFFFFFFE, 0xFFFFFFFF
    datas = [data.ljust(4096, b"\0") for data in streams.values()]
    data_sectors = [len(data) // sector for data in datas]
    dir_sectors = (len(streams) + 1 + 3) // 4
    fat_sectors = 1
    while fat_sectors * 128 < fat_sectors + dir_sectors + sum(data_sectors):
        fat_sectors += 1
    fat = [0xFFFFFFFD] * fat_sectors
    dir_start = len(fat)
    fat += [*range(dir_start + 1, dir_start + dir_sectors), end]
    starts = []
    for count in data_sectors:
        starts.append(len(fat))
        fat += [*range(len(fat) + 1, len(fat) + count), end]
    fat += [free] * (fat_sectors * 128 - len(fat))

    def entry(name: str, kind: int, right: int, child: int, start: int, size: int) -> bytes:
        encoded = (name + "\0").encode("utf-16-le")
        return (
            encoded.ljust(64, b"\0")
            + struct.pack("<HBBIII", len(encoded), kind, 1, free, right, child)
            + bytes(36)
            + struct.pack("<IQ", start, size)
        )

    names = list(streams)
    directory = entry("Root Entry", 5, free, 1 if names else free, end, 0)
    for index, name in enumerate(names, 1):
        right = index + 1 if index < len(names) else free
        directory += entry(name, 2, right, free, starts[index - 1], len(datas[index - 1]))
    directory = directory.ljust(dir_sectors * sector, b"\0")
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        bytes.fromhex("D0CF11E0A1B11AE1"),
        bytes(16),
        0x3E,
        3,
        0xFFFE,
        9,
        6,
        bytes(6),
        0,
        fat_sectors,
        dir_start,
        0,
        4096,
        end,
        0,
        end,
        0,
    )
    header += struct.pack("<109I", *range(fat_sectors), *[free] * (109 - fat_sectors))
    body = struct.pack(f"<{len(fat)}I", *fat) + directory + b"".join(datas)
    return header + body
