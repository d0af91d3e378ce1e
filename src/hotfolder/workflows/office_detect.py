r"""Content detection for office documents: which kind, and whether it is encrypted.

Office files come in four containers, told apart by their first bytes:

* ZIP: OOXML (``[Content_Types].xml`` names the main part: Word, Excel, PowerPoint)
  and OpenDocument (a ``mimetype`` entry);
* OLE2 compound files (``D0CF11E0A1B11AE1``): legacy doc, xls and ppt, and also
  password-protected OOXML, which Office stores as an encrypted package in OLE2;
* RTF (``{\\rtf``);
* plain text: anything that decodes as UTF-8 and holds no NUL byte.

Encryption is found here, before LibreOffice runs: headless LibreOffice cannot be
given a password and reports a protected file only as "could not be loaded".
"""

from __future__ import annotations

import codecs
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal
from xml.etree import ElementTree

from hotfolder.errors import CorruptInput, PasswordRequired, UnsupportedFormat
from hotfolder.workflows.detect import detect_bytes

Family = Literal["text", "spreadsheet", "presentation"]

OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_HEAD = 8192
#: Content-type and manifest parts are small; a larger one is not worth parsing.
_MAX_PART = 1 << 20

_ODF_TYPES: dict[str, tuple[str, Family, str]] = {
    "application/vnd.oasis.opendocument.text": ("odt", "text", "OpenDocument text (ODT)"),
    "application/vnd.oasis.opendocument.text-template": ("ott", "text", "ODT template"),
    "application/vnd.oasis.opendocument.spreadsheet": (
        "ods",
        "spreadsheet",
        "OpenDocument spreadsheet (ODS)",
    ),
    "application/vnd.oasis.opendocument.spreadsheet-template": (
        "ots",
        "spreadsheet",
        "ODS template",
    ),
    "application/vnd.oasis.opendocument.presentation": (
        "odp",
        "presentation",
        "OpenDocument presentation (ODP)",
    ),
    "application/vnd.oasis.opendocument.presentation-template": (
        "otp",
        "presentation",
        "ODP template",
    ),
}

# Markers in the content type of an OOXML package's main part ("...main+xml"),
# covering documents, templates, slide shows and their macro-enabled variants.
_OOXML_MAIN: tuple[tuple[tuple[str, ...], str, Family, str], ...] = (
    (("wordprocessingml", "ms-word"), "docx", "text", "Word document (DOCX)"),
    (("spreadsheetml", "ms-excel"), "xlsx", "spreadsheet", "Excel workbook (XLSX)"),
    (("presentationml", "ms-powerpoint"), "pptx", "presentation", "PowerPoint file (PPTX)"),
)

_W_TEXT = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}t"
_ODF_TEXT_NS = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_SUPPORTED = (
    "This folder converts Word, Excel and PowerPoint files (doc, docx, xls, xlsx, ppt, "
    "pptx), OpenDocument files (odt, ods, odp), RTF and UTF-8 plain text."
)


@dataclass(frozen=True)
class OfficeFormat:
    """What an input is: the suffix LibreOffice gets, its family and a name for messages.

    ``has_text`` is True when the document body holds text the PDF must show;
    it is only judged where that is reliable (word-processing formats read as XML,
    and plain text), and False where it was not looked at.
    """

    suffix: str
    family: Family
    label: str
    has_text: bool = False


def detect_office(path: Path) -> OfficeFormat:
    """Return the office format of ``path`` by its content.

    Raises UnsupportedFormat (not an office document), CorruptInput (a damaged
    container) or PasswordRequired (an encrypted document).
    """
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
        if not head:
            raise CorruptInput(f"{path.name!r} is empty (0 bytes). Copy it into the folder again.")
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return _zip_format(path)
        if head.startswith(OLE_MAGIC):
            return _ole_format(path, handle)
        if head.startswith(b"{\\rtf"):
            return OfficeFormat("rtf", "text", "RTF document")
        other = detect_bytes(head)
        if other is not None:
            what = "a PDF" if other == "pdf" else f"a {other.upper()} image"
            raise UnsupportedFormat(
                f"{path.name!r} is {what}, not an office document. {_SUPPORTED}"
            )
        handle.seek(0)
        return _text_format(path, handle)


def _text_format(path: Path, handle: BinaryIO) -> OfficeFormat:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    has_text = False
    try:
        while chunk := handle.read(1 << 20):
            if b"\0" in chunk:
                raise UnsupportedFormat(
                    f"{path.name!r} is a binary file of a kind this workflow does not know. "
                    + _SUPPORTED
                )
            has_text = has_text or bool(decoder.decode(chunk).strip())
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UnsupportedFormat(
            f"{path.name!r} is neither an office document nor UTF-8 text. If it is text in "
            "another encoding, save it as UTF-8 and drop it again. " + _SUPPORTED
        ) from None
    return OfficeFormat("txt", "text", "plain text", has_text)


