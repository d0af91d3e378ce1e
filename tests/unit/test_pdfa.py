"""pdf-archive on real pikepdf and Ghostscript: validity checked independently, text compared."""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pikepdf
import pikepdf.pdfa
import pytest
from PIL import Image

from hotfolder import tools
from hotfolder.errors import HotfolderError
from hotfolder.workflows import ghostscript
from hotfolder.workflows.base import StepContext, StepResult
from hotfolder.workflows.pdfa import (
    PDF_ARCHIVE,
    engine_versions,
    normalize_text,
    page_texts,
    pages_that_lost_text,
    text_similarity,
)
from tests.samples import jpeg_bytes, pdf_bytes

STEP = PDF_ARCHIVE.steps[0]


def archive(
    tmp_path: Path, data: bytes | list[bytes], profile: str = "default", **options: Any
) -> tuple[StepResult, StepContext]:
    sources = []
    for index, content in enumerate(data if isinstance(data, list) else [data]):
        source = tmp_path / f"in{index}.pdf"
        source.write_bytes(content)
        sources.append(source)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    ctx = StepContext(
        "job", "archive", PDF_ARCHIVE.resolve_options(profile, options), logging.getLogger("t")
    )
    result = STEP.run(sources, out, ctx)
    STEP.verify(sources, result, ctx)
    return result, ctx


def failure(tmp_path: Path, data: bytes, **options: Any) -> HotfolderError:
    with pytest.raises(HotfolderError) as caught:
        archive(tmp_path, data, **options)
    return caught.value


def image_pdf(password: str | None = None) -> bytes:
    """A scan-like PDF: one JPEG page and no fonts, so PDF/A needs no re-rendering."""
    out = io.BytesIO()
    with Image.open(io.BytesIO(jpeg_bytes(300, 200, "teal"))) as image:
        image.save(out, "PDF", resolution=100)
    if password is None:
        return out.getvalue()
    pdf = pikepdf.open(io.BytesIO(out.getvalue()))
    encrypted = io.BytesIO()
    pdf.save(encrypted, encryption=pikepdf.Encryption(owner="o-" + password, user=password, R=6))
    return encrypted.getvalue()


def image_streams(pdf: pikepdf.Pdf) -> list[bytes]:
    return [image.read_raw_bytes() for page in pdf.pages for image in page.get_images().values()]


def assert_pdfa(path: Path, part: str) -> None:
    """Independent of the step's own check: the validator passes it, nothing is encrypted."""
    report = pikepdf.pdfa.validate_written(path, part)
    assert report.passed, report.summary()
    with pikepdf.open(path) as pdf:
        assert not pdf.is_encrypted
        assert pdf.open_metadata().pdfa_status == part.upper()


def fonts_embedded(path: Path) -> bool:
    with pikepdf.open(path) as pdf:
        fonts = [font for page in pdf.pages for font in page.Resources.Font.values()]
        return bool(fonts) and all(
            any(key in font.FontDescriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))
            for font in fonts
        )


def test_image_only_pdf_takes_lossless_path(tmp_path: Path) -> None:
    """A scan PDF becomes PDF/A-2b through pikepdf with its image bytes untouched."""
    data = image_pdf()
    result, _ = archive(tmp_path, data)
    (output,) = result.outputs
    assert output.name == "archive.pdf"
    assert result.message == "PDF/A-2b written by pikepdf (lossless), validated."
    assert result.facts["files"][0]["engine"] == "pikepdf"
    assert_pdfa(output, "2b")
    with pikepdf.open(io.BytesIO(data)) as before, pikepdf.open(output) as after:
        assert image_streams(after) == image_streams(before)
    assert sorted(p.name for p in output.parent.iterdir()) == ["archive.pdf"]


