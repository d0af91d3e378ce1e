"""image-convert on real Pillow: sizes, modes, orientation, metadata and limits."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from PIL import ExifTags, Image

from hotfolder.errors import HotfolderError
from hotfolder.workflows.base import StepContext, StepResult
from hotfolder.workflows.image import IMAGE_CONVERT, engine_versions
from tests.samples import jpeg_bytes, pdf_bytes, png_bytes


def convert(
    tmp_path: Path, data: bytes, profile: str = "default", **options: Any
) -> tuple[StepResult, StepContext]:
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    ctx = StepContext(
        "job", "photo", IMAGE_CONVERT.resolve_options(profile, options), logging.getLogger("t")
    )
    (step,) = IMAGE_CONVERT.steps
    result = step.run([source], out, ctx)
    step.verify([source], result, ctx)
    return result, ctx


def encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def exif_photo(orientation: int) -> bytes:
    """A 40x20 JPEG, left half red, with an EXIF Orientation tag and a camera model."""
    image = Image.new("RGB", (40, 20), "blue")
    image.paste("red", (0, 0, 20, 20))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Model] = "TestCam"
    return encode(image, "JPEG", exif=exif, quality=95)


@pytest.mark.parametrize(
    ("fmt", "suffix", "pil"),
    [
        ("png", ".png", "PNG"),
        ("jpeg", ".jpg", "JPEG"),
        ("tiff", ".tif", "TIFF"),
        ("webp", ".webp", "WEBP"),
    ],
)
def test_each_target_format(tmp_path: Path, fmt: str, suffix: str, pil: str) -> None:
    """Every target format is written with its suffix and decodes at the same size."""
    result, _ = convert(tmp_path, png_bytes(30, 20), **{"IMAGE.FORMAT": fmt})
    (output,) = result.outputs
    assert output.name == f"photo{suffix}"
    with Image.open(output) as image:
        assert (image.format, image.size) == (pil, (30, 20))


def test_max_size_keeps_aspect_ratio(tmp_path: Path) -> None:
    """An 400x200 image limited to 100 wide becomes 100x50."""
    result, _ = convert(tmp_path, jpeg_bytes(400, 200), **{"IMAGE.MAX_WIDTH": 100})
    with Image.open(result.outputs[0]) as image:
        assert image.size == (100, 50)


def test_small_images_are_not_enlarged(tmp_path: Path) -> None:
    """Limits only shrink."""
    result, _ = convert(tmp_path, jpeg_bytes(40, 30), **{"IMAGE.MAX_WIDTH": 1000})
    with Image.open(result.outputs[0]) as image:
        assert image.size == (40, 30)


def test_exif_orientation_applied_and_tag_reset(tmp_path: Path) -> None:
    """Orientation 6 (rotate 90 CW) turns 40x20 into 20x40; the kept tag says upright."""
    result, _ = convert(tmp_path, exif_photo(6), **{"IMAGE.FORMAT": "jpeg"})
    with Image.open(result.outputs[0]) as image:
        assert image.size == (20, 40)
        exif = image.getexif()
        assert exif[ExifTags.Base.Orientation] == 1
        assert exif[ExifTags.Base.Model] == "TestCam"
        # Rotated clockwise: the red left half is now on top.
        top = image.convert("RGB").getpixel((10, 5))
        assert isinstance(top, tuple) and top[0] > 200 and top[2] < 60


def test_metadata_stripped(tmp_path: Path) -> None:
    """IMAGE.METADATA = strip drops EXIF but keeps the orientation applied."""
    result, _ = convert(
        tmp_path, exif_photo(6), **{"IMAGE.FORMAT": "jpeg", "IMAGE.METADATA": "strip"}
    )
    with Image.open(result.outputs[0]) as image:
        assert image.size == (20, 40)
        assert not image.getexif()


def test_alpha_flattened_for_jpeg_and_kept_for_png(tmp_path: Path) -> None:
    """RGBA to JPEG is flattened on white; to PNG it keeps its alpha."""
    rgba = encode(Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "PNG")
    result, _ = convert(tmp_path, rgba, **{"IMAGE.FORMAT": "jpeg"})
    with Image.open(result.outputs[0]) as image:
        assert image.mode == "RGB"
        pixel = image.getpixel((4, 4))
        assert isinstance(pixel, tuple) and min(pixel) > 240
    result, _ = convert(tmp_path, rgba, **{"IMAGE.FORMAT": "png"})
    with Image.open(result.outputs[0]) as image:
        assert image.mode == "RGBA"


def test_sixteen_bit_grey_png_kept(tmp_path: Path) -> None:
    """A 16-bit greyscale image survives a PNG round trip as 16-bit."""
    data = encode(Image.new("I;16", (10, 10), 40000), "PNG")
    result, _ = convert(tmp_path, data, **{"IMAGE.FORMAT": "png"})
    with Image.open(result.outputs[0]) as image:
        assert image.mode in ("I;16", "I") and image.getpixel((1, 1)) == 40000


def test_animated_gif_first_frame_with_warning(tmp_path: Path) -> None:
    """Only the first frame is converted and the status says so."""
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "green", "blue")]
    data = io.BytesIO()
    frames[0].save(data, "GIF", save_all=True, append_images=frames[1:])
    _result, ctx = convert(tmp_path, data.getvalue())
    assert any("3 frames" in w for w in ctx.warnings)


@pytest.mark.parametrize(
    ("data", "options", "code"),
    [
        (jpeg_bytes(200, 200)[:400], {}, "corrupt_input"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, {}, "corrupt_input"),
        (pdf_bytes(), {}, "unsupported_format"),
        (b"just some text", {}, "unsupported_format"),
        (png_bytes(32, 32), {"IMAGE.MAX_PIXELS": 1000}, "too_large"),
        (png_bytes(), {"IMAGE.QUALITY": 0}, "option_invalid"),
    ],
)
def test_failures_have_codes(
    tmp_path: Path, data: bytes, options: dict[str, Any], code: str
) -> None:
    """Each kind of bad input fails with its own code."""
    with pytest.raises(HotfolderError) as caught:
        convert(tmp_path, data, **options)
    assert caught.value.code == code


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    """A tiny PNG claiming 30000x30000 pixels is too_large, not a memory blow-up."""
    bomb = encode(Image.new("1", (30000, 30000)), "PNG")
    assert len(bomb) < 200_000
    with pytest.raises(HotfolderError) as caught:
        convert(tmp_path, bomb)
    assert caught.value.code == "too_large"
    assert "900,000,000 pixels" in caught.value.message


def test_engine_versions() -> None:
    """Pillow's version is reported."""
    assert engine_versions()["Pillow"][0].isdigit()


