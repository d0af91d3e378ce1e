"""pdf-archive on files pikepdf used to refuse: forbidden page boxes, JPEG 2000, damaged xref."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from hotfolder.errors import ToolFailed
from hotfolder.workflows import ghostscript
from hotfolder.workflows.pdfafix import normalise_boxes, separate_roles, title_outlines
from tests.unit.test_pdf import damaged_xref
from tests.unit.test_pdfa import archive, assert_pdfa, image_pdf


def _saved(pdf: pikepdf.Pdf) -> bytes:
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def test_forbidden_page_boxes_are_clipped_and_the_file_becomes_pdfa(tmp_path: Path) -> None:
    pdf = pikepdf.open(io.BytesIO(image_pdf()))
    media = [float(v) for v in pdf.pages[0].MediaBox]
    pdf.pages[0].ArtBox = [0, 0, 0, 0]
    pdf.pages[0].TrimBox = [media[0] - 50, media[1] - 50, media[2] + 50, media[3] + 50]
    result, ctx = archive(tmp_path, _saved(pdf), **{"PDFA.ENGINE": "pikepdf"})
    assert_pdfa(result.outputs[0], "2b")
    with pikepdf.open(result.outputs[0]) as out:
        page = out.pages[0]
        assert "/ArtBox" not in page.obj
        assert [float(v) for v in page.TrimBox] == media
    assert any("page boxes" in w for w in ctx.warnings)


def test_boxes_inside_the_page_are_left_alone() -> None:
    pdf = pikepdf.open(io.BytesIO(image_pdf()))
    pdf.pages[0].CropBox = [10, 10, 100, 100]
    assert normalise_boxes(pdf) == 0


def _jpx_pdf() -> bytes:
    picture = Image.linear_gradient("L").resize((120, 80)).convert("RGB")
    data = io.BytesIO()
    picture.save(data, "JPEG2000", irreversible=False)
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(120, 80))
    image = pikepdf.Stream(pdf, data.getvalue())
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width, image.Height = 120, 80
    image.Filter = pikepdf.Name.JPXDecode
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    pdf.pages[0].Contents = pikepdf.Stream(pdf, b"q 120 0 0 80 0 0 cm /Im0 Do Q")
    return _saved(pdf)


def test_jpeg2000_image_becomes_checkable_without_changing_a_pixel(tmp_path: Path) -> None:
    data = _jpx_pdf()
    result, ctx = archive(tmp_path, data, **{"PDFA.ENGINE": "pikepdf"})
    assert_pdfa(result.outputs[0], "2b")
    from pikepdf.models.image import PdfImage

    with pikepdf.open(io.BytesIO(data)) as before, pikepdf.open(result.outputs[0]) as after:
        old = next(iter(before.pages[0].get_images().values()))
        new = next(iter(after.pages[0].get_images().values()))
        assert new.Filter == pikepdf.Name.FlateDecode
        assert PdfImage(old).as_pil_image().tobytes() == PdfImage(new).as_pil_image().tobytes()
    assert any("JPEG 2000" in w for w in ctx.warnings)


def test_pdfa_of_a_file_with_a_broken_xref_table_by_default(tmp_path: Path) -> None:
    result, ctx = archive(tmp_path, damaged_xref(image_pdf()))
    assert_pdfa(result.outputs[0], "2b")
    assert any(w.startswith("repaired: ") for w in ctx.warnings)


def test_failed_ghostscript_falls_back_to_pikepdf_and_is_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> list[str]:
        raise ToolFailed("Ghostscript PDF/A conversion failed (exit status 1): injected")

    monkeypatch.setattr(ghostscript, "convert_to_pdfa", crash)
    result, ctx = archive(tmp_path, image_pdf(), **{"PDFA.ENGINE": "ghostscript"})
    assert_pdfa(result.outputs[0], "2b")
    assert result.facts["files"][0]["engine"] == "pikepdf"
    assert any("written by pikepdf instead" in w for w in ctx.warnings)


def test_a_soft_mask_also_drawn_gets_its_own_copy_and_untitled_bookmarks_a_title() -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(20, 10))
    mask = pdf.make_stream(bytes(200), Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image,
                           Width=20, Height=10, BitsPerComponent=8,
                           ColorSpace=pikepdf.Name.DeviceGray)  # fmt: skip
    picture = pdf.make_stream(bytes(600), Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image,
                              Width=20, Height=10, BitsPerComponent=8,
                              ColorSpace=pikepdf.Name.DeviceRGB, SMask=mask)  # fmt: skip
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(M=mask, P=picture))
    assert separate_roles(pdf) == 1
    assert picture.SMask.objgen != mask.objgen
    assert picture.SMask.read_raw_bytes() == mask.read_raw_bytes()
    item = pdf.make_indirect(pikepdf.Dictionary(Dest=pikepdf.Array([pdf.pages[0].obj])))
    pdf.Root.Outlines = pdf.make_indirect(pikepdf.Dictionary(First=item, Last=item, Count=1))
    item.Parent = pdf.Root.Outlines
    assert title_outlines(pdf) == 1 and str(item.Title) == ""
