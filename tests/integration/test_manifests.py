"""Sidecar manifests on the real daemon: multi-file jobs, holds, deadlines, bad manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pikepdf
import pypdfium2
from PIL import Image

from tests.helpers import drop, drop_manifest, free_port, http_json, wait_for
from tests.samples import pdf_bytes


def page_texts(path: Path, password: str | None = None) -> list[str]:
    document = pypdfium2.PdfDocument(path, password=password)
    try:
        return [page.get_textpage().get_text_range().strip() for page in document]
    finally:
        document.close()


def jobs(port: int, status: str) -> list[dict[str, Any]]:
    code, body = http_json(f"http://127.0.0.1:{port}/jobs?status={status}")
    assert code == 200
    return list(body["jobs"])


def test_merge_waits_for_inputs_that_arrive_after_the_manifest(hotfolder) -> None:
    """A three-file merge: manifest first, inputs later, merged in the manifest's order."""
    port = free_port()
    daemon = hotfolder(
        [{"name": "m", "workflow": "pdf-merge"}], http={"listen": f"127.0.0.1:{port}"}
    ).start()
    inbox = daemon.dir("m")
    drop_manifest(inbox / "batch.job.json", name="merged", inputs=["c.pdf", "a.pdf", "b.pdf"])
    pending = wait_for(lambda: jobs(port, "pending"), what="the manifest job to be pending")
    assert pending[0]["name"] == "merged"
    for name, pages in (("a.pdf", 1), ("b.pdf", 2), ("c.pdf", 3)):
        drop(inbox / name, pdf_bytes(pages=pages, text=name[0].upper()))
    daemon.wait_finished("m", 1)
    assert daemon.files("m", "out") == ["merged.pdf", "merged.status.json"]
    texts = page_texts(daemon.dir("m", "out") / "merged.pdf")
    assert [t.split()[0] for t in texts] == ["C", "C", "C", "A", "B", "B"]
    [status] = daemon.statuses("m")
    assert status["status"] == "success" and status["jobId"] == pending[0]["jobId"]
    assert [i["name"] for i in status["inputs"]] == ["c.pdf", "a.pdf", "b.pdf"]
    assert daemon.files("m", "archive") == ["a.pdf", "b.pdf", "batch.job.json", "c.pdf"]
    assert daemon.files("m", "in") == []


def test_held_job_runs_only_when_the_manifest_says_process(hotfolder) -> None:
    """process: false holds the job as pending until the manifest is replaced with true."""
    port = free_port()
    daemon = hotfolder(
        [
            {"name": "held", "workflow": "pdf-merge"},
            {"name": "other", "workflow": "test-faults"},
        ],
        http={"listen": f"127.0.0.1:{port}"},
    ).start()
    inbox = daemon.dir("held")
    drop_manifest(inbox / "x.job.json", inputs=["x.pdf"], process=False)
    wait_for(lambda: jobs(port, "pending"), what="a pending job")
    drop(inbox / "x.pdf", pdf_bytes(pages=2))
    # A job dropped later in another folder finishing proves the daemon kept working
    # (and the held job's input long settled) while the held job stayed pending.
    (daemon.dir("other") / "probe.job").write_text("ok")
    daemon.wait_finished("other", 1)
    assert daemon.finished("held") == 0
    assert [j["status"] for j in jobs(port, "pending")] == ["pending"]
    assert sorted(daemon.files("held", "in")) == ["x.job.json", "x.pdf"]
    drop_manifest(inbox / "x.job.json", inputs=["x.pdf"], process=True)
    daemon.wait_finished("held", 1)
    [status] = daemon.statuses("held")
    assert status["status"] == "success" and status["name"] == "x"
    assert len(pikepdf.open(daemon.dir("held", "out") / "x.pdf").pages) == 2


def test_passwords_per_document(hotfolder) -> None:
    """Each input opens with its own DOC.PASSWORD from the manifest.

    With manifests = "required" the inputs may arrive before their manifest.
    """
    daemon = hotfolder([{"name": "m", "workflow": "pdf-merge", "manifests": "required"}]).start()
    inbox = daemon.dir("m")
    drop(inbox / "one.pdf", pdf_bytes(pages=1, text="One", password="alpha"))
    drop(inbox / "two.pdf", pdf_bytes(pages=2, text="Two", password="beta"))
    drop_manifest(
        inbox / "pair.job.json",
        inputs=[
            {"name": "one.pdf", "options": [{"name": "DOC.PASSWORD", "value": "alpha"}]},
            {"name": "two.pdf", "options": [{"name": "DOC.PASSWORD", "value": "beta"}]},
        ],
    )
    daemon.wait_finished("m", 1)
    [status] = daemon.statuses("m")
    assert status["status"] == "success", status
    texts = page_texts(daemon.dir("m", "out") / "pair.pdf")
    assert [t.split()[0] for t in texts] == ["One", "Two", "Two"]
    assert "alpha" not in json.dumps(status) and "beta" not in json.dumps(status)


