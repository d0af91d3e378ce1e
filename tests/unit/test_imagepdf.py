"""image-to-pdf on real img2pdf: page counts, page sizes, JPEG passthrough, orientation."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pikepdf
import pypdfium2
import pytest
from PIL import ExifTags, Image

from hotfolder.errors import HotfolderError
from hotfolder.workflows.base import StepContext, StepResult
from hotfolder.workflows.imagepdf import IMAGE_TO_PDF, engine_versions
from tests.samples import jpeg_bytes, pdf_bytes, png_bytes

A4 = (595.28, 841.89)


def to_pdf(
    tmp_path: Path, *data: bytes, profile: str = "default", **options: Any
) -> tuple[StepResult, StepContext]:
    sources = []
    for index, content in enumerate(data):
        source = tmp_path / f"img{index}.bin"
        source.write_bytes(content)
        sources.append(source)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    ctx = StepContext(
        "job", "scan", IMAGE_TO_PDF.resolve_options(profile, options), logging.getLogger("t")
    )
    (step,) = IMAGE_TO_PDF.steps
    result = step.run(sources, out, ctx)
    step.verify(sources, result, ctx)
    return result, ctx


def encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def pages_of(path: Path) -> list[tuple[float, float]]:
    document = pypdfium2.PdfDocument(path)
    try:
        return [document[i].get_size() for i in range(len(document))]
    finally:
        document.close()


def render_first(path: Path) -> Image.Image:
    document = pypdfium2.PdfDocument(path)
    try:
        image: Image.Image = document[0].render(scale=1, rev_byteorder=True).to_pil().copy()
        return image
    finally:
        document.close()


def image_width(path: Path) -> float:
    """The width in points at which the first page draws its image (from its "cm" matrix)."""
    with pikepdf.open(path) as pdf:
        for operands, operator in pikepdf.parse_content_stream(pdf.pages[0]):
            if str(operator) == "cm":
                return float(operands[0])
    raise AssertionError("no image placement on the page")


def approx(found: tuple[float, float], expected: tuple[float, float]) -> bool:
    return abs(found[0] - expected[0]) < 1 and abs(found[1] - expected[1]) < 1


def half_red(orientation: int) -> bytes:
    """A 200x100 JPEG at 72 dpi, left half red, right half blue, with an EXIF orientation."""
    image = Image.new("RGB", (200, 100), "blue")
    image.paste("red", (0, 0, 100, 100))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return encode(image, "JPEG", exif=exif, quality=95, dpi=(72, 72))


def is_red(pixel: Any) -> bool:
    return bool(pixel[0] > 200 and pixel[2] < 80)


def test_jpeg_embedded_byte_for_byte(tmp_path: Path) -> None:
    """A JPEG's data is the page image's stream, unchanged; the page is its size at its dpi."""
    data = encode(Image.new("RGB", (300, 150), "red"), "JPEG", dpi=(150, 150), quality=90)
    result, _ = to_pdf(tmp_path, data)
    (output,) = result.outputs
    assert output.name == "scan.pdf"
    assert "JPEG embedded as it is" in result.message
    with pikepdf.open(output) as pdf:
        (image,) = pdf.pages[0].get_images().values()
        assert image.Filter == pikepdf.Name.DCTDecode
        assert image.read_raw_bytes() == data
    # 300 x 150 pixels at 150 dpi are 2 x 1 inches.
    assert approx(pages_of(output)[0], (144, 72))


def test_png_without_dpi_uses_96(tmp_path: Path) -> None:
    """An image that states no resolution is laid out at 96 dpi."""
    result, _ = to_pdf(tmp_path, png_bytes(96, 48))
    assert approx(pages_of(result.outputs[0])[0], (72, 36))


def test_dpi_option_overrides_the_image(tmp_path: Path) -> None:
    """IMAGE.DPI sets the printed size whatever the file says."""
    data = encode(Image.new("RGB", (300, 150), "red"), "JPEG", dpi=(150, 150))
    result, _ = to_pdf(tmp_path, data, **{"IMAGE.DPI": 300})
    assert approx(pages_of(result.outputs[0])[0], (72, 36))


def test_multipage_tiff_gives_one_page_per_frame(tmp_path: Path) -> None:
    """A 3-page TIFF becomes a 3-page PDF, in order."""
    colours = ("red", "lime", "blue")
    frames = [Image.new("RGB", (100, 50), c) for c in colours]
    data = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:], dpi=(72, 72))
    result, _ = to_pdf(tmp_path, data)
    output = result.outputs[0]
    assert pages_of(output) == [(100, 50)] * 3
    document = pypdfium2.PdfDocument(output)
    try:
        firsts = [document[i].render().to_pil().convert("RGB").getpixel((50, 25)) for i in range(3)]
    finally:
        document.close()
    assert firsts == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_exif_rotation_turns_the_page_not_the_pixels(tmp_path: Path) -> None:
    """Orientation 6: the JPEG is embedded as it is and the page shows it upright."""
    data = half_red(6)
    result, _ = to_pdf(tmp_path, data)
    output = result.outputs[0]
    assert approx(pages_of(output)[0], (100, 200))
    with pikepdf.open(output) as pdf:
        (image,) = pdf.pages[0].get_images().values()
        assert image.read_raw_bytes() == data
    # Turned clockwise: the red left half is now on top.
    shown = render_first(output)
    assert is_red(shown.getpixel((50, 20))) and not is_red(shown.getpixel((50, 180)))


def test_mirrored_orientation_goes_through_pillow(tmp_path: Path) -> None:
    """Orientation 2 (mirrored) is applied to the pixels: red ends up on the right."""
    result, _ = to_pdf(tmp_path, half_red(2))
    output = result.outputs[0]
    assert "lossless" in result.message
    assert approx(pages_of(output)[0], (200, 100))
    shown = render_first(output)
    assert is_red(shown.getpixel((180, 50))) and not is_red(shown.getpixel((20, 50)))


@pytest.mark.parametrize(
    ("fmt", "mode", "kwargs"),
    [
        ("PNG", "RGBA", {}),
        ("WEBP", "RGB", {"lossless": True}),
        ("BMP", "RGB", {}),
        ("GIF", "P", {}),
        ("TIFF", "I;16", {}),
    ],
)
def test_other_formats_lossless(tmp_path: Path, fmt: str, mode: str, kwargs: Any) -> None:
    """Alpha, WebP, BMP, GIF and 16-bit images become one page of the image's size."""
    data = encode(Image.new(mode, (96, 48)), fmt, **kwargs)
    result, _ = to_pdf(tmp_path, data)
    assert approx(pages_of(result.outputs[0])[0], (72, 36))


