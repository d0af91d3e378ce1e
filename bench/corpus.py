"""Generated inputs that look like what people really drop into hot folders.

Nothing here is a fixture on disk: every file is built from a seed, so a run
on a fresh machine measures the same kind of work. Three kinds of documents:

* born-digital reports: several pages of prose, a vector chart and a JPEG
  photo per page, text in an embedded (subset) TrueType font, the way office
  suites export;
* scans: one JPEG page image per page (a grey, slightly noisy sheet of paper
  with text rendered into it) plus an invisible text layer, the way scanners
  with OCR deliver them;
* one-page letters: a page of text and a small chart, a few kilobytes, for
  the per-job overhead figures;

and camera photos: 12 MP JPEGs with EXIF, sky-to-ground gradients, shapes and
sensor noise, a quarter of them stored rotated (EXIF orientation 6).
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
import pikepdf
from fontTools import subset
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# WinAnsi codes for printable ASCII are the ASCII codes themselves; staying in
# ASCII keeps the simple-font encoding exact, which PDF/A validation checks.
_FIRST_CHAR, _LAST_CHAR = 32, 126
_TEXT = (
    "revenue growth margin customers region north south increase decrease costs quarter "
    "forecast budget invoice delivery contract supplier payment schedule project risk "
    "team sales order shipment warehouse audit compliance policy review approval the of "
    "and to in for with on by from at as an is was were will be this that these those "
    "annual report summary analysis market share operating income expenses capital"
)
_WORDS = _TEXT.split()


def font_file() -> Path:
    """DejaVu Sans as matplotlib ships it (present wherever the bench extra is installed)."""
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


@dataclass(frozen=True)
class _Font:
    """A TrueType subset ready to embed, with the metrics its font dictionary needs."""

    data: bytes
    widths: list[int]
    bbox: list[int]
    ascent: int
    descent: int
    cap_height: int

    def width(self, text: str, size: float) -> float:
        """Advance width of ``text`` at ``size`` points."""
        return sum(self.widths[ord(ch) - _FIRST_CHAR] for ch in text) * size / 1000


@cache
def _font() -> _Font:
    chars = "".join(chr(code) for code in range(_FIRST_CHAR, _LAST_CHAR + 1))
    options = subset.Options()
    # Hinting is useless in a PDF and doubles the subset's size.
    options.hinting = False
    options.notdef_outline = True
    options.name_IDs = ["*"]
    # FontForge's timestamp table means nothing in a PDF (and fontTools warns about it).
    options.drop_tables += ["FFTM"]
    font = TTFont(font_file())
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=chars)
    subsetter.subset(font)
    buffer = io.BytesIO()
    font.save(buffer)
    scale = 1000 / font["head"].unitsPerEm
    cmap = font.getBestCmap()
    metrics = font["hmtx"].metrics
    widths = [round(metrics[cmap[ord(ch)]][0] * scale) for ch in chars]
    head, os2 = font["head"], font["OS/2"]
    bbox = [round(v * scale) for v in (head.xMin, head.yMin, head.xMax, head.yMax)]
    return _Font(
        data=buffer.getvalue(),
        widths=widths,
        bbox=bbox,
        ascent=round(os2.sTypoAscender * scale),
        descent=round(os2.sTypoDescender * scale),
        cap_height=round(getattr(os2, "sCapHeight", 700) * scale),
    )


def _font_dict(pdf: pikepdf.Pdf, tag: str) -> pikepdf.Object:
    font = _font()
    # A subset's name carries a six-letter tag, as every exporting application writes it.
    name = pikepdf.Name(f"/{tag}+DejaVuSans")
    descriptor = pikepdf.Dictionary(
        Type=pikepdf.Name.FontDescriptor,
        FontName=name,
        Flags=32,  # non-symbolic: codes map through WinAnsiEncoding
        FontBBox=font.bbox,
        ItalicAngle=0,
        Ascent=font.ascent,
        Descent=font.descent,
        CapHeight=font.cap_height,
        StemV=80,
        FontFile2=pdf.make_stream(font.data),
    )
    return pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.TrueType,
            BaseFont=name,
            FirstChar=_FIRST_CHAR,
            LastChar=_LAST_CHAR,
            Widths=font.widths,
            Encoding=pikepdf.Name.WinAnsiEncoding,
            FontDescriptor=pdf.make_indirect(descriptor),
        )
    )


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
    words[0] = words[0].capitalize()
    if rng.random() < 0.3:
        words.insert(
            rng.randint(1, len(words) - 1), f"{rng.randint(2, 999)},{rng.randint(0, 999):03d}"
        )
    return " ".join(words) + "."


def _wrap(text: str, size: float, width: float) -> list[str]:
    font = _font()
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if line and font.width(trial, size) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    if line:
        lines.append(line)
    return lines


def _text_ops(lines: list[tuple[float, float, float, str]], invisible: bool = False) -> list[str]:
    """``BT … ET`` operators for (x, y, size, text) lines in font /F1."""
    ops = ["BT", "3 Tr" if invisible else "0 Tr", "0 0 0 rg"]
    for x, y, size, text in lines:
        ops.append(f"/F1 {size:g} Tf 1 0 0 1 {x:.2f} {y:.2f} Tm ({_escape(text)}) Tj")
    ops.append("ET")
    return ops


def _chart_ops(rng: random.Random, x: float, y: float, w: float, h: float) -> list[str]:
    """A bar chart with a trend line, drawn with path operators like exported charts."""
    ops = ["q", "0.4 w", "0 0 0 RG", f"{x:.1f} {y:.1f} m {x:.1f} {y + h:.1f} l S"]
    ops.append(f"{x:.1f} {y:.1f} m {x + w:.1f} {y:.1f} l S")
    bars = rng.randint(6, 12)
    step = w / bars
    for i in range(bars):
        r, g, b = rng.random() * 0.5, 0.3 + rng.random() * 0.5, 0.6 + rng.random() * 0.4
        bar = h * (0.15 + 0.8 * rng.random())
        ops.append(f"{r:.3f} {g:.3f} {b:.3f} rg")
        ops.append(f"{x + i * step + 2:.1f} {y:.1f} {step - 4:.1f} {bar:.1f} re f")
    ops += ["0.8 0.1 0.1 RG", "1.2 w"]
    level = h * 0.5
    points = []
    for i in range(60):
        level = min(h * 0.95, max(h * 0.05, level + rng.gauss(0, h * 0.05)))
        points.append((x + i * w / 59, y + level))
    ops.append(f"{points[0][0]:.1f} {points[0][1]:.1f} m")
    ops += [f"{px:.1f} {py:.1f} l" for px, py in points[1:]]
    ops += ["S", "Q"]
    return ops


@cache
def _noise_bank(height: int, width: int) -> np.ndarray:
    """Gaussian sensor noise, made once: each photo takes a shifted view of it.

    Drawing 36 million fresh normal samples per photo would make the corpus
    slower to build than the benchmark is to run; a rolled copy of one field
    is just as incompressible for a JPEG or PNG encoder.
    """
    rng = np.random.default_rng(20261125)
    return rng.normal(0.0, 9.0, (height, width, 3)).astype(np.float32)


def photo(seed: int, width: int = 4000, height: int = 3000) -> Image.Image:
    """A camera-like RGB picture: graded sky and ground, soft shapes, sensor noise."""
    rng = random.Random(seed)
    horizon = int(height * rng.uniform(0.35, 0.65))
    sky_top = np.array([rng.uniform(20, 90), rng.uniform(60, 140), rng.uniform(150, 240)])
    sky_low = np.array([rng.uniform(170, 240), rng.uniform(170, 230), rng.uniform(190, 250)])
    ground_top = np.array([rng.uniform(60, 140), rng.uniform(80, 160), rng.uniform(30, 90)])
    ground_low = np.array([rng.uniform(20, 80), rng.uniform(30, 90), rng.uniform(10, 50)])
    t = np.linspace(0.0, 1.0, horizon)[:, None]
    sky = sky_top * (1 - t) + sky_low * t
    t = np.linspace(0.0, 1.0, height - horizon)[:, None]
    ground = ground_top * (1 - t) + ground_low * t
    column = np.concatenate([sky, ground]).astype(np.float32)
    # Shapes (buildings, trees, clouds) are drawn small and blurred, then scaled up:
    # smooth regions and edges like a real scene, at a fraction of the cost.
    small = Image.new("L", (width // 8, height // 8), 0)
    draw = ImageDraw.Draw(small)
    for _ in range(rng.randint(12, 30)):
        x0, y0 = rng.randrange(small.width), rng.randrange(small.height)
        x1, y1 = x0 + rng.randint(10, 120), y0 + rng.randint(10, 90)
        fill = rng.randint(40, 255)
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
    shapes = small.filter(ImageFilter.GaussianBlur(2)).resize((width, height), Image.BILINEAR)
    tint = np.array([rng.uniform(-60, 60) for _ in range(3)], dtype=np.float32)
    mask = np.asarray(shapes, dtype=np.float32)[:, :, None] / 255.0
    bank = _noise_bank(height, width)
    noise = np.roll(bank, (rng.randrange(height), rng.randrange(width)), axis=(0, 1))
    pixels = column[:, None, :] + mask * tint + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def write_photo(path: Path, seed: int, width: int = 4000, height: int = 3000) -> Path:
    """A 12 MP camera JPEG (quality 90) with EXIF; every fourth one is stored rotated."""
    image = photo(seed, width, height)
    exif = Image.Exif()
    exif[0x010F] = "Benchcam"  # Make
    exif[0x0110] = f"BC-{seed % 7 + 1}"  # Model
    exif[0x0132] = f"2026:11:{seed % 28 + 1:02d} 10:{seed % 60:02d}:00"  # DateTime
    if seed % 4 == 3:
        # Portrait shots: the sensor's landscape pixels plus "rotate 90° on display".
        exif[0x0112] = 6
    image.save(path, "JPEG", quality=90, exif=exif.tobytes())
    return path


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _jpeg_xobject(pdf: pikepdf.Pdf, image: Image.Image, quality: int) -> pikepdf.Object:
    # JPEG bytes go in as they are (DCTDecode), as every PDF producer embeds photos.
    gray = image.mode == "L"
    stream = pdf.make_stream(_jpeg(image, quality))
    stream.Type = pikepdf.Name.XObject
    stream.Subtype = pikepdf.Name.Image
    stream.Width, stream.Height = image.width, image.height
    stream.ColorSpace = pikepdf.Name.DeviceGray if gray else pikepdf.Name.DeviceRGB
    stream.BitsPerComponent = 8
    stream.Filter = pikepdf.Name.DCTDecode
    return stream


def _page(
    pdf: pikepdf.Pdf, ops: list[str], font: pikepdf.Object, images: dict[str, pikepdf.Object]
) -> None:
    resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    if images:
        resources.XObject = pikepdf.Dictionary({f"/{k}": v for k, v in images.items()})
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[0, 0, 595, 842],
        Resources=resources,
        Contents=pdf.make_stream("\n".join(ops).encode("latin-1")),
    )
    pdf.pages.append(pikepdf.Page(page))


def _tag(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(6))


def _info(pdf: pikepdf.Pdf, title: str, producer: str) -> None:
    with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
        meta["dc:title"] = title
        meta["pdf:Producer"] = producer


def _base_font(pdf: pikepdf.Pdf) -> pikepdf.Object:
    # Older producers name a standard font and embed nothing; PDF/A then needs
    # Ghostscript to embed one, which is the other engine path of pdf-archive.
    return pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )


def report_pdf(path: Path, seed: int, pages: int, *, embed_font: bool = True) -> Path:
    """A born-digital report: prose, a chart and a photo on each page."""
    rng = random.Random(seed)
    pdf = pikepdf.new()
    font = _font_dict(pdf, _tag(rng)) if embed_font else _base_font(pdf)
    for number in range(1, pages + 1):
        lines: list[tuple[float, float, float, str]] = [
            (56, 790, 16, f"Report {seed}: {rng.choice(_WORDS)} {rng.choice(_WORDS)}"),
            (56, 772, 9, f"Page {number} of {pages}"),
        ]
        y = 745.0
        while y > 470:
            for line in _wrap(" ".join(_sentence(rng) for _ in range(4)), 10, 483):
                if y <= 470:
                    break
                lines.append((56, y, 10, line))
                y -= 13
            y -= 8
        ops = _text_ops(lines)
        ops += _chart_ops(rng, 56, 270, 230, 170)
        picture = photo(seed * 1000 + number, 1000, 750)
        ops += ["q", "240 0 0 180 305 265 cm", "/Im1 Do", "Q"]
        caption = f"Figure {number}: {rng.choice(_WORDS)} {rng.choice(_WORDS)}"
        ops += _text_ops([(305, 250, 8, caption)])
        rows = [(56, 220 - 14 * i, 9, _table_row(rng, i)) for i in range(12)]
        ops += _text_ops(rows)
        _page(pdf, ops, font, {"Im1": _jpeg_xobject(pdf, picture, 85)})
    _info(pdf, f"Report {seed}", "Bench Writer 1.0")
    pdf.save(path)
    return path


def _table_row(rng: random.Random, index: int) -> str:
    if index == 0:
        return "Item                         Qty        Unit price        Amount"
    qty, price = rng.randint(1, 500), rng.uniform(1, 900)
    item = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}"[:26].ljust(26)
    return f"{item}   {qty:5d}        {price:10.2f}        {qty * price:10.2f}"


@cache
def _scan_font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_file()), size)


def scan_pdf(path: Path, seed: int, pages: int, dpi: int = 150) -> Path:
    """A scanned document: a JPEG page image per page and an invisible OCR text layer."""
    rng = random.Random(seed)
    pdf = pikepdf.new()
    font = _font_dict(pdf, _tag(rng))
    width, height = round(8.27 * dpi), round(11.69 * dpi)
    px = dpi / 72
    for _ in range(pages):
        sheet = Image.new("L", (width, height), 236 + rng.randint(-6, 6))
        draw = ImageDraw.Draw(sheet)
        lines: list[tuple[float, float, float, str]] = []
        y = 60.0
        while y < 780:
            for line in _wrap(" ".join(_sentence(rng) for _ in range(3)), 10, 480):
                if y >= 780:
                    break
                draw.text((60 * px, y * px), line, fill=30, font=_scan_font(round(10 * px)))
                # The OCR layer sits where the text is seen; PDF y runs upwards.
                lines.append((60, 842 - y - 8, 10, line))
                y += 14
            y += 10
        # Scanner grain and a slight blur: what makes real scans cost more to encode.
        grain = Image.effect_noise((width, height), 6).point(lambda v: v - 128)
        sheet = Image.blend(sheet, grain, 0.04).filter(ImageFilter.GaussianBlur(0.6))
        ops = ["q", "595 0 0 842 0 0 cm", "/Scan Do", "Q", *_text_ops(lines, invisible=True)]
        _page(pdf, ops, font, {"Scan": _jpeg_xobject(pdf, sheet, 70)})
    _info(pdf, f"Scan {seed}", "Bench Scanner 2.1")
    pdf.save(path)
    return path


def letter_pdf(seed: int) -> bytes:
    """A one-page letter (a few kilobytes): text in the embedded font and a small chart."""
    rng = random.Random(seed)
    pdf = pikepdf.new()
    font = _font_dict(pdf, _tag(rng))
    lines: list[tuple[float, float, float, str]] = [
        (56, 790, 14, f"Invoice {seed:06d}"),
        (56, 770, 9, f"Customer {rng.randint(1000, 9999)}, order {rng.randint(10**5, 10**6)}"),
    ]
    y = 740.0
    for line in _wrap(" ".join(_sentence(rng) for _ in range(6)), 10, 483):
        lines.append((56, y, 10, line))
        y -= 13
    rows = [(56, 520 - 14 * i, 9, _table_row(rng, i)) for i in range(8)]
    ops = _text_ops(lines) + _text_ops(rows) + _chart_ops(rng, 56, 300, 200, 100)
    _page(pdf, ops, font, {})
    _info(pdf, f"Invoice {seed}", "Bench Billing 3.0")
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


#: Of every six documents: three modern reports, two scans, one legacy report.
_KINDS = ("report", "report", "report", "scan", "scan", "legacy")


def document_kind(seed: int) -> str:
    """Which kind of document :func:`document_pdf` makes for ``seed``."""
    return _KINDS[seed % len(_KINDS)]


def document_pdf(path: Path, seed: int) -> Path:
    """One of the multi-page documents, 4 to 20 pages, of the kind ``seed`` selects."""
    pages = random.Random(seed).randint(4, 20)
    kind = document_kind(seed)
    if kind == "scan":
        return scan_pdf(path, seed, pages)
    return report_pdf(path, seed, pages, embed_font=kind == "report")


def mean_pages(count: int) -> float:
    """Average page count of the first ``count`` documents (for the results)."""
    total = sum(random.Random(seed).randint(4, 20) for seed in range(count))
    return total / max(1, count)


def megapixels(width: int, height: int) -> float:
    """Size of a photo in megapixels, rounded as cameras advertise it."""
    return math.floor(width * height / 1e5) / 10
