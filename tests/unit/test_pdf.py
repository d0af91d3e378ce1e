"""pdf-optimize on real pikepdf: outputs checked for content, errors for their code."""

from __future__ import annotations

import io
import logging
import os
import zlib
from pathlib import Path
from typing import Any

import pikepdf
import pypdfium2
import pypdfium2.raw
import pytest
from PIL import Image

from hotfolder.errors import HotfolderError, OptionInvalid, ToolFailed
from hotfolder.workflows.base import StepContext, StepResult
from hotfolder.workflows.pdf import PDF_OPTIMIZE, engine_versions
from hotfolder.workflows.pdfimages import check_images
from tests.samples import jpeg_bytes, pdf_bytes


def optimize(
    tmp_path: Path, data: bytes, profile: str = "default", **options: Any
) -> tuple[StepResult, StepContext]:
    source = tmp_path / "in.pdf"
    source.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    ctx = StepContext(
        "job", "report", PDF_OPTIMIZE.resolve_options(profile, options), logging.getLogger("t")
    )
    (step,) = PDF_OPTIMIZE.steps
    result = step.run([source], out, ctx)
    step.verify([source], result, ctx)
    return result, ctx


def text_of(path: Path, password: str | None = None) -> list[str]:
    document = pypdfium2.PdfDocument(path, password=password)
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


def failure_code(tmp_path: Path, data: bytes, **options: Any) -> str:
    with pytest.raises(HotfolderError) as caught:
        optimize(tmp_path, data, **options)
    return caught.value.code


def test_optimize_keeps_pages_and_text(tmp_path: Path) -> None:
    """The output has the same pages and text, named after the job."""
    result, _ctx = optimize(tmp_path, pdf_bytes(pages=3, text="Quarterly"))
    (output,) = result.outputs
    assert output.name == "report.pdf"
    assert [t.strip() for t in text_of(output)] == [f"Quarterly page {n}" for n in (1, 2, 3)]
    assert "3 page(s)" in result.message


def test_optimize_is_reproducible(tmp_path: Path) -> None:
    """The same input gives byte-identical output (deterministic /ID)."""
    outputs = []
    for attempt in ("a", "b"):
        (tmp_path / attempt).mkdir()
        result, _ = optimize(tmp_path / attempt, pdf_bytes(pages=2))
        outputs.append(result.outputs[0].read_bytes())
    assert outputs[0] == outputs[1]


def test_web_profile_linearizes(tmp_path: Path) -> None:
    """Profile web writes a linearized file."""
    result, _ = optimize(tmp_path, pdf_bytes(pages=2), "web")
    with pikepdf.open(result.outputs[0]) as pdf:
        assert pdf.is_linearized


def test_object_streams_generated(tmp_path: Path) -> None:
    """The default writes object streams; disable writes none."""
    result, _ = optimize(tmp_path, pdf_bytes(pages=5))
    assert b"/ObjStm" in result.outputs[0].read_bytes()
    plain = tmp_path / "plain"
    plain.mkdir()
    result, _ = optimize(plain, pdf_bytes(pages=5), **{"PDF.OBJECT_STREAMS": "disable"})
    assert b"/ObjStm" not in result.outputs[0].read_bytes()


def test_unused_resources_removed(tmp_path: Path) -> None:
    """A font no page uses is dropped from the page resources."""
    pdf = pikepdf.open(io.BytesIO(pdf_bytes()))
    unused = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Courier
        )
    )
    pdf.pages[0].Resources.Font.F9 = unused
    source = tmp_path / "src.pdf"
    pdf.save(source)
    result, _ = optimize(tmp_path, source.read_bytes())
    with pikepdf.open(result.outputs[0]) as out:
        assert set(out.pages[0].Resources.Font.keys()) == {"/F1"}


def test_password_list_tried_in_order_and_encryption_kept(tmp_path: Path) -> None:
    """The second password opens the file; the output needs the same password."""
    result, _ = optimize(
        tmp_path, pdf_bytes(pages=2, password="letmein"), **{"DOC.PASSWORD": ["no", "letmein"]}
    )
    output = result.outputs[0]
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(output)
    with pikepdf.open(output, password="letmein") as pdf:
        assert pdf.is_encrypted and len(pdf.pages) == 2


def test_single_password_string_accepted(tmp_path: Path) -> None:
    """DOC.PASSWORD may be a plain string."""
    result, _ = optimize(tmp_path, pdf_bytes(password="pw"), **{"DOC.PASSWORD": "pw"})
    assert result.facts["files"][0]["password"] == "pw"