def test_unembedded_font_goes_through_ghostscript(tmp_path: Path) -> None:
    """Helvetica without a font file is re-rendered: fonts embedded, text unchanged."""
    result, _ = archive(tmp_path, pdf_bytes(pages=2, text="Quarterly"))
    (output,) = result.outputs
    assert result.facts["files"][0]["engine"] == "ghostscript"
    assert result.message.startswith(f"PDF/A-2b written by Ghostscript {ghostscript.version()}")
    assert "text checked on 2 page(s)" in result.message
    assert_pdfa(output, "2b")
    assert fonts_embedded(output)
    assert [t.strip() for t in page_texts(output)] == ["Quarterly page 1", "Quarterly page 2"]
    # The decrypted copy and the definition file are gone; only the output remains.
    assert sorted(p.name for p in output.parent.iterdir()) == ["archive.pdf"]


@pytest.mark.parametrize(("profile", "part"), [("pdfa-1b", "1b"), ("pdfa-3b", "3b")])
def test_other_parts(tmp_path: Path, profile: str, part: str) -> None:
    """Profiles pdfa-1b and pdfa-3b write and validate those parts."""
    result, _ = archive(tmp_path, pdf_bytes(text="Part"), profile)
    (output,) = result.outputs
    assert result.message.startswith(f"PDF/A-{part} written by Ghostscript")
    assert_pdfa(output, part)
    assert page_texts(output)[0].strip() == "Part page 1"
    if part == "1b":
        with pikepdf.open(output) as pdf:
            assert pdf.pdf_version <= "1.4"


def test_part_option_on_lossless_path(tmp_path: Path) -> None:
    """PDFA.PART = 1b also works on the pikepdf path."""
    result, _ = archive(tmp_path, image_pdf(), **{"PDFA.PART": "1b"})
    assert result.message == "PDF/A-1b written by pikepdf (lossless), validated."
    assert_pdfa(result.outputs[0], "1b")
    with pikepdf.open(result.outputs[0]) as pdf:
        assert pdf.pdf_version <= "1.4"


@pytest.mark.parametrize(
    ("data", "engine"),
    [(pdf_bytes(pages=2, password="s3cret"), "ghostscript"), (image_pdf("s3cret"), "pikepdf")],
)
def test_encrypted_input_written_unencrypted(tmp_path: Path, data: bytes, engine: str) -> None:
    """DOC.PASSWORD opens the input; the PDF/A output opens without any password."""
    result, _ = archive(tmp_path, data, "default", **{"DOC.PASSWORD": ["wrong", "s3cret"]})
    (output,) = result.outputs
    assert result.facts["files"][0]["engine"] == engine
    assert_pdfa(output, "2b")
    with pikepdf.open(output) as pdf, pikepdf.open(io.BytesIO(data), password="s3cret") as src:
        assert len(pdf.pages) == len(src.pages)
    if engine == "ghostscript":
        assert [t.strip() for t in page_texts(output)] == [
            "Hello hotfolder page 1",
            "Hello hotfolder page 2",
        ]
    assert "s3cret" not in result.message


@pytest.mark.parametrize(
    ("options", "code"),
    [({}, "password_required"), ({"DOC.PASSWORD": "nope"}, "password_incorrect")],
)
def test_password_missing_or_wrong(tmp_path: Path, options: dict[str, Any], code: str) -> None:
    """A protected input without the right password fails with its code."""
    assert failure(tmp_path, pdf_bytes(password="s3cret"), **options).code == code


def test_forced_pikepdf_refuses_file_that_needs_fonts(tmp_path: Path) -> None:
    """PDFA.ENGINE = pikepdf (profile lossless) never re-renders: unembedded fonts fail clearly."""
    with pytest.raises(HotfolderError) as caught:
        archive(tmp_path, pdf_bytes(), "lossless")
    error = caught.value
    assert error.code == "unsupported_format"
    assert "not embedded" in error.message and "PDFA.ENGINE = auto" in error.message
    assert not (tmp_path / "out" / "archive.pdf").exists()


