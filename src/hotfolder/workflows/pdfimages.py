"""Image recompression and downsampling inside a PDF (pikepdf + Pillow), for pdf-optimize.

Conservative on purpose: only 8-bit RGB or greyscale images stored with a single
Flate or DCT (JPEG) filter and without masks, decode arrays or alternates are
touched; everything else keeps its bytes. An image is replaced only when the new
stream is smaller, and it keeps its colour space and every other dictionary entry.

The effective resolution of an image is found by walking the page content streams
(and the form XObjects they draw) with the current transformation matrix. An image
drawn several times counts at its largest size. Images that are never drawn by a
page (only by patterns, annotations or Type 3 fonts) are left alone, and when a
content stream cannot be parsed nothing is downsampled, since a size would be a guess.
"""

from __future__ import annotations

import io
import math
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf
import pypdfium2
import pypdfium2.raw
from PIL import Image

from hotfolder.errors import ToolFailed
from hotfolder.workflows.readers import unreadable_input

#: Images with more pixels are left alone (decoding them would cost too much memory).
MAX_PIXELS = 64_000_000
#: Form XObjects nested deeper than this are not followed (and block downsampling).
_MAX_DEPTH = 12
#: Flate images with at most this many colours are line art, charts or screenshots:
#: JPEG would blur their edges, so they are only ever stored losslessly.
_LINE_ART_COLOURS = 256

_ObjGen = tuple[int, int]


@dataclass
class ImageReport:
    """What the recompression pass did to one document."""

    images: int = 0
    changed: int = 0
    bytes_saved: int = 0
    #: Why downsampling was switched off for the whole document, if it was.
    no_downsampling: str = ""


@dataclass
class _Drawn:
    image: pikepdf.Object
    #: Lowest resolution (pixels per inch) the image is drawn at; 0 when unknown.
    dpi: float


def _matrix(values: object) -> pikepdf.Matrix | None:
    """The matrix of six numbers, or None when they are not six numbers."""
    try:
        numbers = [float(v) for v in values]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return pikepdf.Matrix(*numbers) if len(numbers) == 6 else None


@dataclass
class _Walker:
    """Collects the images page content draws, with their effective resolution."""

    drawn: dict[_ObjGen, _Drawn] = field(default_factory=dict)
    #: Why the sizes found cannot be trusted ("" when they can).
    problem: str = ""
    _parsed: dict[_ObjGen, Sequence[object]] = field(default_factory=dict)

    def walk_page(self, page: pikepdf.Page) -> None:
        instructions = self._parse(page, "a page")
        if instructions is not None:
            self._run(instructions, page.obj.get("/Resources"), pikepdf.Matrix(), 0, ())

    def _parse(self, owner: pikepdf.Page | pikepdf.Object, what: str) -> Sequence[object] | None:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                instructions = pikepdf.parse_content_stream(owner)
        except (pikepdf.PdfError, pikepdf.QpdfRuntimeError, ValueError) as exc:
            self.problem = f"{what}'s content could not be parsed ({exc})"
            return None
        if caught:
            # pikepdf skips what it cannot read; the transformations may be off.
            self.problem = f"{what}'s content is damaged ({caught[0].message})"
        return instructions

    def _run(
        self,
        instructions: Sequence[object],
        resources: object,
        ctm: pikepdf.Matrix,
        depth: int,
        forms: tuple[_ObjGen, ...],
    ) -> None:
        stack: list[pikepdf.Matrix] = []
        for instruction in instructions:
            if not isinstance(instruction, pikepdf.ContentStreamInstruction):
                continue  # inline images are small and stay as they are
            operator = str(instruction.operator)
            operands = instruction.operands
            if operator == "q":
                stack.append(ctm)
            elif operator == "Q" and stack:
                ctm = stack.pop()
            elif operator == "cm":
                matrix = _matrix(operands)
                if matrix is None:
                    self.problem = "a page changes its coordinates with a malformed matrix"
                    return
                ctm = matrix @ ctm
            elif operator == "Do" and operands:
                self._draw(resources, operands[0], ctm, depth, forms)

    def _draw(
        self,
        resources: object,
        name: object,
        ctm: pikepdf.Matrix,
        depth: int,
        forms: tuple[_ObjGen, ...],
    ) -> None:
        xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
        xobject = xobjects.get(str(name)) if isinstance(xobjects, pikepdf.Dictionary) else None
        if not isinstance(xobject, pikepdf.Stream):
            return
        subtype = xobject.get("/Subtype")
        if subtype == pikepdf.Name.Image:
            self._record(xobject, ctm)
        elif subtype == pikepdf.Name.Form:
            self._form(xobject, resources, ctm, depth, forms)

    def _record(self, image: pikepdf.Object, ctm: pikepdf.Matrix) -> None:
        # The image fills the unit square; the CTM maps its sides to these lengths (pt).
        width_pt, height_pt = math.hypot(ctm.a, ctm.b), math.hypot(ctm.c, ctm.d)
        try:
            pixels_w, pixels_h = int(image.Width), int(image.Height)
        except (AttributeError, TypeError, ValueError):
            return
        if width_pt < 1e-3 or height_pt < 1e-3:
            dpi = 0.0  # drawn at no size: nothing tells how fine it must stay
        else:
            dpi = min(pixels_w * 72 / width_pt, pixels_h * 72 / height_pt)
        seen = self.drawn.get(image.objgen)
        if seen is None:
            self.drawn[image.objgen] = _Drawn(image, dpi)
        else:
            seen.dpi = min(seen.dpi, dpi)

    def _form(
        self,
        form: pikepdf.Object,
        resources: object,
        ctm: pikepdf.Matrix,
        depth: int,
        forms: tuple[_ObjGen, ...],
    ) -> None:
        if form.objgen in forms or depth >= _MAX_DEPTH:
            self.problem = "form XObjects are nested too deeply or draw themselves"
            return
        instructions = self._parsed.get(form.objgen)
        if instructions is None:
            instructions = self._parse(form, "a form XObject")
            if instructions is None:
                return
            self._parsed[form.objgen] = instructions
        values = form.get("/Matrix")
        inner = pikepdf.Matrix() if values is None else _matrix(values)
        if inner is None:
            self.problem = "a form XObject has a malformed matrix"
            return
        # Forms without their own resources use the ones of what draws them (PDF 1.1 style).
        own = form.get("/Resources", resources)
        self._run(instructions, own, inner @ ctm, depth + 1, (*forms, form.objgen))