@pytest.mark.parametrize(
    ("data", "options", "code"),
    [
        (pdf_bytes(password="letmein"), {}, "password_required"),
        (pdf_bytes(password="letmein"), {"DOC.PASSWORD": ["a", "b"]}, "password_incorrect"),
        (b"%PDF-1.7\n" + os.urandom(4000), {}, "corrupt_input"),
        (pdf_bytes(pages=30)[:3000], {}, "corrupt_input"),
        (jpeg_bytes(), {}, "unsupported_format"),
        (b"plain text, named .pdf", {}, "unsupported_format"),
        (pdf_bytes(), {"PDF.OBJECT_STREAMS": "sometimes"}, "option_invalid"),
    ],
)
def test_failures_have_codes(
    tmp_path: Path, data: bytes, options: dict[str, Any], code: str
) -> None:
    """Each kind of bad input fails with its own code."""
    assert failure_code(tmp_path, data, **options) == code


def test_repair_option_accepts_truncated_file_with_warnings(tmp_path: Path) -> None:
    """With PDF.REPAIR the repaired file is written and the repairs are warned about."""
    data = pdf_bytes(pages=4)
    cut = data[: data.rindex(b"xref")]
    result, ctx = optimize(tmp_path, cut, **{"PDF.REPAIR": True})
    assert len(text_of(result.outputs[0])) == 4
    assert any(w.startswith("repaired: ") for w in ctx.warnings)


def damaged_xref(data: bytes) -> bytes:
    """``data`` with its cross-reference table gone but its end intact, as viewers open it."""
    start = data.rindex(b"xref")
    return data[:start] + b"startxref\n999\n%%EOF\n"


def test_a_complete_file_with_a_broken_xref_table_is_repaired_by_default(tmp_path) -> None:
    result, ctx = optimize(tmp_path, damaged_xref(pdf_bytes(pages=3)))
    assert len(text_of(result.outputs[0])) == 3
    assert any(w.startswith("repaired: ") and "xref" in w for w in ctx.warnings)


def test_repair_policies_refuse_truncated_files_unless_true_and_everything_when_false(
    tmp_path,
) -> None:
    data = pdf_bytes(pages=4)
    cut = data[: data.rindex(b"xref")]  # no trailer, no %%EOF: half copied
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert failure_code(tmp_path / "a", cut) == "corrupt_input"
    strict = {"PDF.REPAIR": False}
    assert failure_code(tmp_path / "b", damaged_xref(data), **strict) == "corrupt_input"


def test_a_repair_that_loses_text_is_refused(tmp_path) -> None:
    from hotfolder.errors import ToolFailed
    from hotfolder.workflows.repair import check_repaired_text

    source = tmp_path / "four.pdf"
    source.write_bytes(pdf_bytes(pages=4))
    shorter = tmp_path / "three.pdf"
    shorter.write_bytes(pdf_bytes(pages=3))
    with pytest.raises(ToolFailed):
        check_repaired_text(source, shorter, "")
    check_repaired_text(source, source, "")


def test_password_never_in_message(tmp_path: Path) -> None:
    """A wrong password is not echoed back into the status message."""
    with pytest.raises(HotfolderError) as caught:
        optimize(tmp_path, pdf_bytes(password="x"), **{"DOC.PASSWORD": ["hunter2"]})
    assert "hunter2" not in caught.value.message


def test_engine_versions() -> None:
    """The probed versions name pikepdf and qpdf."""
    versions = engine_versions()
    assert versions["pikepdf"] == pikepdf.__version__
    assert versions["qpdf"][0].isdigit()


# --- image recompression ----------------------------------------------------------


def photo(width: int = 1200, height: int = 900) -> Image.Image:
    """A noisy gradient: compresses like a photograph, not like flat colour."""
    gradient = Image.linear_gradient("L").resize((width, height))
    channels = [
        Image.blend(base, Image.effect_noise((width, height), 50), 0.3)
        for base in (
            gradient,
            gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            gradient.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        )
    ]
    return Image.merge("RGB", channels)