def _zip_format(path: Path) -> OfficeFormat:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                return _odf_format(path, archive)
            if "[Content_Types].xml" in names:
                return _ooxml_format(path, archive)
    except (zipfile.BadZipFile, zlib.error, EOFError, ElementTree.ParseError) as exc:
        raise CorruptInput(
            f"{path.name!r} is a ZIP-based document (such as DOCX, XLSX or ODT) but it is "
            f"damaged or truncated ({exc}). Copy or save it again."
        ) from None
    raise UnsupportedFormat(f"{path.name!r} is a ZIP archive, not an office document. {_SUPPORTED}")


def _read_part(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as part:
        return part.read(_MAX_PART)


def _odf_format(path: Path, archive: zipfile.ZipFile) -> OfficeFormat:
    mime = _read_part(archive, "mimetype").decode("ascii", "replace").strip()
    known = _ODF_TYPES.get(mime)
    if known is None:
        raise UnsupportedFormat(
            f"{path.name!r} is a ZIP-based file of type {mime[:80]!r}. {_SUPPORTED}"
        )
    suffix, family, label = known
    if "META-INF/manifest.xml" in archive.namelist():
        manifest = _read_part(archive, "META-INF/manifest.xml")
        # An encrypted ODF package describes the cipher of each encrypted entry.
        if b"encryption-data" in manifest:
            raise _password_required(path, label)
    has_text = family == "text" and _xml_has_text(
        archive, "content.xml", lambda tag: tag.startswith(_ODF_TEXT_NS)
    )
    return OfficeFormat(suffix, family, label, has_text)


def _ooxml_format(path: Path, archive: zipfile.ZipFile) -> OfficeFormat:
    # Expat (2.4.1 and later) refuses entity-expansion bombs and ElementTree never
    # fetches external entities, so untrusted package XML is safe to parse.
    types = ElementTree.fromstring(_read_part(archive, "[Content_Types].xml"))  # noqa: S314
    mains = [
        element.get("ContentType", "")
        for element in types.iter()
        if element.get("ContentType", "").endswith(".main+xml")
    ]
    for markers, suffix, family, label in _OOXML_MAIN:
        for main in mains:
            if any(f".{marker}." in main for marker in markers):
                has_text = family == "text" and _xml_has_text(
                    archive, _main_part(types, main), lambda tag: tag == _W_TEXT
                )
                return OfficeFormat(suffix, family, label, has_text)
    raise UnsupportedFormat(
        f"{path.name!r} is an Office Open XML package but not a Word, Excel or PowerPoint "
        f"file. {_SUPPORTED}"
    )


def _main_part(types: ElementTree.Element, content_type: str) -> str:
    for element in types.iter():
        if element.get("ContentType") == content_type and element.get("PartName"):
            return element.get("PartName", "").lstrip("/")
    return "word/document.xml"


def _xml_has_text(archive: zipfile.ZipFile, name: str, counts: Callable[[str], bool]) -> bool:
    """True when an element whose tag ``counts`` holds non-blank text in part ``name``."""
    if name not in archive.namelist():
        return False
    with archive.open(name) as part:
        try:
            # Streamed, and stopped at the first hit: body parts can be huge.
            for _event, element in ElementTree.iterparse(part, events=("end",)):  # noqa: S314
                if (element.text or "").strip() and counts(element.tag):
                    return True
                element.clear()
        except ElementTree.ParseError:
            # LibreOffice is the judge of a damaged body; it says so when it fails.
            return False
    return False


def _password_required(path: Path, label: str) -> PasswordRequired:
    return PasswordRequired(
        f"{path.name!r} ({label}) is protected by a password. LibreOffice cannot be given "
        "a password when it converts unattended: open the file, remove the password "
        "(save it without protection) and drop the new copy into the folder."
    )


def _ole_format(path: Path, handle: BinaryIO) -> OfficeFormat:
    try:
        ole = _OleFile(handle)
        streams = ole.root_streams()
    except (ValueError, struct.error, IndexError) as exc:
        raise CorruptInput(
            f"{path.name!r} is a legacy Office file (OLE2) whose structure is damaged "
            f"({exc}). Open it in Office, save it again and drop the new copy."
        ) from None
    if "encryptioninfo" in streams and "encryptedpackage" in streams:
        raise _password_required(path, "encrypted Office document")
    if "worddocument" in streams:
        # FibBase flags at offset 10: fEncrypted 0x0100, fObfuscated 0x8000.
        (flags,) = struct.unpack_from("<H", ole.head(streams["worddocument"], 12), 10)
        if flags & 0x8100:
            raise _password_required(path, "Word 97-2003 document")
        return OfficeFormat("doc", "text", "Word 97-2003 document (DOC)")
    book = streams.get("workbook") or streams.get("book")
    if book is not None:
        # A FILEPASS record (0x002F) right after the first BOF means encryption.
        data = ole.head(book, 64)
        (bof_length,) = struct.unpack_from("<H", data, 2)
        after = 4 + bof_length
        if data[after : after + 2] == b"\x2f\x00":
            raise _password_required(path, "Excel 97-2003 workbook")
        return OfficeFormat("xls", "spreadsheet", "Excel 97-2003 workbook (XLS)")
    if "powerpoint document" in streams:
        user = streams.get("current user")
        # CurrentUserAtom.headerToken is 0xF3D1C4DF in an encrypted presentation.
        if user is not None and ole.head(user, 16)[12:16] == b"\xdf\xc4\xd1\xf3":
            raise _password_required(path, "PowerPoint 97-2003 presentation")
        return OfficeFormat("ppt", "presentation", "PowerPoint 97-2003 presentation (PPT)")
    raise UnsupportedFormat(
        f"{path.name!r} is an OLE2 compound file (such as an Outlook message or a Visio "
        f"drawing) but not a Word, Excel or PowerPoint document. {_SUPPORTED}"
    )


@dataclass(frozen=True)
class _Entry:
    name: str
    start: int
    size: int


class _OleFile:
    """Just enough of the compound file format [MS-CFB] to read the root's streams."""

    _END = 0xFFFFFFFE

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        handle.seek(0, 2)
        self._file_size = handle.tell()
        handle.seek(0)
        header = handle.read(512)
        byte_order, shift, _mini_shift = struct.unpack_from("<HHH", header, 0x1C)
        if byte_order != 0xFFFE or shift not in (9, 12):
            raise ValueError("bad header")
        self._shift = shift
        self._sector = 1 << shift
        self._max_sectors = self._file_size // self._sector + 1
        fat_count, self._dir_start = struct.unpack_from("<II", header, 0x2C)
        self._cutoff = struct.unpack_from("<I", header, 0x38)[0]
        difat_start, difat_count = struct.unpack_from("<II", header, 0x44)
        fat_sectors = [s for s in struct.unpack_from("<109I", header, 0x4C) if s < self._END]
        per_sector = self._sector // 4
        for _ in range(min(difat_count, self._max_sectors)):
            if difat_start >= self._END:
                break
            values = struct.unpack(f"<{per_sector}I", self._read_sector(difat_start))
            fat_sectors += [s for s in values[:-1] if s < self._END]
            difat_start = values[-1]
        self._fat: list[int] = []
        for sector in fat_sectors[:fat_count]:
            self._fat += struct.unpack(f"<{per_sector}I", self._read_sector(sector))

    def _read_sector(self, number: int) -> bytes:
        self._handle.seek((number + 1) << self._shift)
        data = self._handle.read(self._sector)
        if len(data) < self._sector:
            raise ValueError(f"sector {number} lies beyond the end of the file")
        return data

    def _chain(self, start: int) -> Iterator[int]:
        sector = start
        for _ in range(self._max_sectors):
            if sector >= self._END:
                return
            yield sector
            sector = self._fat[sector]
        raise ValueError("sector chain loops")

    def root_streams(self) -> dict[str, _Entry]:
        """The root storage's children by lower-case name (names ignore case in CFB)."""
        directory = b"".join(self._read_sector(s) for s in self._chain(self._dir_start))
        entries = [directory[i : i + 128] for i in range(0, len(directory) - 127, 128)]
        self._root = self._entry(entries[0])
        found: dict[str, _Entry] = {}
        pending = [struct.unpack_from("<I", entries[0], 0x4C)[0]]
        seen: set[int] = set()
        while pending:
            index = pending.pop()
            if index >= len(entries) or index in seen:
                continue
            seen.add(index)
            raw = entries[index]
            entry = self._entry(raw)
            found[entry.name.lower()] = entry
            pending += struct.unpack_from("<II", raw, 0x44)  # left and right siblings
        return found

    def _entry(self, raw: bytes) -> _Entry:
        (length,) = struct.unpack_from("<H", raw, 0x40)
        name = raw[: max(0, min(length, 64) - 2)].decode("utf-16-le", "replace")
        start, size = struct.unpack_from("<II", raw, 0x74)
        return _Entry(name, start, size)

    def head(self, entry: _Entry, count: int) -> bytes:
        """The first ``count`` (at most 64) bytes of a stream."""
        if entry.size >= self._cutoff:
            return self._read_sector(entry.start)[:count]
        # Small streams live in 64-byte mini sectors inside the root's own stream.
        offset = entry.start * 64
        for index, sector in enumerate(self._chain(self._root.start)):
            if index == offset >> self._shift:
                start = offset % self._sector
                return self._read_sector(sector)[start : start + count]
        raise ValueError(f"stream {entry.name!r} lies outside the mini stream")