def test_webp_pixels_survive(tmp_path: Path) -> None:
    """A lossless WebP's colour is on the page exactly."""
    data = encode(Image.new("RGB", (96, 48), (10, 200, 30)), "WEBP", lossless=True)
    result, _ = to_pdf(tmp_path, data, **{"IMAGE.DPI": 72})
    assert render_first(result.outputs[0]).getpixel((48, 24)) == (10, 200, 30)


def test_animated_gif_first_frame_with_warning(tmp_path: Path) -> None:
    """An animation is a picture, not pages: one page and a warning."""
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "green", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    result, ctx = to_pdf(tmp_path, data)
    assert len(pages_of(result.outputs[0])) == 1
    assert any("3 frames" in w for w in ctx.warnings)


def test_a4_landscape_image_on_landscape_paper_with_margin(tmp_path: Path) -> None:
    """PAGE.SIZE = a4 turns the paper to the image and shrinks the image into the margins."""
    data = jpeg_bytes(4000, 2000)  # 41.7 x 20.8 inches at 96 dpi: must shrink
    result, _ = to_pdf(tmp_path, data, **{"PAGE.SIZE": "A4", "PAGE.MARGIN": 10})
    output = result.outputs[0]
    assert approx(pages_of(output)[0], (A4[1], A4[0]))
    # The width fills the box between the margins.
    assert abs(image_width(output) - (A4[1] - 2 * 10 * 72 / 25.4)) < 1


def test_small_image_not_enlarged_unless_fill(tmp_path: Path) -> None:
    """shrink keeps a small image's printed size; fill scales it to the page."""
    data = encode(Image.new("RGB", (96, 96), "red"), "PNG", dpi=(96, 96))
    for fit, expected in (("shrink", 72.0), ("fill", A4[0])):
        (tmp_path / fit).mkdir()
        result, _ = to_pdf(tmp_path / fit, data, **{"PAGE.SIZE": "a4", "PAGE.FIT": fit})
        assert abs(image_width(result.outputs[0]) - expected) < 1, fit