def image_stream(pdf: pikepdf.Pdf, image: Image.Image, kind: str, **extra: Any) -> pikepdf.Object:
    """An image XObject holding ``image`` as JPEG (kind "jpeg") or Flate."""
    if kind == "jpeg":
        out = io.BytesIO()
        image.save(out, "JPEG", quality=95)
        data, filter_ = out.getvalue(), pikepdf.Name.DCTDecode
    else:
        data, filter_ = zlib.compress(image.tobytes()), pikepdf.Name.FlateDecode
    space = pikepdf.Name.DeviceRGB if image.mode == "RGB" else pikepdf.Name.DeviceGray
    return pdf.make_stream(
        data,
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=image.width,
        Height=image.height,
        ColorSpace=space,
        BitsPerComponent=8,
        Filter=filter_,
        **extra,
    )


def picture_pdf(images: dict[str, pikepdf.Object] | None = None, *, kind: str = "jpeg") -> bytes:
    """One page with a caption and images, each drawn 400 x 300 pt (a 1200 px photo: 216 dpi)."""
    pdf = pikepdf.open(io.BytesIO(pdf_bytes(text="Caption")))
    page = pdf.pages[0]
    if images is None:
        images = {"Im0": image_stream(pdf, photo(), kind)}
    else:
        images = {name: pdf.copy_foreign(obj) for name, obj in images.items()}
    page.Resources.XObject = pikepdf.Dictionary({f"/{n}": obj for n, obj in images.items()})
    draws = b"".join(
        f"q 400 0 0 300 100 {100 + i} cm /{n} Do Q ".encode() for i, n in enumerate(images)
    )
    page.Contents = pdf.make_stream(page.Contents.read_bytes() + b" " + draws)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def only_image(path: Path) -> tuple[tuple[int, int], str, bytes]:
    """Pixel size, filter and raw bytes of the one image of page 1."""
    with pikepdf.open(path) as pdf:
        (image,) = pdf.pages[0].Resources.XObject.values()
        return (int(image.Width), int(image.Height)), str(image.Filter), image.read_raw_bytes()


def pdfium_images(path: Path) -> int:
    document = pypdfium2.PdfDocument(path)
    try:
        return len(list(document[0].get_objects(filter=[pypdfium2.raw.FPDF_PAGEOBJ_IMAGE])))
    finally:
        document.close()


@pytest.mark.parametrize("kind", ["jpeg", "flate"])
def test_smallest_recompresses_and_downsamples_photos(tmp_path: Path, kind: str) -> None:
    """A 216 dpi photo shrinks to 150 dpi JPEG; pages, images and text stay."""
    data = picture_pdf(kind=kind)
    source_image = only_image(_write(tmp_path / "src.pdf", data))
    result, _ = optimize(tmp_path, data, "smallest")
    output = result.outputs[0]
    size, filter_, raw = only_image(output)
    assert size == (833, 625)  # 1200 px over 400 pt (5.56 in) at 150 dpi
    assert filter_ == "/DCTDecode"
    assert len(raw) < len(source_image[2]) / 3
    assert output.stat().st_size < len(data) / 3
    assert [t.strip() for t in text_of(output)] == ["Caption page 1"]
    assert pdfium_images(output) == 1
    assert "Recompressed 1 of 1 image(s)" in result.message
    with Image.open(io.BytesIO(raw)) as decoded:
        assert decoded.size == (833, 625) and decoded.mode == "RGB"


@pytest.mark.parametrize("kind", ["jpeg", "flate"])
def test_default_profile_leaves_image_bytes_alone(tmp_path: Path, kind: str) -> None:
    """Without image options the image keeps its pixels and (for JPEG) its exact bytes."""
    data = picture_pdf(kind=kind)
    size, filter_, raw = only_image(_write(tmp_path / "src.pdf", data))
    result, _ = optimize(tmp_path, data)
    after = only_image(result.outputs[0])
    assert after[:2] == (size, filter_)
    if kind == "jpeg":
        assert after[2] == raw
    assert "Recompressed" not in result.message


def test_quality_alone_keeps_pixel_size(tmp_path: Path) -> None:
    """PDF.IMAGE_QUALITY without a resolution limit re-encodes at full size."""
    result, _ = optimize(tmp_path, picture_pdf(kind="flate"), **{"PDF.IMAGE_QUALITY": 60})
    size, filter_, _raw = only_image(result.outputs[0])
    assert (size, filter_) == ((1200, 900), "/DCTDecode")