def test_forced_ghostscript_on_image_pdf(tmp_path: Path) -> None:
    """PDFA.ENGINE = ghostscript re-renders even a file pikepdf could keep."""
    result, _ = archive(tmp_path, image_pdf(), **{"PDFA.ENGINE": "ghostscript"})
    assert result.facts["files"][0]["engine"] == "ghostscript"
    assert_pdfa(result.outputs[0], "2b")
    with pikepdf.open(result.outputs[0]) as pdf:
        assert len(image_streams(pdf)) == 1


def test_links_survive_ghostscript(tmp_path: Path) -> None:
    """A /Link without the Print flag is kept (Ghostscript alone would delete it)."""
    pdf = pikepdf.open(io.BytesIO(pdf_bytes()))
    link = pikepdf.Dictionary(
        Type=pikepdf.Name.Annot,
        Subtype=pikepdf.Name.Link,
        Rect=[72, 700, 300, 730],
        A=pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String("https://example.org/")),
    )
    pdf.pages[0].obj.Annots = pdf.make_indirect(pikepdf.Array([pdf.make_indirect(link)]))
    data = io.BytesIO()
    pdf.save(data)
    result, ctx = archive(tmp_path, data.getvalue())
    with pikepdf.open(result.outputs[0]) as out:
        (annot,) = out.pages[0].Annots
        assert str(annot.A.URI) == "https://example.org/"
    assert ctx.warnings == []


@pytest.mark.parametrize("engine", ["pikepdf", "ghostscript"])
def test_hidden_annotation_removal_is_warned(tmp_path: Path, engine: str) -> None:
    """A hidden annotation PDF/A forbids is dropped, and the status says so."""
    pdf = pikepdf.open(io.BytesIO(image_pdf()))
    note = pikepdf.Dictionary(
        Type=pikepdf.Name.Annot,
        Subtype=pikepdf.Name.Text,
        Rect=[10, 10, 30, 30],
        Contents=pikepdf.String("secret note"),
        F=2,  # Hidden
    )
    pdf.pages[0].obj.Annots = pdf.make_indirect(pikepdf.Array([pdf.make_indirect(note)]))
    data = io.BytesIO()
    pdf.save(data)
    result, ctx = archive(tmp_path, data.getvalue(), **{"PDFA.ENGINE": engine})
    with pikepdf.open(result.outputs[0]) as out:
        assert len(out.pages[0].get("/Annots", [])) == 0
    assert ctx.warnings == [
        "in0.pdf: hidden annotations, which PDF/A forbids, were removed (1 Text)."
    ]


def test_several_inputs_each_converted(tmp_path: Path) -> None:
    """Each input gets its own output, named by its stem; the summary counts engines."""
    result, _ = archive(tmp_path, [image_pdf(), pdf_bytes()])
    assert [p.name for p in result.outputs] == ["in0.pdf", "in1.pdf"]
    assert result.message.startswith("2 files written as PDF/A-2b: 1 by pikepdf (lossless), 1 by")
    for output in result.outputs:
        assert_pdfa(output, "2b")


@pytest.mark.parametrize(
    ("data", "code"),
    [(jpeg_bytes(), "unsupported_format"), (b"%PDF-1.7\n" + b"\0" * 900, "corrupt_input")],
)
def test_bad_inputs(tmp_path: Path, data: bytes, code: str) -> None:
    """Not a PDF, or a damaged one, fails before any engine runs."""
    assert failure(tmp_path, data).code == code


# --- the text-loss guard ---------------------------------------------------------


def test_text_comparison_ignores_whitespace_and_ligatures() -> None:
    """Spacing and ligature changes from re-rendering are not text loss."""
    assert normalize_text("I nvoi ce\r\n  12 ") == "Invoice12"
    assert text_similarity("Invoice number 12345", "I nvoi ce number 12345") == 1.0
    assert text_similarity("ﬁne", "fine") == 1.0
    assert pages_that_lost_text(["Total due\n", "", "Page 3"], ["Total  due", "", "Page 3"]) == []


