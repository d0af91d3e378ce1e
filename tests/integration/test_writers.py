"""Intake never takes a file that is still being written, however long the writer pauses.

Each test runs the real daemon and a real writer: a file descriptor held open
across a pause several times ``settle``, ``cp`` copying from a FIFO that stalls,
and a writer that goes on writing after its file was claimed. The pauses are the
writers' own behaviour under test; every wait on the daemon has a deadline.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.request

import pikepdf

from tests.helpers import free_port, wait_for
from tests.samples import pdf_bytes

SETTLE = 0.5
PAUSE = 3 * SETTLE


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _log_text(daemon) -> str:
    return daemon.log.read_text(errors="replace")


def _assert_one_complete_job(daemon, folder: str, data: bytes, name: str, pages: int) -> dict:
    daemon.wait_finished(folder, 1, timeout=60)
    assert daemon.statuses(folder, "error") == [], _log_text(daemon)
    [status] = daemon.statuses(folder, "out")
    assert status["status"] == "success"
    assert status["inputs"][0]["sha256"] == _sha256(data)
    assert status["inputs"][0]["bytes"] == len(data)
    with pikepdf.open(daemon.dir(folder, "out") / name) as pdf:
        assert len(pdf.pages) == pages
    return status


def test_a_writer_pausing_three_times_settle_is_waited_for(hotfolder) -> None:
    daemon = hotfolder(
        [{"name": "docs", "workflow": "pdf-optimize", "settle": SETTLE, "observer": "native"}]
    ).start()
    data = pdf_bytes(pages=12)
    target = daemon.dir("docs") / "scan.pdf"
    half = len(data) // 2
    with target.open("wb") as handle:
        handle.write(data[:half])
        handle.flush()
        # The scanner pauses between pages for three times `settle`: still its file.
        deadline = time.monotonic() + PAUSE
        while time.monotonic() < deadline:
            assert target.exists(), "claimed while its writer still had it open"
            assert daemon.finished("docs") == 0
            time.sleep(0.05)
        handle.write(data[half:])
    _assert_one_complete_job(daemon, "docs", data, "scan.pdf", 12)
    assert "still open for writing" in _log_text(daemon)


def test_cp_from_a_stalling_fifo_is_taken_only_when_cp_is_done(hotfolder, tmp_path) -> None:
    daemon = hotfolder(
        [{"name": "docs", "workflow": "pdf-optimize", "settle": SETTLE, "observer": "native"}]
    ).start()
    data = pdf_bytes(pages=8)
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    target = daemon.dir("docs") / "copied.pdf"
    copier = subprocess.Popen(["cp", str(fifo), str(target)])
    with fifo.open("wb") as stream:  # another process (cp) writes the file
        stream.write(data[:1000])
        stream.flush()
        wait_for(lambda: target.exists() and target.stat().st_size >= 1000, what="cp to start")
        deadline = time.monotonic() + PAUSE
        while time.monotonic() < deadline:
            assert target.exists(), "claimed while cp still had it open"
            time.sleep(0.05)
        stream.write(data[1000:])
    assert copier.wait(30) == 0
    _assert_one_complete_job(daemon, "docs", data, "copied.pdf", 8)


def test_a_writer_still_at_work_after_the_claim_sends_the_job_back_to_settling(
    hotfolder,
) -> None:
    # A polled folder (a network share) has only the clock: a writer that pauses
    # longer than `settle` loses its file to the claim, and goes on writing into it.
    port = free_port()
    daemon = hotfolder(
        [{"name": "slow", "workflow": "test-faults", "settle": SETTLE, "observer": "polling"}],
        poll_interval=0.2,
        http={"listen": f"127.0.0.1:{port}"},
    ).start()
    head = b"slow:1.5 " + b"a" * 4000
    tail = b"b" * 6000
    target = daemon.dir("slow") / "growing.txt"
    with target.open("wb") as handle:
        handle.write(head)
        handle.flush()
        wait_for(lambda: not target.exists(), timeout=20, what="the claim of the paused file")
        handle.write(tail)  # into the claimed file, while it converts
    daemon.wait_finished("slow", 1, timeout=60)
    assert daemon.statuses("slow", "error") == []
    [status] = daemon.statuses("slow", "out")
    assert status["inputs"][0]["sha256"] == _sha256(head + tail)
    assert status["attempts"] == 2
    assert (daemon.dir("slow", "out") / "growing.txt").read_bytes() == head + tail
    assert (daemon.dir("slow", "archive") / "growing.txt").read_bytes() == head + tail
    log = _log_text(daemon)
    assert "changed after its claim" in log
    assert "corrupt_input" not in log
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'hotfolder_inputs_changed_after_claim_total{folder="slow"} 1.0' in metrics


def test_a_file_nobody_writes_any_more_is_taken_after_settle(hotfolder) -> None:
    # The common case stays fast: a file written and closed is taken once settled.
    daemon = hotfolder(
        [{"name": "docs", "workflow": "pdf-optimize", "settle": SETTLE, "observer": "native"}]
    ).start()
    data = pdf_bytes(pages=2)
    (daemon.dir("docs") / "done.pdf").write_bytes(data)
    _assert_one_complete_job(daemon, "docs", data, "done.pdf", 2)


def test_a_writer_holding_the_file_keeps_it_out_while_others_go_through(hotfolder) -> None:
    daemon = hotfolder(
        [{"name": "docs", "workflow": "pdf-optimize", "settle": SETTLE, "observer": "native"}]
    ).start()
    held = daemon.dir("docs") / "held.pdf"
    data = pdf_bytes(pages=3)
    with held.open("wb") as handle:
        handle.write(data)
        handle.flush()  # complete, but its writer has not closed it
        (daemon.dir("docs") / "other.pdf").write_bytes(pdf_bytes())
        wait_for(lambda: daemon.finished("docs") == 1, timeout=30, what="the other file")
        assert held.exists()
        assert [s["name"] for s in daemon.statuses("docs")] == ["other"]
    daemon.wait_finished("docs", 2, timeout=30)


def test_on_a_polled_share_a_paused_pdf_is_not_called_damaged(hotfolder) -> None:
    # Time is all a polled folder has: the paused file is claimed half-written and
    # fails to open; the failure waits for its writer, which comes back, so the job
    # settles again and converts the complete file (attempts counts on).
    daemon = hotfolder(
        [{"name": "share", "workflow": "pdf-optimize", "settle": SETTLE, "observer": "polling"}],
        poll_interval=0.2,
    ).start()
    data = pdf_bytes(pages=12)
    target = daemon.dir("share") / "scan.pdf"
    with target.open("wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        wait_for(lambda: not target.exists(), timeout=20, what="the claim of the paused file")
        deadline = time.monotonic() + PAUSE
        while time.monotonic() < deadline:
            assert daemon.finished("share") == 0, "published while its writer was paused"
            time.sleep(0.05)
        handle.write(data[len(data) // 2 :])
    status = _assert_one_complete_job(daemon, "share", data, "scan.pdf", 12)
    assert status["attempts"] == 2
    assert "corrupt_input" not in _log_text(daemon)