def test_max_dpi_alone_stays_lossless(tmp_path: Path) -> None:
    """PDF.IMAGE_MAX_DPI with quality 0 downsamples a Flate image and keeps it Flate."""
    result, _ = optimize(tmp_path, picture_pdf(kind="flate"), **{"PDF.IMAGE_MAX_DPI": 100})
    size, filter_, _raw = only_image(result.outputs[0])
    assert (size, filter_) == ((556, 417), "/FlateDecode")


def test_line_art_and_masked_images_are_not_made_jpeg(tmp_path: Path) -> None:
    """Few-colour Flate images stay lossless; images with a soft mask are left alone."""
    holder = pikepdf.new()
    chart = Image.new("RGB", (1200, 900), "white")
    chart.paste((200, 30, 30), (100, 100, 600, 800))
    mask = image_stream(holder, Image.new("L", (1200, 900), 128), "flate")
    images = {
        "Chart": image_stream(holder, chart, "flate"),
        "Masked": image_stream(holder, photo(), "jpeg", SMask=mask),
    }
    data = picture_pdf(images)
    masked_bytes = images["Masked"].read_raw_bytes()
    result, _ = optimize(tmp_path, data, "smallest")
    with pikepdf.open(result.outputs[0]) as pdf:
        xobjects = pdf.pages[0].Resources.XObject
        assert str(xobjects.Chart.Filter) == "/FlateDecode"
        assert int(xobjects.Chart.Width) == 833  # downsampled, still lossless
        assert xobjects.Masked.read_raw_bytes() == masked_bytes
    assert pdfium_images(result.outputs[0]) == 2


def test_resolution_counts_form_xobject_scaling(tmp_path: Path) -> None:
    """An image drawn through a form XObject is judged at its final size on the page."""
    pdf = pikepdf.open(io.BytesIO(pdf_bytes(text="Form")))
    image = image_stream(pdf, photo(), "jpeg")
    # The form scales by 4: the 400 x 300 pt placement inside it is 1600 x 1200 pt, 54 dpi.
    form = pdf.make_stream(
        b"q 400 0 0 300 0 0 cm /Im0 Do Q",
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Form,
        BBox=[0, 0, 400, 300],
        Matrix=[4, 0, 0, 4, 0, 0],
        Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image)),
    )
    page = pdf.pages[0]
    page.Resources.XObject = pikepdf.Dictionary(Fm0=form)
    page.Contents = pdf.make_stream(
        page.Contents.read_bytes() + b" q 0.25 0 0 0.25 0 0 cm /Fm0 Do Q"
    )
    # ...but the page scales the form back by 1/4: 400 x 300 pt again, 216 dpi.
    out = io.BytesIO()
    pdf.save(out)
    result, _ = optimize(
        tmp_path, out.getvalue(), **{"PDF.IMAGE_MAX_DPI": 150, "PDF.IMAGE_QUALITY": 80}
    )
    with pikepdf.open(result.outputs[0]) as done:
        inner = done.pages[0].Resources.XObject.Fm0.Resources.XObject.Im0
        assert int(inner.Width) == 833


def test_image_drawn_twice_keeps_resolution_for_the_larger_drawing(tmp_path: Path) -> None:
    """Shared images are downsampled only as far as their largest placement allows."""
    pdf = pikepdf.open(io.BytesIO(picture_pdf()))
    page = pdf.pages[0]
    # The same photo again, full page width (612 pt): 1200 px there is 141 dpi.
    page.Contents = pdf.make_stream(page.Contents.read_bytes() + b" q 612 0 0 459 0 0 cm /Im0 Do Q")
    out = io.BytesIO()
    pdf.save(out)
    result, _ = optimize(tmp_path, out.getvalue(), "smallest")
    assert only_image(result.outputs[0])[0] == (1200, 900)
    assert pdfium_images(result.outputs[0]) == 2


def test_damaged_content_blocks_downsampling_only(tmp_path: Path) -> None:
    """A malformed matrix makes sizes unknowable: no downsampling, a warning, still JPEG."""
    pdf = pikepdf.open(io.BytesIO(picture_pdf(kind="flate")))
    page = pdf.pages[0]
    page.Contents = pdf.make_stream(page.Contents.read_bytes() + b" q null 0 0 1 0 0 cm Q")
    out = io.BytesIO()
    pdf.save(out)
    result, ctx = optimize(tmp_path, out.getvalue(), "smallest")
    size, filter_, _raw = only_image(result.outputs[0])
    assert (size, filter_) == ((1200, 900), "/DCTDecode")
    assert any("not downsampled" in w and "malformed matrix" in w for w in ctx.warnings)