def test_thumbnail_written_next_to_the_main_output(tmp_path: Path) -> None:
    """IMAGE.THUMBNAIL = 10 adds photo-thumb.jpg fitting 10x10, upright like the main one."""
    result, _ = convert(tmp_path, exif_photo(6), **{"IMAGE.FORMAT": "jpeg", "IMAGE.THUMBNAIL": 10})
    assert [p.name for p in result.outputs] == ["photo.jpg", "photo-thumb.jpg"]
    with Image.open(result.outputs[0]) as main, Image.open(result.outputs[1]) as thumb:
        assert main.size == (20, 40)
        assert (thumb.format, thumb.size) == ("JPEG", (5, 10))
    assert "Thumbnail 5x10" in result.message


def test_thumbnail_made_from_full_size_not_the_shrunk_copy(tmp_path: Path) -> None:
    """The main output obeys IMAGE.MAX_WIDTH; the thumbnail only its own edge."""
    result, _ = convert(
        tmp_path, png_bytes(400, 200), **{"IMAGE.MAX_WIDTH": 50, "IMAGE.THUMBNAIL": 120}
    )
    sizes = []
    for output in result.outputs:
        with Image.open(output) as image:
            sizes.append(image.size)
    assert sizes == [(50, 25), (120, 60)]


def test_thumbnail_profile(tmp_path: Path) -> None:
    """The thumbnail profile's one output is a JPEG within 256x256 without EXIF."""
    result, _ = convert(tmp_path, jpeg_bytes(1000, 500), "thumbnail")
    (output,) = result.outputs
    with Image.open(output) as image:
        assert (output.name, image.format, image.size) == ("photo.jpg", "JPEG", (256, 128))
        assert not image.getexif()


def test_several_inputs_each_converted(tmp_path: Path) -> None:
    """A step fed several images (from an earlier step) converts each under its own stem."""
    sources = []
    for name, data in (("a.png", png_bytes(20, 10)), ("b.jpg", jpeg_bytes(30, 10))):
        sources.append(tmp_path / name)
        sources[-1].write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    options = IMAGE_CONVERT.resolve_options("default", {"IMAGE.THUMBNAIL": 5})
    ctx = StepContext("job", "photo", options, logging.getLogger("t"))
    (step,) = IMAGE_CONVERT.steps
    result = step.run(sources, out, ctx)
    step.verify(sources, result, ctx)
    assert [p.name for p in result.outputs] == ["a.png", "a-thumb.png", "b.png", "b-thumb.png"]
    assert "2 images" in result.message


def test_verify_catches_a_wrong_thumbnail(tmp_path: Path) -> None:
    """A thumbnail that is not what was written fails the job with tool_failed."""
    result, ctx = convert(tmp_path, png_bytes(40, 40), **{"IMAGE.THUMBNAIL": 10})
    result.outputs[1].write_bytes(png_bytes(12, 12))
    (step,) = IMAGE_CONVERT.steps
    with pytest.raises(HotfolderError) as caught:
        step.verify([], result, ctx)
    assert caught.value.code == "tool_failed"


def test_damage_message_names_the_file_not_the_work_area(tmp_path: Path) -> None:
    """Pillow puts the absolute path in its message; the status shows the file's name."""
    header_only = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50
    with pytest.raises(HotfolderError) as caught:
        convert(tmp_path, header_only)
    assert caught.value.code == "corrupt_input"
    assert str(tmp_path) not in caught.value.message and "in.bin" in caught.value.message


def test_full_disk_while_saving_is_an_io_error_not_a_damaged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError with an errno is the system's fault: it reaches the runner (io_error,
    retried) instead of blaming the input with corrupt_input."""

    def disk_full(self: Image.Image, *args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError) as caught:
        convert(tmp_path, png_bytes())
    assert not isinstance(caught.value, HotfolderError) and caught.value.errno == 28
