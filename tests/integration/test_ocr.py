"""OCR through the real daemon: scans in, searchable PDF/A out; progress; bad scans refused."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib

import pikepdf
import pikepdf.pdfa

from hotfolder.workflows.pdfa import page_texts
from tests.helpers import free_port, http_json, wait_for
from tests.scans import image_bytes, scan_image, scan_pdf


def test_progress_of_a_running_job_shows_in_status_and_api(hotfolder) -> None:
    """pagesDone/pages travel worker -> daemon -> journal while the job runs, then vanish."""
    port = free_port()
    daemon = hotfolder([{"name": "faults", "workflow": "test-faults"}])
    text = daemon.config.read_text().replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    daemon.config.write_text(text)
    daemon.start()
    gate = daemon.root / "gate"
    (daemon.dir("faults") / "long.job").write_text(f"pages:7:{gate}")

    def running() -> dict | None:
        code, listing = http_json(f"http://127.0.0.1:{port}/jobs?folder=faults")
        jobs = listing.get("jobs", []) if code == 200 else []
        return jobs[0] if jobs and "pagesDone" in jobs[0] else None

    listed = wait_for(running, timeout=30, what="progress in /jobs")
    assert (listed["status"], listed["pagesDone"], listed["pages"]) == ("processing", 1, 7)
    code, one = http_json(f"http://127.0.0.1:{port}/jobs/{listed['jobId']}")
    assert code == 200 and (one["pagesDone"], one["pages"]) == (1, 7)
    status = [sys.executable, "-m", "hotfolder", "status", "--config", str(daemon.config)]
    shown = subprocess.run(status, capture_output=True, text=True, check=True).stdout
    assert "(page 1/7)" in shown
    rows = json.loads(
        subprocess.run([*status, "--json"], capture_output=True, text=True, check=True).stdout
    )
    assert (rows[0]["pagesDone"], rows[0]["pages"]) == (1, 7)
    gate.touch()
    daemon.wait_finished("faults", 1)
    done = daemon.statuses("faults")[0]
    assert done["status"] == "success" and "pagesDone" not in done


def _huge_image_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(1440, 1440))
    image = pikepdf.Stream(pdf, zlib.compress(bytes(20000 * 20000 // 8)))
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width = image.Height = 20000
    image.BitsPerComponent, image.ColorSpace = 1, pikepdf.Name.DeviceGray
    image.Filter = pikepdf.Name.FlateDecode
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    pdf.pages[0].Contents = pikepdf.Stream(pdf, b"q 1440 0 0 1440 0 0 cm /Im0 Do Q")
    return _saved(pdf)


def _corrupt_jbig2_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(432, 216))
    image = pikepdf.Stream(pdf, b"\x97JB2\r\n\x1a\n" + bytes(range(256)) * 4)
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width, image.Height = 900, 450
    image.BitsPerComponent, image.ColorSpace = 1, pikepdf.Name.DeviceGray
    image.Filter = pikepdf.Name.JBIG2Decode
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    pdf.pages[0].Contents = pikepdf.Stream(pdf, b"q 432 0 0 216 0 0 cm /Im0 Do Q")
    return _saved(pdf)


def _many_pages_pdf(count: int) -> bytes:
    pdf = pikepdf.new()
    for _ in range(count):
        pdf.add_blank_page()
    return _saved(pdf)


def _saved(pdf: pikepdf.Pdf) -> bytes:
    import io

    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def test_scans_become_searchable_pdfa_and_bad_scans_get_clear_codes(hotfolder) -> None:
    """One daemon, two folders: a scanned PNG and PDF come out searchable, four bad ones fail."""
    daemon = hotfolder(
        [
            {
                "name": "scans",
                "workflow": "scan-archive",
                "profile": "archive",
                "options": {"OCR.SIDECAR": True},
            },
            {"name": "ocr", "workflow": "pdf-ocr", "profile": "fast"},
        ]
    )
    daemon.start()
    (daemon.dir("scans") / "letter.png").write_bytes(image_bytes(scan_image(dpi=150), dpi=150))
    ocr_in = daemon.dir("ocr")
    (ocr_in / "locked.pdf").write_bytes(scan_pdf(password="secret"))
    (ocr_in / "many.pdf").write_bytes(_many_pages_pdf(2000))
    (ocr_in / "huge.pdf").write_bytes(_huge_image_pdf())
    (ocr_in / "jbig2.pdf").write_bytes(_corrupt_jbig2_pdf())
    daemon.wait_finished("ocr", 4, timeout=60)
    codes = {s["inputs"][0]["name"]: s["error"]["code"] for s in daemon.statuses("ocr", "error")}
    assert codes == {
        "locked.pdf": "password_required",
        "many.pdf": "too_large",
        "huge.pdf": "too_large",
        "jbig2.pdf": "corrupt_input",
    }
    # ... and the daemon carries on: a good scan after the bad ones succeeds.
    (ocr_in / "good.pdf").write_bytes(scan_pdf(dpi=150))
    daemon.wait_finished("scans", 1, timeout=90)
    daemon.wait_finished("ocr", 5, timeout=90)
    assert daemon.files("scans", "out") == ["letter.pdf", "letter.status.json", "letter.txt"]
    status = daemon.statuses("scans")[0]
    assert status["status"] == "success" and "PDF/A-2b" in status["message"]
    out = daemon.dir("scans", "out")
    assert pikepdf.pdfa.validate_written(out / "letter.pdf", "2b").passed
    assert "quick brown fox" in page_texts(out / "letter.pdf")[0]
    assert "quick brown fox" in (out / "letter.txt").read_text()
    good = [s for s in daemon.statuses("ocr") if s["name"] == "good"]
    assert good and good[0]["status"] == "success"
    assert "Invoice 4711" in page_texts(daemon.dir("ocr", "out") / "good.pdf")[0]
    assert wait_for(lambda: daemon.proc is not None and daemon.proc.poll() is None, timeout=1)