def test_text_comparison_finds_lost_and_garbled_pages() -> None:
    """A page that lost, garbled or dropped its text is reported by number."""
    before = ["Quarterly report", "Revenue 1234", "Costs", "Kept text", "Header"]
    after = ["Quarterly report", "", "Çøśţş", "Kept text"]  # page 5 missing entirely
    assert pages_that_lost_text(before, after) == [2, 3, 5]
    # One changed letter in a long page is "nearly the same"; half the page is not.
    long = "The quick brown fox jumps over the lazy dog " * 3
    assert pages_that_lost_text([long], [long.replace("q", "g", 1)]) == []
    assert pages_that_lost_text([long], [long[: len(long) // 2]]) == [1]
    # A page without text before is not judged.
    assert pages_that_lost_text(["", "\n"], ["anything", ""]) == []


def test_guard_refuses_ghostscript_output_that_lost_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid PDF/A from Ghostscript whose text changed is not published (known gs bug)."""
    real = ghostscript.convert_to_pdfa

    def mangling(source: Path, target: Path, part: int, **kwargs: Any) -> list[str]:
        # Real Ghostscript, real PDF/A, but from a document whose text is garbled,
        # as Ghostscript 10.0.0-10.02.0 do to some inputs.
        garbled = source.with_name("garbled.pdf")
        garbled.write_bytes(pdf_bytes(pages=2, text="Qxzvjkwq"))
        return real(garbled, target, part, **kwargs)

    monkeypatch.setattr(ghostscript, "convert_to_pdfa", mangling)
    monkeypatch.setattr(ghostscript, "version", lambda: "10.00.0")
    error = failure(tmp_path, pdf_bytes(pages=2, text="Quarterly"))
    assert error.code == "tool_failed"
    assert "known to corrupt existing text" in error.message
    assert "page(s) 1, 2 lost text" in error.message
    assert "Upgrade Ghostscript" in error.message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_invalid_ghostscript_output_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine output that does not validate fails the job, listing the violations."""

    def no_pdfa(source: Path, target: Path, part: int, **kwargs: Any) -> list[str]:
        shutil.copyfile(source, target)  # plain PDF, claims nothing
        return []

    monkeypatch.setattr(ghostscript, "convert_to_pdfa", no_pdfa)
    error = failure(tmp_path, pdf_bytes())
    assert error.code == "tool_failed"
    assert "not valid PDF/A-2b" in error.message and "ISO_19005_2" in error.message


def test_verify_rejects_output_that_is_not_pdfa(tmp_path: Path) -> None:
    """verify validates on its own: a plain PDF handed to it fails with tool_failed."""
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(image_pdf())
    ctx = StepContext(
        "job", "x", PDF_ARCHIVE.resolve_options("default", {}), logging.getLogger("t")
    )
    facts = {"files": [{"engine": "pikepdf", "pages": 1, "text": [""]}]}
    with pytest.raises(HotfolderError) as caught:
        STEP.verify([plain], StepResult([plain], "", facts), ctx)
    assert caught.value.code == "tool_failed"


def test_ghostscript_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gs on PATH a file that needs it fails with tool_missing and the apt hint."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    error = failure(tmp_path, pdf_bytes())
    assert error.code == "tool_missing"
    assert "apt-get install ghostscript" in error.message


def test_ghostscript_timeout_names_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ghostscript that hangs is stopped after PDFA.GS_TIMEOUT; the message says so."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hanging = bin_dir / "gs"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    error = failure(tmp_path, pdf_bytes(), **{"PDFA.GS_TIMEOUT": 1})
    assert error.code == "timeout"
    assert "PDFA.GS_TIMEOUT" in error.message


# --- Ghostscript helpers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "bad"),
    [
        ("9.56.1", False),
        ("10.00.0", True),
        ("10.0.0", True),
        ("10.01.2", True),
        ("10.02.0", True),
        ("10.02.1", False),
        ("10.05.1", False),
        ("missing", False),
    ],
)
def test_text_corrupting_releases(version: str, bad: bool) -> None:
    """10.0.0 through 10.02.0 are flagged, nothing else."""
    assert ghostscript.is_text_corrupting(version) is bad


def test_srgb_profile_found_across_layouts(tmp_path: Path) -> None:
    """The newest versioned iccprofiles directory wins; pikepdf's profile is the fallback."""
    for version in ("9.56.1", "10.02.1"):
        folder = tmp_path / "ghostscript" / version / "iccprofiles"
        folder.mkdir(parents=True)
        (folder / "srgb.icc").write_bytes(b"icc")
    found = ghostscript.find_srgb_profile(None, roots=[tmp_path])
    assert found == (tmp_path / "ghostscript/10.02.1/iccprofiles/srgb.icc").resolve()
    fallback = ghostscript.find_srgb_profile(None, roots=[tmp_path / "nothing"])
    assert fallback.name == "sRGB.icc" and fallback.is_file()
    installed = ghostscript.find_srgb_profile(tools.find("gs", package="ghostscript"))
    assert installed.is_file() and installed.read_bytes()[36:40] == b"acsp"


def test_definition_and_command_line(tmp_path: Path) -> None:
    """The definition file escapes the profile path; gs runs sandboxed with read permission."""
    profile = tmp_path / "odd (name)" / "srgb.icc"
    definition = ghostscript.write_definition(tmp_path / "def.ps", profile)
    text = definition.read_text()
    assert "(" + str(profile).replace("(", "\\(").replace(")", "\\)") + ")" in text
    assert "/OutputIntents" in text and "/GTS_PDFA1" in text
    argv = ghostscript.pdfa_argv("gs", 2, profile, definition, Path("/i.pdf"), Path("/o.pdf"))
    for flag in ("-dSAFER", "-dBATCH", "-dNOPAUSE", "-dPDFA=2", f"--permit-file-read={profile}"):
        assert flag in argv
    assert argv[-2:] == [str(definition), "/i.pdf"]


def test_engine_versions() -> None:
    """Ghostscript's version is probed with gs --version."""
    versions = engine_versions()
    assert versions["ghostscript"] == tools.version("gs", "--version")
    assert versions["ghostscript"][0].isdigit()
    assert versions["pikepdf"] == pikepdf.__version__


@pytest.mark.parametrize("part", ["1b", "2b"])
def test_ghostscript_warnings_are_about_this_output(tmp_path: Path, part: str) -> None:
    """No "for PDF/A1" on a PDF/A-2b job; lost document information is named as it is.

    Ghostscript 10.0 says "Text string detected in DOCINFO cannot be represented in XMP
    for PDF/A1, discarding DOCINFO" for every part, and drops only some entries.
    """
    with pikepdf.open(io.BytesIO(pdf_bytes(pages=1))) as pdf:
        pdf.docinfo["/Title"] = "Rapport März €"  # not PDFDocEncoding: a UTF-16 string
        pdf.docinfo["/Author"] = "Ann"
        buffer = io.BytesIO()
        pdf.save(buffer)
    result, ctx = archive(
        tmp_path, buffer.getvalue(), **{"PDFA.ENGINE": "ghostscript", "PDFA.PART": part}
    )
    assert not [w for w in ctx.warnings if "PDF/A1" in w or "PDF/A-1" in w]
    assert not [w for w in ctx.warnings if "DOCINFO" in w]
    with pikepdf.open(result.outputs[0]) as made:
        lost = [key for key in ("Title", "Author") if f"/{key}" not in made.docinfo]
    named = [w for w in ctx.warnings if "dropped document information" in w]
    if lost:
        assert len(named) == 1 and all(key in named[0] for key in lost), ctx.warnings
    else:
        assert named == []