def test_letter_profile(tmp_path: Path) -> None:
    """The letter profile puts a portrait image on portrait Letter paper."""
    result, _ = to_pdf(tmp_path, jpeg_bytes(50, 80), profile="letter")
    assert approx(pages_of(result.outputs[0])[0], (612, 792))


def test_one_pdf_per_image(tmp_path: Path) -> None:
    """Several inputs (from a previous step) give one PDF each, named by their stems."""
    result, _ = to_pdf(tmp_path, jpeg_bytes(), png_bytes())
    assert [p.name for p in result.outputs] == ["img0.pdf", "img1.pdf"]
    assert all(len(pages_of(p)) == 1 for p in result.outputs)


def test_absurd_page_size_is_capped(tmp_path: Path) -> None:
    """A page beyond 200 inches (a 1-dpi image) is scaled to 200 inches, with a warning."""
    data = encode(Image.new("L", (500, 100)), "PNG", dpi=(2, 2))  # 250 x 50 inches
    result, ctx = to_pdf(tmp_path, data)
    assert approx(pages_of(result.outputs[0])[0], (14400, 2880))
    assert any("200 inches" in w for w in ctx.warnings)


@pytest.mark.parametrize(
    ("data", "options", "code"),
    [
        (jpeg_bytes(200, 200)[:400], {}, "corrupt_input"),
        (pdf_bytes(), {}, "unsupported_format"),
        (b"plain text", {}, "unsupported_format"),
        (png_bytes(32, 32), {"IMAGE.MAX_PIXELS": 1000}, "too_large"),
        (png_bytes(), {"PAGE.SIZE": "a2"}, "option_invalid"),
        (png_bytes(), {"PAGE.SIZE": "a5", "PAGE.MARGIN": 70}, "option_invalid"),
    ],
)
def test_failures_have_codes(
    tmp_path: Path, data: bytes, options: dict[str, Any], code: str
) -> None:
    """Truncated JPEGs are caught before embedding; each failure has its code."""
    with pytest.raises(HotfolderError) as caught:
        to_pdf(tmp_path, data, **options)
    assert caught.value.code == code


def test_bomb_refused(tmp_path: Path) -> None:
    """A tiny PNG claiming 30000x30000 pixels is too_large before decoding."""
    bomb = encode(Image.new("1", (30000, 30000)), "PNG")
    with pytest.raises(HotfolderError) as caught:
        to_pdf(tmp_path, bomb)
    assert caught.value.code == "too_large"


def test_engine_versions() -> None:
    """img2pdf's version is reported."""
    assert engine_versions()["img2pdf"][0].isdigit()


def test_verify_catches_wrong_pages_and_reencoded_jpeg(tmp_path: Path) -> None:
    """A PDF with other page sizes, or a JPEG that is not the input's bytes, is tool_failed."""
    data = jpeg_bytes(300, 150)
    result, ctx = to_pdf(tmp_path, data)
    (step,) = IMAGE_TO_PDF.steps
    output = result.outputs[0]
    original = output.read_bytes()
    output.write_bytes(pdf_bytes(2))
    with pytest.raises(HotfolderError) as caught:
        step.verify([], result, ctx)
    assert caught.value.code == "tool_failed"
    with pikepdf.open(io.BytesIO(original)) as pdf:
        (image,) = pdf.pages[0].get_images().values()
        image.write(jpeg_bytes(300, 150, "blue"), filter=pikepdf.Name.DCTDecode)
        pdf.save(output)
    with pytest.raises(HotfolderError) as caught:
        step.verify([], result, ctx)
    assert "unchanged" in caught.value.message


def test_sixteen_bit_grey_stays_sixteen_bit(tmp_path: Path) -> None:
    """A 16-bit TIFF (which img2pdf refuses) goes through Pillow and keeps 16 bits."""
    data = encode(Image.new("I;16", (20, 10), 40000), "TIFF")
    result, _ = to_pdf(tmp_path, data)
    with pikepdf.open(result.outputs[0]) as pdf:
        (image,) = pdf.pages[0].get_images().values()
        assert (image.BitsPerComponent, image.ColorSpace) == (16, pikepdf.Name.DeviceGray)
