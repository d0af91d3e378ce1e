"""pdf-to-image on real pdfium: pixel sizes, colours, page selection, TIFF frames, limits."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from PIL import Image

from hotfolder.errors import HotfolderError, OptionInvalid
from hotfolder.workflows.base import StepContext, StepResult
from hotfolder.workflows.pages import page_numbers, parse_page_ranges
from hotfolder.workflows.render import PDF_TO_IMAGE, engine_versions
from tests.samples import jpeg_bytes, pdf_bytes

#: (red, green, blue) fill of each generated page, left half only; the right half is white.
COLOURS = ((1, 0, 0), (0, 0, 1), (0, 1, 0))


def coloured_pdf(pages: int = 3, password: str | None = None) -> bytes:
    """A US Letter PDF whose page n has its left half filled with COLOURS[n % 3]."""
    pdf = pikepdf.new()
    for number in range(pages):
        r, g, b = COLOURS[number % 3]
        content = f"{r} {g} {b} rg 0 0 306 792 re f".encode()
        pdf.pages.append(
            pikepdf.Page(
                pikepdf.Dictionary(
                    Type=pikepdf.Name.Page,
                    MediaBox=[0, 0, 612, 792],
                    Resources=pikepdf.Dictionary(),
                    Contents=pdf.make_stream(content),
                )
            )
        )
    out = io.BytesIO()
    encryption = pikepdf.Encryption(owner="o-" + password, user=password) if password else False
    pdf.save(out, encryption=encryption)
    return out.getvalue()


def render(
    tmp_path: Path, data: bytes, profile: str = "default", **options: Any
) -> tuple[StepResult, StepContext]:
    source = tmp_path / "in.pdf"
    source.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    ctx = StepContext(
        "job", "doc", PDF_TO_IMAGE.resolve_options(profile, options), logging.getLogger("t")
    )
    (step,) = PDF_TO_IMAGE.steps
    result = step.run([source], out, ctx)
    step.verify([source], result, ctx)
    return result, ctx


def near(size: tuple[int, int], points: tuple[float, float], dpi: int) -> bool:
    """pdfium rounds a page's pixel size up: allow one pixel."""
    return all(0 <= s - p * dpi / 72 <= 1 for s, p in zip(size, points, strict=True))