def _pixel_mode(image: pikepdf.Object) -> str | None:
    """``RGB`` or ``L`` for the colour spaces recompression may touch, else None."""
    space = image.get("/ColorSpace")
    if space == pikepdf.Name.DeviceRGB:
        return "RGB"
    if space == pikepdf.Name.DeviceGray:
        return "L"
    if isinstance(space, pikepdf.Array) and len(space) == 2 and space[0] == pikepdf.Name.ICCBased:
        # The pixels keep their ICC colour space; only the encoding changes.
        components = space[1].get("/N")
        return {1: "L", 3: "RGB"}.get(int(components)) if components is not None else None
    return None


def _filter(image: pikepdf.Object) -> str | None:
    filters = image.get("/Filter")
    if isinstance(filters, pikepdf.Array):
        filters = filters[0] if len(filters) == 1 else None
    return str(filters) if filters in (pikepdf.Name.FlateDecode, pikepdf.Name.DCTDecode) else None


def _eligible(image: pikepdf.Object) -> tuple[str, str] | None:
    """(pixel mode, filter) when the image is one recompression may touch."""
    for key in ("/SMask", "/Mask", "/Decode", "/Alternates", "/SMaskInData", "/OPI"):
        if key in image:
            return None
    if image.get("/ImageMask", False) or image.get("/BitsPerComponent") != 8:
        return None
    mode, kind = _pixel_mode(image), _filter(image)
    if mode is None or kind is None:
        return None
    if kind == "/DCTDecode" and image.get("/DecodeParms"):
        return None  # a ColorTransform override: Pillow would not honour it
    try:
        width, height = int(image.Width), int(image.Height)
    except (AttributeError, TypeError, ValueError):
        return None
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        return None
    return mode, kind


def _decode(image: pikepdf.Object, mode: str, kind: str) -> Image.Image | None:
    size = (int(image.Width), int(image.Height))
    if kind == "/FlateDecode":
        data = image.read_bytes()  # qpdf undoes Flate and any PNG/TIFF predictor
        expected = size[0] * size[1] * len(mode)
        if len(data) < expected:
            return None
        return Image.frombytes(mode, size, data[:expected])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(image.read_raw_bytes())) as jpeg:
            if jpeg.format != "JPEG" or jpeg.mode != mode or jpeg.size != size:
                return None  # CMYK, Adobe-inverted or inconsistent: not ours to touch
            jpeg.load()
            return jpeg.copy()