@pytest.mark.parametrize(
    "options",
    [{"PDF.IMAGE_QUALITY": 101}, {"PDF.IMAGE_QUALITY": -1}, {"PDF.IMAGE_MAX_DPI": 10}],
)
def test_image_options_validated(options: dict[str, Any]) -> None:
    """Out-of-range quality and absurdly low resolutions are refused at config load."""
    with pytest.raises(OptionInvalid, match=next(iter(options))):
        PDF_OPTIMIZE.resolve_options("default", options)


def test_protected_input_recompressed_and_still_protected(tmp_path: Path) -> None:
    """Images of an encrypted file shrink too; the output keeps its password."""
    pdf = pikepdf.open(io.BytesIO(picture_pdf()))
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(owner="o", user="u", R=6))
    result, _ = optimize(tmp_path, out.getvalue(), "smallest", **{"DOC.PASSWORD": "u"})
    with pikepdf.open(result.outputs[0], password="u") as done:
        assert done.is_encrypted
        assert int(next(iter(done.pages[0].Resources.XObject.values())).Width) == 833


def test_several_inputs_each_optimized_under_their_own_name(tmp_path: Path) -> None:
    """A step that receives several files (after a split) writes one output per file."""
    sources = [tmp_path / "report-p001.pdf", tmp_path / "report-p002.pdf"]
    for number, source in enumerate(sources, start=1):
        source.write_bytes(pdf_bytes(text=f"Part {number}"))
    out = tmp_path / "out"
    out.mkdir()
    ctx = StepContext(
        "job", "report", PDF_OPTIMIZE.resolve_options("default", {}), logging.getLogger("t")
    )
    (step,) = PDF_OPTIMIZE.steps
    result = step.run(sources, out, ctx)
    step.verify(sources, result, ctx)
    assert [p.name for p in result.outputs] == ["report-p001.pdf", "report-p002.pdf"]
    assert [text_of(p)[0].strip() for p in result.outputs] == ["Part 1 page 1", "Part 2 page 1"]
    assert "2 files, 2 page(s)" in result.message


def test_image_check_refuses_an_output_that_lost_an_image(tmp_path: Path) -> None:
    """The pdfium check behind verify fails when a page draws fewer images than before."""
    source = _write(tmp_path / "with.pdf", picture_pdf())
    output = _write(tmp_path / "without.pdf", pdf_bytes(text="Caption"))
    with pytest.raises(ToolFailed, match="page"):
        check_images(source, output, "")
    check_images(source, source, "")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_names_that_are_not_utf8_open_and_save(tmp_path: Path) -> None:
    """A Latin-1 name (bytes that are not UTF-8) is optimized and named like any other.

    pikepdf.open refuses such a path (TypeError); the step opens the file itself.
    """
    name = os.fsdecode(b"M\xe4rz")
    source = tmp_path / f"{name}.pdf"
    source.write_bytes(pdf_bytes(pages=2))
    out = tmp_path / "out"
    out.mkdir()
    options = PDF_OPTIMIZE.resolve_options("web", {})  # web: verify reopens with pikepdf
    ctx = StepContext("job", name, options, logging.getLogger("t"))
    (step,) = PDF_OPTIMIZE.steps
    result = step.run([source], out, ctx)
    step.verify([source], result, ctx)
    assert [p.name for p in result.outputs] == [f"{name}.pdf"]
    assert len(text_of(result.outputs[0])) == 2
    damaged = tmp_path / f"{name}-cut.pdf"
    damaged.write_bytes(pdf_bytes(pages=30)[:3000])
    with pytest.raises(HotfolderError) as caught:
        step.run([damaged], out, ctx)
    assert caught.value.code == "corrupt_input"
    assert str(tmp_path) not in caught.value.message  # the work-area path is cut away


def test_qpdf_runtime_error_is_corrupt_input_not_internal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """qpdf throws QpdfRuntimeError (not a PdfError) for some damaged page trees, e.g.
    "/Count is wrong after flattening pages tree" from a fuzzed file: corrupt_input."""

    def damaged(*args: Any, **kwargs: Any) -> pikepdf.Pdf:
        raise pikepdf.QpdfRuntimeError("/Count is wrong after flattening pages tree")

    monkeypatch.setattr(pikepdf, "open", damaged)
    assert failure_code(tmp_path, pdf_bytes()) == "corrupt_input"