def left_and_right(image: Image.Image) -> tuple[Any, Any]:
    rgb = image.convert("RGB")
    width, height = rgb.size
    return rgb.getpixel((width // 4, height // 2)), rgb.getpixel((width * 3 // 4, height // 2))


def test_png_per_page_with_sizes_and_colours(tmp_path: Path) -> None:
    """Each page is one PNG named -p001..., at the DPI's pixel size, showing its colours."""
    result, _ = render(tmp_path, coloured_pdf(3), **{"RENDER.DPI": 72})
    assert [p.name for p in result.outputs] == ["doc-p001.png", "doc-p002.png", "doc-p003.png"]
    for number, output in enumerate(result.outputs):
        with Image.open(output) as image:
            assert image.format == "PNG"
            assert near(image.size, (612, 792), 72)
            left, right = left_and_right(image)
        assert left == tuple(255 * c for c in COLOURS[number])
        assert right == (255, 255, 255)


def test_dpi_sets_pixel_size_and_is_recorded(tmp_path: Path) -> None:
    """At 150 dpi a Letter page is about 1275 x 1650 pixels, and the file says 150 dpi."""
    result, _ = render(tmp_path, pdf_bytes(1), **{"RENDER.DPI": 150})
    with Image.open(result.outputs[0]) as image:
        assert near(image.size, (612, 792), 150)
        assert round(image.info["dpi"][0]) == 150


def test_page_selection_and_padding(tmp_path: Path) -> None:
    """RENDER.PAGES picks pages; names keep the document's page numbers, padded to its width."""
    result, _ = render(tmp_path, coloured_pdf(1200), **{"RENDER.PAGES": "2, 1000-1001"})
    assert [p.name for p in result.outputs] == [
        "doc-p0002.png",
        "doc-p1000.png",
        "doc-p1001.png",
    ]
    with Image.open(result.outputs[0]) as image:
        assert left_and_right(image)[0] == (0, 0, 255)  # page 2 is blue
    assert "3 page(s)" in result.message


def test_jpeg_with_quality(tmp_path: Path) -> None:
    """JPEG output uses IMAGE.QUALITY: lower quality, smaller file."""
    sizes = []
    for quality in (30, 95):
        (tmp_path / str(quality)).mkdir()
        result, _ = render(
            tmp_path / str(quality),
            coloured_pdf(1),
            **{"RENDER.FORMAT": "jpeg", "IMAGE.QUALITY": quality},
        )
        (output,) = result.outputs
        assert output.suffix == ".jpg"
        with Image.open(output) as image:
            assert image.format == "JPEG"
        sizes.append(output.stat().st_size)
    assert sizes[0] < sizes[1]


def test_multipage_tiff_has_a_frame_per_page(tmp_path: Path) -> None:
    """The archive profile writes one TIFF at 300 dpi with a frame per page, in order."""
    result, _ = render(tmp_path, coloured_pdf(3), "archive", **{"RENDER.DPI": 50})
    (output,) = result.outputs
    assert output.name == "doc.tif"
    with Image.open(output) as image:
        assert image.n_frames == 3
        for number in range(3):
            image.seek(number)
            assert near(image.size, (612, 792), 50)
            assert left_and_right(image)[0] == tuple(255 * c for c in COLOURS[number])


def test_single_page_tiffs(tmp_path: Path) -> None:
    """tiff without MULTIPAGE_TIFF writes one .tif per page."""
    result, _ = render(tmp_path, coloured_pdf(2), **{"RENDER.FORMAT": "tiff", "RENDER.DPI": 20})
    assert [p.name for p in result.outputs] == ["doc-p001.tif", "doc-p002.tif"]


def test_preview_profile_renders_first_page_only(tmp_path: Path) -> None:
    """preview: page 1, JPEG, 72 dpi."""
    result, _ = render(tmp_path, coloured_pdf(3), "preview")
    (output,) = result.outputs
    assert output.name == "doc-p001.jpg"
    with Image.open(output) as image:
        assert near(image.size, (612, 792), 72)


def test_encrypted_pdf_with_password(tmp_path: Path) -> None:
    """DOC.PASSWORD opens a protected PDF; pdfium renders it with the password that worked."""
    data = coloured_pdf(2, password="secret")
    result, _ = render(tmp_path, data, **{"DOC.PASSWORD": ["wrong", "secret"], "RENDER.DPI": 30})
    assert len(result.outputs) == 2
    with Image.open(result.outputs[1]) as image:
        assert left_and_right(image)[0] == (0, 0, 255)


@pytest.mark.parametrize(
    ("data", "options", "code"),
    [
        (coloured_pdf(2, password="secret"), {}, "password_required"),
        (coloured_pdf(2, password="secret"), {"DOC.PASSWORD": "nope"}, "password_incorrect"),
        (jpeg_bytes(), {}, "unsupported_format"),
        (pdf_bytes(3)[:300], {}, "corrupt_input"),
        (pdf_bytes(3), {"RENDER.PAGES": "2-5"}, "option_invalid"),
        (pdf_bytes(3), {"RENDER.PAGES": "two"}, "option_invalid"),
        (pdf_bytes(1), {"RENDER.MULTIPAGE_TIFF": True}, "option_invalid"),
        (pdf_bytes(1), {"RENDER.DPI": 5000}, "option_invalid"),
        (pdf_bytes(1), {"RENDER.DPI": 600, "RENDER.MAX_PIXELS": 1_000_000}, "too_large"),
    ],
)
def test_failures_have_codes(
    tmp_path: Path, data: bytes, options: dict[str, Any], code: str
) -> None:
    """Each kind of bad input or option fails with its own code, before rendering."""
    with pytest.raises(HotfolderError) as caught:
        render(tmp_path, data, **options)
    assert caught.value.code == code
    assert not any((tmp_path / "out").iterdir())


def test_out_of_range_names_the_page_count(tmp_path: Path) -> None:
    """The message says how many pages the document has."""
    with pytest.raises(OptionInvalid) as caught:
        render(tmp_path, pdf_bytes(3), **{"RENDER.PAGES": "4"})
    assert "RENDER.PAGES" in caught.value.message and "3 page(s)" in caught.value.message


@pytest.mark.parametrize(
    ("text", "count", "ranges"),
    [
        ("", 4, [(1, 4)]),
        ("  ", 4, [(1, 4)]),
        ("1-3,7", 9, [(1, 3), (7, 7)]),
        (" 2 , 5 - ", 7, [(2, 2), (5, 7)]),
        ("3", 3, [(3, 3)]),
    ],
)
def test_parse_page_ranges(text: str, count: int, ranges: list[tuple[int, int]]) -> None:
    """Pages, closed and open ranges, blanks tolerated; empty means every page."""
    assert parse_page_ranges(text, count) == ranges


@pytest.mark.parametrize("text", ["0", "4", "2-4", "3-1", "1,,2", "a-b", "-2", "1-2-3"])
def test_parse_page_ranges_rejects(text: str) -> None:
    """Bad or out-of-range parts are option_invalid."""
    with pytest.raises(OptionInvalid):
        parse_page_ranges(text, 3)


def test_page_numbers_keep_order_once() -> None:
    """Overlapping ranges name each page once, in the order first asked for."""
    assert page_numbers([(3, 4), (1, 4)]) == [3, 4, 1, 2]


def test_engine_versions() -> None:
    """pypdfium2 and pdfium versions are reported."""
    versions = engine_versions()
    assert versions["pypdfium2"][0].isdigit() and versions["pdfium"]


def test_verify_catches_a_wrong_image(tmp_path: Path) -> None:
    """An output whose pixel size is not what was rendered fails with tool_failed."""
    result, ctx = render(tmp_path, coloured_pdf(1), **{"RENDER.DPI": 20})
    Image.new("RGB", (10, 10)).save(result.outputs[0], "PNG")
    (step,) = PDF_TO_IMAGE.steps
    with pytest.raises(HotfolderError) as caught:
        step.verify([], result, ctx)
    assert caught.value.code == "tool_failed"