def _recompress(drawn: _Drawn, quality: int, max_dpi: int) -> int:
    """Replace the image with a smaller encoding; return the bytes saved (0: unchanged)."""
    image = drawn.image
    found = _eligible(image)
    if found is None:
        return 0
    mode, kind = found
    scale = max_dpi / drawn.dpi if max_dpi and drawn.dpi > max_dpi else 1.0
    if scale == 1.0 and not quality:
        return 0  # nothing lossy asked for; PDF.RECOMPRESS already redoes Flate
    try:
        pixels = _decode(image, mode, kind)
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        pikepdf.PdfError,
        pikepdf.QpdfRuntimeError,
    ):
        return 0  # an image we cannot decode stays exactly as it was
    if pixels is None:
        return 0
    line_art = kind == "/FlateDecode" and pixels.getcolors(_LINE_ART_COLOURS) is not None
    if scale < 1.0:
        size = (max(1, round(pixels.width * scale)), max(1, round(pixels.height * scale)))
        pixels = pixels.resize(size, Image.Resampling.LANCZOS)
    if quality and not line_art:
        out = io.BytesIO()
        pixels.save(out, "JPEG", quality=quality, optimize=True)
        data, new_filter = out.getvalue(), pikepdf.Name.DCTDecode
    elif scale < 1.0 or kind == "/FlateDecode":
        data, new_filter = zlib.compress(pixels.tobytes(), 9), pikepdf.Name.FlateDecode
    else:
        return 0  # a JPEG kept lossless at full size: nothing to gain
    before = len(image.read_raw_bytes())
    if len(data) >= before:
        return 0
    image.write(data, filter=new_filter)
    if "/DecodeParms" in image:
        del image.DecodeParms
    image.Width, image.Height = pixels.width, pixels.height
    return before - len(data)


def recompress_images(pdf: pikepdf.Pdf, quality: int, max_dpi: int) -> ImageReport:
    """Recompress (``quality`` 1-100: JPEG) and downsample (above ``max_dpi``) the images.

    ``quality`` 0 keeps every encoding lossless (downsampled images are stored with
    Flate); ``max_dpi`` 0 keeps every image's pixel size.
    """
    walker = _Walker()
    for page in pdf.pages:
        walker.walk_page(page)
    report = ImageReport(
        images=len(walker.drawn), no_downsampling=walker.problem if max_dpi else ""
    )
    for drawn in walker.drawn.values():
        saved = _recompress(drawn, quality, 0 if walker.problem else max_dpi)
        if saved:
            report.changed += 1
            report.bytes_saved += saved
    return report


def check_images(source: Path, output: Path, password: str) -> None:
    """Check in pdfium that every page draws as many images as before, all decodable.

    Raises ToolFailed when a page lost or gained an image or one does not decode,
    and CorruptInput when pdfium cannot open the input, or cannot decode the images
    of that page of the input either: qpdf passes such data through unchanged, so
    the fault is the input's.
    """
    try:
        before, _ = _scan_images(source, password, decode=False)
    except pypdfium2.PdfiumError as exc:
        raise unreadable_input(source, "pdfium", str(exc)) from None
    try:
        after, broken = _scan_images(output, password, decode=True)
    except pypdfium2.PdfiumError as exc:
        raise ToolFailed(
            f"The optimized file does not open in pdfium ({exc}); it was not published. "
            "Please report this."
        ) from None
    if broken is not None:
        if _scan_images(source, password, decode=True, pages=[broken])[1] is not None:
            raise unreadable_input(
                source, "pdfium", f"an image on page {broken + 1} does not decode"
            )
        raise ToolFailed(
            f"A recompressed image on page {broken + 1} does not decode in pdfium; "
            "the file was not published. Please report this."
        )
    if before != after:
        pages = max(len(before), len(after))
        changed = [
            str(n)
            for n in range(1, pages + 1)
            if before[n - 1 : n] != after[n - 1 : n]  # a missing page counts as changed
        ]
        raise ToolFailed(
            f"The optimized file draws a different number of images than the input on "
            f"page(s) {', '.join(changed)}; it was not published. Please report this."
        )


def _scan_images(
    path: Path, password: str, *, decode: bool, pages: Sequence[int] | None = None
) -> tuple[list[int], int | None]:
    """Images drawn per page (of ``pages``, else all) and the first undecodable one.

    With ``decode``, the scan stops at the first page (0-based) with an image pdfium
    cannot decode and returns its index (pdfium's error names no cause). Raises
    pypdfium2.PdfiumError when pdfium cannot open the file.
    """
    document = pypdfium2.PdfDocument(path, password=password or None)
    counts: list[int] = []
    try:
        for index in range(len(document)) if pages is None else pages:
            page = document[index]
            images = list(page.get_objects(filter=[pypdfium2.raw.FPDF_PAGEOBJ_IMAGE]))
            for image in images if decode else ():
                try:
                    # pdfium decodes with its own codecs, not Pillow's.
                    image.get_bitmap()
                except pypdfium2.PdfiumError:
                    return counts, index
            counts.append(len(images))
            page.close()
        return counts, None
    finally:
        document.close()