def test_two_conversions_in_one_job(hotfolder) -> None:
    """One manifest, two targets: an optimized PDF and a PNG preview of page 1."""
    daemon = hotfolder(
        [
            {
                "name": "c",
                "workflow": "pdf-optimize",
                "allow_overrides": True,
                "manifests": "required",
            }
        ]
    ).start()
    inbox = daemon.dir("c")
    drop(inbox / "report.pdf", pdf_bytes(pages=3))
    drop_manifest(
        inbox / "report.job.json",
        inputs=["report.pdf"],
        conversions=[
            {"profile": "web"},
            {
                "workflow": "pdf-to-image",
                "suffix": "-preview",
                "options": [
                    {"name": "RENDER.PAGES", "value": "1"},
                    {"name": "RENDER.DPI", "value": 36},
                ],
            },
        ],
    )
    daemon.wait_finished("c", 1)
    [status] = daemon.statuses("c")
    assert status["status"] == "success", status
    assert daemon.files("c", "out") == [
        "report-preview-p001.png",
        "report.pdf",
        "report.status.json",
    ]
    assert pikepdf.open(daemon.dir("c", "out") / "report.pdf").is_linearized
    with Image.open(daemon.dir("c", "out") / "report-preview-p001.png") as image:
        assert image.size == (306, 396)  # US Letter at 36 dpi


def test_bad_manifests_fail_with_a_status_naming_the_problem(hotfolder, tmp_path: Path) -> None:
    """Invalid JSON, unknown fields, path traversal, symlinks and forbidden overrides."""
    secret = tmp_path / "secret.pdf"
    secret_bytes = pdf_bytes()
    secret.write_bytes(secret_bytes)
    daemon = hotfolder([{"name": "m", "workflow": "pdf-merge"}]).start()
    inbox = daemon.dir("m")
    drop(inbox / "broken.job.json", b'{"inputs": ["a.pdf",]')
    drop_manifest(inbox / "typo.job.json", inputs=["a.pdf"], proces=True)
    drop_manifest(inbox / "escape.job.json", inputs=["../../secret.pdf"])
    drop_manifest(inbox / "absolute.job.json", inputs=[str(secret)])
    drop_manifest(inbox / "override.job.json", inputs=["a.pdf"], workflow="pdf-split")
    drop_manifest(inbox / "link.job.json", inputs=["link.pdf"])
    # The link appears once its manifest job is pending (else it is a job of its own).
    wait_for(lambda: b"manifest='link.job.json'" in daemon.log.read_bytes(), what="link job")
    os.symlink(secret, inbox / "link.pdf")
    daemon.wait_finished("m", 6)
    by_name = {s["name"]: s for s in daemon.statuses("m", "error")}
    assert {n: s["error"]["code"] for n, s in by_name.items()} == {
        "broken": "manifest_invalid",
        "typo": "manifest_invalid",
        "escape": "manifest_invalid",
        "absolute": "manifest_invalid",
        "override": "manifest_invalid",
        "link": "not_regular_file",
    }
    assert "not valid JSON" in by_name["broken"]["message"]
    assert "proces" in by_name["typo"]["message"]
    assert "inputs.0.name" in by_name["escape"]["message"]
    assert "allow_overrides" in by_name["override"]["message"]
    assert "link.pdf" in by_name["link"]["message"]
    # Nothing outside the folder was read, moved or touched.
    assert secret.read_bytes() == secret_bytes
    assert os.path.islink(daemon.dir("m", "error") / "link.pdf")
    assert daemon.files("m", "out") == []


def test_missing_inputs_fail_after_the_deadline(hotfolder) -> None:
    """Past manifest_timeout the job fails inputs_missing; what arrived goes to error/."""
    daemon = hotfolder(
        [{"name": "m", "workflow": "pdf-merge", "manifest_timeout": 2, "manifests": "required"}]
    ).start()
    inbox = daemon.dir("m")
    drop(inbox / "a.pdf", pdf_bytes())
    drop_manifest(inbox / "ab.job.json", inputs=["a.pdf", "b.pdf"])
    daemon.wait_finished("m", 1, timeout=30)
    [status] = daemon.statuses("m", "error")
    assert status["error"]["code"] == "inputs_missing"
    assert "b.pdf" in status["message"]
    assert daemon.files("m", "error") == ["a.pdf", "ab.job.json", "ab.status.json"]
    assert daemon.files("m", "in") == []


def test_removing_a_pending_manifest_aborts_the_job(hotfolder) -> None:
    """The user takes the manifest back: the job ends aborted, its inputs in error/."""
    port = free_port()
    daemon = hotfolder(
        [{"name": "m", "workflow": "pdf-merge", "manifests": "required"}],
        http={"listen": f"127.0.0.1:{port}"},
    ).start()
    inbox = daemon.dir("m")
    drop(inbox / "a.pdf", pdf_bytes())
    drop_manifest(inbox / "ab.job.json", inputs=["a.pdf", "b.pdf"])
    wait_for(lambda: jobs(port, "pending"), what="a pending job")
    (inbox / "ab.job.json").unlink()
    daemon.wait_finished("m", 1)
    [status] = daemon.statuses("m", "error")
    assert status["status"] == "aborted" and status["error"]["code"] == "aborted"
    assert daemon.files("m", "error") == ["a.pdf", "ab.status.json"]


def test_pending_manifest_survives_a_restart(hotfolder) -> None:
    """A pending job is in the journal: after a restart it still completes, once."""
    daemon = hotfolder([{"name": "m", "workflow": "pdf-merge"}]).start()
    inbox = daemon.dir("m")
    drop_manifest(inbox / "later.job.json", inputs=["a.pdf"])
    wait_for(lambda: b" pending " in daemon.log.read_bytes(), what="a pending job")
    daemon.kill()
    drop(inbox / "a.pdf", pdf_bytes(pages=2))
    daemon.start()
    daemon.wait_finished("m", 1)
    [status] = daemon.statuses("m")
    assert status["status"] == "success"
    assert daemon.files("m", "out") == ["later.pdf", "later.status.json"]
