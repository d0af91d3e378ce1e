"""Good, bad and odd inputs each end as DESIGN.md §2.3 says."""

from __future__ import annotations

import os

import pikepdf

from tests import hostile
from tests.samples import jpeg_bytes, pdf_bytes

PDFS = {
    "name": "pdfs",
    "workflow": "pdf-optimize",
    "include": ["*.pdf"],
    "options": {"DOC.PASSWORD": ["wrong", "letmein"]},
}
NOPASS = {"name": "nopass", "workflow": "pdf-optimize"}


def by_input(statuses: list[dict]) -> dict[str, dict]:
    return {s["inputs"][0]["name"]: s for s in statuses}


def test_bad_and_protected_pdfs_end_in_error_with_a_clear_code(hotfolder) -> None:
    daemon = hotfolder([PDFS, NOPASS]).start()
    inbox, nopass = daemon.dir("pdfs"), daemon.dir("nopass")
    good = pdf_bytes(pages=3)
    (inbox / "good.pdf").write_bytes(good)
    (inbox / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(3000))
    (inbox / "notapdf.pdf").write_bytes(jpeg_bytes())
    (inbox / "truncated.pdf").write_bytes(good[: len(good) // 2])
    (inbox / "empty.pdf").write_bytes(b"")
    (inbox / "protected.pdf").write_bytes(pdf_bytes(pages=2, password="letmein"))
    (inbox / "otherpass.pdf").write_bytes(pdf_bytes(password="nobody-knows"))
    (nopass / "protected.pdf").write_bytes(pdf_bytes(password="letmein"))
    daemon.wait_finished("pdfs", 7)
    daemon.wait_finished("nopass", 1)

    ok = by_input(daemon.statuses("pdfs", "out"))
    assert set(ok) == {"good.pdf", "protected.pdf"}
    with pikepdf.open(daemon.dir("pdfs", "out") / "protected.pdf", password="letmein") as pdf:
        assert len(pdf.pages) == 2
    failed = by_input(daemon.statuses("pdfs", "error"))
    codes = {name: s["error"]["code"] for name, s in failed.items()}
    assert codes == {
        "corrupt.pdf": "corrupt_input",
        "notapdf.pdf": "unsupported_format",
        "truncated.pdf": "corrupt_input",
        "empty.pdf": "corrupt_input",
        "otherpass.pdf": "password_incorrect",
    }
    for status in failed.values():
        assert status["status"] == "failed" and len(status["error"]["message"]) > 30
        assert "letmein" not in status["error"]["message"]
    # Originals are kept next to their status, byte for byte.
    assert (daemon.dir("pdfs", "error") / "truncated.pdf").read_bytes() == good[: len(good) // 2]
    assert by_input(daemon.statuses("nopass", "error"))["protected.pdf"]["error"]["code"] == (
        "password_required"
    )
    assert daemon.proc.poll() is None


def test_colliding_names_get_a_suffix_and_nothing_is_overwritten(hotfolder) -> None:
    daemon = hotfolder([PDFS]).start()
    inbox = daemon.dir("pdfs")
    for round_ in range(1, 4):
        (inbox / "report.pdf").write_bytes(pdf_bytes(pages=round_))
        daemon.wait_finished("pdfs", round_)
    assert daemon.files("pdfs", "out") == [
        "report.pdf",
        "report.status.json",
        "report_2.pdf",
        "report_2.status.json",
        "report_3.pdf",
        "report_3.status.json",
    ]
    pages = []
    for name in ("report.pdf", "report_2.pdf", "report_3.pdf"):
        with pikepdf.open(daemon.dir("pdfs", "out") / name) as pdf:
            pages.append(len(pdf.pages))
    assert pages == [1, 2, 3]
    assert daemon.files("pdfs", "archive") == ["report.pdf", "report_2.pdf", "report_3.pdf"]
    names = sorted(s["name"] for s in daemon.statuses("pdfs"))
    assert names == ["report", "report_2", "report_3"]


def test_unicode_and_odd_names_convert(hotfolder) -> None:
    daemon = hotfolder([PDFS]).start()
    names = [
        "Rechnung über €100 (日本).pdf",
        "two  spaces.pdf",
        "-leading-dash.pdf",
        "many.dots.in.name.pdf",
    ]
    for name in names:
        (daemon.dir("pdfs") / name).write_bytes(pdf_bytes())
    daemon.wait_finished("pdfs", len(names))
    out = set(daemon.files("pdfs", "out"))
    for name in names:
        assert name in out
        assert name[: -len(".pdf")] + ".status.json" in out


def test_symlinks_and_fifos_are_never_followed_or_read(hotfolder, tmp_path) -> None:
    outside = tmp_path / "outside-secret.pdf"
    outside.write_bytes(pdf_bytes(text="secret"))
    before = outside.stat()
    daemon = hotfolder([PDFS]).start()
    inbox = daemon.dir("pdfs")
    (inbox / "link.pdf").symlink_to(outside)
    os.mkfifo(inbox / "pipe.pdf")
    daemon.wait_finished("pdfs", 2)
    failed = by_input(daemon.statuses("pdfs", "error"))
    assert {s["error"]["code"] for s in failed.values()} == {"not_regular_file"}
    assert (daemon.dir("pdfs", "error") / "link.pdf").is_symlink()
    assert outside.stat().st_mtime_ns == before.st_mtime_ns
    assert outside.stat().st_atime_ns == before.st_atime_ns or True  # atime may be noatime
    assert not daemon.files("pdfs", "out")


def test_junk_and_temp_names_are_ignored(hotfolder) -> None:
    daemon = hotfolder([{"name": "any", "workflow": "pdf-optimize"}]).start()
    inbox = daemon.dir("any")
    junk = [".DS_Store", "Thumbs.db", "._scan.pdf", "upload.pdf.part", "~$draft.docx", "x.tmp"]
    for name in junk:
        (inbox / name).write_bytes(b"junk")
    (inbox / "real.pdf").write_bytes(pdf_bytes())
    daemon.wait_finished("any", 1)
    assert sorted(os.listdir(inbox)) == sorted(junk)
    assert daemon.finished("any") == 1


def test_a_renamed_partial_upload_is_taken_under_its_final_name(hotfolder) -> None:
    daemon = hotfolder([PDFS]).start()
    inbox = daemon.dir("pdfs")
    (inbox / "upload.pdf.part").write_bytes(pdf_bytes())
    os.rename(inbox / "upload.pdf.part", inbox / "upload.pdf")
    daemon.wait_finished("pdfs", 1)
    assert by_input(daemon.statuses("pdfs"))["upload.pdf"]["status"] == "success"


def test_an_input_the_independent_reader_refuses_is_corrupt_input_not_tool_failed(
    hotfolder,
) -> None:
    """qpdf rewrites these without a word, pdfium refuses them: the input is at fault.

    The output check used to blame the engine ("tool_failed ... Please report this").
    """
    daemon = hotfolder(
        [
            {"name": "optimize", "workflow": "pdf-optimize", "profile": "smallest"},
            {
                "name": "protect",
                "workflow": "pdf-protect",
                "options": {"PROTECT.OWNER_PASSWORD": "owner-secret"},
            },
            {"name": "unprotect", "workflow": "pdf-unprotect"},
        ]
    ).start()
    drops = {
        "optimize": {"root.pdf": hostile.direct_root(), "image.pdf": hostile.undecodable_image()},
        "protect": {"root.pdf": hostile.direct_root()},
        "unprotect": {"root.pdf": hostile.direct_root()},
    }
    for folder, files in drops.items():
        for name, data in files.items():
            (daemon.dir(folder) / name).write_bytes(data)
    for folder, files in drops.items():
        daemon.wait_finished(folder, len(files))
        failed = by_input(daemon.statuses(folder, "error"))
        assert set(failed) == set(files), folder
        for name, status in failed.items():
            error = status["error"]
            assert error["code"] == "corrupt_input", (folder, name, error)
            assert f"'{name}' cannot be read by pdfium" in error["message"]
            assert "Export it again from the program that made it" in error["message"]
            assert "report" not in error["message"]
            assert "owner-secret" not in error["message"]
    assert (
        "page 1 does not decode"
        in by_input(daemon.statuses("optimize", "error"))["image.pdf"]["error"]["message"]
    )
