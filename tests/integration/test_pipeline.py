"""Every built-in workflow through the real daemon and through `hotfolder convert`.

Content is checked, not only existence: page counts, text, PDF/A validation,
passwords enforced, image sizes. One daemon serves every folder so that the
engines start once.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pikepdf
import pikepdf.pdfa
import pypdfium2
import pytest
from PIL import Image

from tests.integration.test_manifests import drop
from tests.samples import docx_bytes, jpeg_bytes, pdf_bytes, png_bytes

OWNER, USER = "owner-secret", "reader-secret"

FOLDERS: list[dict[str, Any]] = [
    {"name": "archive", "workflow": "pdf-archive"},
    {"name": "optimize", "workflow": "pdf-optimize", "profile": "smallest"},
    {"name": "to-pdf", "workflow": "image-to-pdf", "profile": "a4"},
    {"name": "render", "workflow": "pdf-to-image", "options": {"RENDER.DPI": 36}},
    {"name": "split", "workflow": "pdf-split", "options": {"SPLIT.EVERY": 2}},
    {"name": "merge", "workflow": "pdf-merge"},
    {
        "name": "protect",
        "workflow": "pdf-protect",
        "options": {"PROTECT.OWNER_PASSWORD": OWNER, "PROTECT.USER_PASSWORD": USER},
    },
    {"name": "unprotect", "workflow": "pdf-unprotect", "options": {"DOC.PASSWORD": "pw"}},
    {"name": "images", "workflow": "image-convert", "options": {"IMAGE.THUMBNAIL": 16}},
    {"name": "office", "workflow": "office-archive", "timeout": 300},
]

CHAIN = {
    "name": "office-archive",
    "description": "Office documents to protected PDF/A",
    "steps": ["office-to-pdf", "pdf-archive", "pdf-protect"],
    "profiles": {"default": {"PROTECT.OWNER_PASSWORD": OWNER, "PROTECT.ALLOW": ["print"]}},
}


def texts(path: Path, password: str | None = None) -> list[str]:
    document = pypdfium2.PdfDocument(path, password=password)
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


def photo() -> bytes:
    """A noisy 1200x900 JPEG: big enough that recompression at 150 dpi pays."""
    image = Image.effect_noise((1200, 900), 60).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def photo_pdf() -> bytes:
    """One A4 page with the photo drawn 4 inches wide (300 dpi) and some text."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    page = pdf.pages[0]
    image = pikepdf.Stream(pdf, photo())
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width, image.Height = 1200, 900
    image.ColorSpace, image.BitsPerComponent = pikepdf.Name.DeviceRGB, 8
    image.Filter = pikepdf.Name.DCTDecode
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
    )
    page.Resources = pikepdf.Dictionary(
        XObject=pikepdf.Dictionary(Im0=image), Font=pikepdf.Dictionary(F1=font)
    )
    page.Contents = pdf.make_stream(
        b"q 288 0 0 216 72 500 cm /Im0 Do Q BT /F1 18 Tf 72 400 Td (Holiday photo) Tj ET"
    )
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@pytest.fixture
def daemon(hotfolder) -> Any:
    process = hotfolder(FOLDERS, workflows=[CHAIN]).start()
    yield process
    process.stop()


def test_every_workflow_in_the_daemon(daemon) -> None:
    """One real file per folder; each output is checked for what the workflow promises."""
    drop(daemon.dir("archive") / "letter.pdf", pdf_bytes(pages=2, text="Dear archive"))
    big = photo_pdf()
    drop(daemon.dir("optimize") / "holiday.pdf", big)
    drop(daemon.dir("to-pdf") / "scan.jpg", jpeg_bytes(800, 600))
    drop(daemon.dir("render") / "deck.pdf", pdf_bytes(pages=3))
    drop(daemon.dir("split") / "book.pdf", pdf_bytes(pages=5, text="Book"))
    drop(daemon.dir("merge") / "single.pdf", pdf_bytes(pages=2))
    drop(daemon.dir("protect") / "payslip.pdf", pdf_bytes(text="Salary"))
    drop(daemon.dir("unprotect") / "locked.pdf", pdf_bytes(pages=2, password="pw"))
    drop(daemon.dir("images") / "pic.png", png_bytes(64, 32))
    drop(daemon.dir("office") / "memo.docx", docx_bytes(["Quarterly memo", "Second page"]))
    for folder in FOLDERS:
        daemon.wait_finished(folder["name"], 1, timeout=180)
    failed = {f["name"]: daemon.statuses(f["name"], "error") for f in FOLDERS}
    assert not any(failed.values()), failed
    out = {f["name"]: daemon.dir(f["name"], "out") for f in FOLDERS}

    letter = out["archive"] / "letter.pdf"
    assert pikepdf.pdfa.validate_written(letter, "2b").passed
    assert [t.split()[0:2] for t in texts(letter)] == [["Dear", "archive"]] * 2

    [status] = daemon.statuses("optimize")
    assert (out["optimize"] / "holiday.pdf").stat().st_size < len(big) / 2
    assert "Holiday photo" in texts(out["optimize"] / "holiday.pdf")[0]
    assert "->" in status["message"]

    assert len(texts(out["to-pdf"] / "scan.pdf")) == 1
    assert daemon.files("render", "out") == [
        "deck-p001.png",
        "deck-p002.png",
        "deck-p003.png",
        "deck.status.json",
    ]
    with Image.open(out["render"] / "deck-p002.png") as image:
        assert image.size == (306, 396)
    parts = [n for n in daemon.files("split", "out") if n.endswith(".pdf")]
    assert parts == ["book-p001.pdf", "book-p003.pdf", "book-p005.pdf"]
    assert [len(texts(out["split"] / p)) for p in parts] == [2, 2, 1]
    assert len(texts(out["merge"] / "single.pdf")) == 2

    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(out["protect"] / "payslip.pdf")
    assert "Salary" in texts(out["protect"] / "payslip.pdf", USER)[0]
    with pikepdf.open(out["unprotect"] / "locked.pdf") as unlocked:
        assert not unlocked.is_encrypted and len(unlocked.pages) == 2
    assert daemon.files("images", "out") == ["pic-thumb.png", "pic.png", "pic.status.json"]
    with Image.open(out["images"] / "pic-thumb.png") as thumb:
        assert thumb.size == (16, 8)

    memo = out["office"] / "memo.pdf"
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(memo, password="wrong")
    with pikepdf.open(memo) as pdf:  # no user password: opens, rights restricted
        assert pdf.is_encrypted and not pdf.allow.modify_other
        assert len(pdf.pages) == 2
    memo_text = " ".join(texts(memo))
    assert "Quarterly memo" in memo_text and "Second page" in memo_text
    [office] = daemon.statuses("office")
    assert office["workflow"] == "office-archive" and "PDF/A" in office["message"]
    assert OWNER not in json.dumps(office)


def convert(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotfolder", "convert", "-d", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_convert_merges_several_inputs_and_runs_config_chains(tmp_path: Path) -> None:
    """`convert` takes all inputs into one merge job and knows the config's chains."""
    a = tmp_path / "a.pdf"
    b = tmp_path / "b.pdf"
    a.write_bytes(pdf_bytes(pages=1, text="First"))
    b.write_bytes(pdf_bytes(pages=2, text="Second"))
    done = convert(tmp_path, "-w", "pdf-merge", str(a), str(b))
    assert done.returncode == 0, done.stderr
    assert "a.pdf, b.pdf: success -> a.pdf" in done.stdout
    merged = texts(tmp_path / "out" / "a.pdf")
    assert [t.split()[0] for t in merged] == ["First", "Second", "Second"]
    assert a.exists() and b.exists()

    config = tmp_path / "chains.toml"
    config.write_text(
        "[[workflows]]\n"
        'name = "archive-protect"\n'
        'steps = ["pdf-archive", "pdf-protect"]\n'
        "[workflows.profiles.default]\n"
        f'"PROTECT.OWNER_PASSWORD" = "{OWNER}"\n'
    )
    done = convert(tmp_path, "--config", str(config), "-w", "archive-protect", str(b))
    assert done.returncode == 0, done.stderr
    with pikepdf.open(tmp_path / "out" / "b.pdf", password=OWNER) as pdf:
        assert pdf.is_encrypted and len(pdf.pages) == 2
