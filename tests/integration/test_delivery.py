"""Exactly-once delivery: slow writers, bursts, kill -9 and atomic appearance."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from tests.helpers import job_dirs, wait_for
from tests.samples import pdf_bytes, png_bytes


def test_slowly_written_file_is_taken_only_when_complete(hotfolder, tmp_path: Path) -> None:
    daemon = hotfolder([{"name": "img", "workflow": "image-convert", "settle": 1.0}]).start()
    source = tmp_path / "photo.png"
    Image.effect_noise((600, 400), 60).convert("RGB").save(source)
    data = source.read_bytes()
    target = daemon.dir("img") / "photo.png"
    chunks = 12
    step = len(data) // chunks + 1
    with target.open("wb") as handle:
        for i in range(chunks):  # about 4 s in all, each pause shorter than settle
            handle.write(data[i * step : (i + 1) * step])
            handle.flush()
            time.sleep(0.35)
            assert not daemon.statuses("img", "out") and not daemon.statuses("img", "error")
    daemon.wait_finished("img", 1)
    [status] = daemon.statuses("img", "out")
    assert status["inputs"][0]["bytes"] == len(data)
    # The daemon's output equals a one-shot conversion of the complete file.
    reference = tmp_path / "reference"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hotfolder",
            "convert",
            "-w",
            "image-convert",
            "-d",
            str(reference),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    assert (daemon.dir("img", "out") / "photo.png").read_bytes() == (
        reference / "photo.png"
    ).read_bytes()


def _check_visible_files_are_complete(
    out: Path, stop: threading.Event, seen: list[str], broken: list[str]
) -> None:
    # Runs beside the daemon: anything visible in out/ must already be whole.
    while not stop.is_set():
        for path in list(out.iterdir()) if out.is_dir() else []:
            try:
                if path.name.endswith(".status.json"):
                    json.loads(path.read_text())
                elif path.suffix == ".pdf":
                    with pikepdf.open(path) as pdf:
                        assert len(pdf.pages) == 1
                else:
                    broken.append(f"unexpected file {path.name}")
                seen.append(path.name)
            except FileNotFoundError:
                pass
            except Exception as exc:  # a partial file would land here
                broken.append(f"{path.name}: {exc}")


def test_burst_of_300_files_all_finish_exactly_once(hotfolder) -> None:
    daemon = hotfolder([{"name": "burst", "workflow": "pdf-optimize"}]).start()
    stop, seen, broken = threading.Event(), [], []
    checker = threading.Thread(
        target=_check_visible_files_are_complete,
        args=(daemon.dir("burst", "out"), stop, seen, broken),
    )
    checker.start()
    try:
        inbox = daemon.dir("burst")
        for i in range(300):
            (inbox / f"doc{i:03d}.pdf").write_bytes(pdf_bytes(text=f"document {i}"))
        daemon.wait_finished("burst", 300, timeout=240)
    finally:
        stop.set()
        checker.join()
    assert broken == []
    assert seen, "the checker saw files appear"
    out = daemon.files("burst", "out")
    expected = [f"doc{i:03d}{ext}" for i in range(300) for ext in (".pdf", ".status.json")]
    assert out == sorted(expected)
    assert daemon.files("burst", "archive") == [f"doc{i:03d}.pdf" for i in range(300)]
    assert daemon.files("burst", "error") == []
    assert daemon.files("burst", "in") == []
    assert {s["status"] for s in daemon.statuses("burst")} == {"success"}
    assert len({s["jobId"] for s in daemon.statuses("burst")}) == 300
    wait_for(lambda: not job_dirs(daemon.root / "burst/.hotfolder/jobs"), what="empty work area")


@pytest.mark.slow
def test_kill_9_during_processing_then_restart_gives_exactly_one_result_each(hotfolder) -> None:
    daemon = hotfolder([{"name": "k", "workflow": "pdf-optimize"}]).start()
    inbox = daemon.dir("k")
    total = 60
    for i in range(total):
        (inbox / f"doc{i:02d}.pdf").write_bytes(pdf_bytes(pages=40, text=f"doc {i}"))
    for _ in range(3):  # three kills at different points of the run
        done = daemon.finished("k")
        wait_for(lambda d=done: daemon.finished("k") > d, timeout=60, what="progress")
        daemon.kill()
        assert daemon.finished("k") < total, "the kill landed before the run ended"
        daemon.start()
    daemon.wait_finished("k", total, timeout=240)
    daemon.stop()
    out = daemon.files("k", "out")
    assert out == sorted(
        f"doc{i:02d}{ext}" for i in range(total) for ext in (".pdf", ".status.json")
    )
    assert daemon.files("k", "archive") == [f"doc{i:02d}.pdf" for i in range(total)]
    assert daemon.files("k", "error") == [] and daemon.files("k", "in") == []
    assert not job_dirs(daemon.root / "k/.hotfolder/jobs")
    for name in out:
        if name.endswith(".pdf"):
            with pikepdf.open(daemon.dir("k", "out") / name) as pdf:
                assert len(pdf.pages) == 40


def test_images_convert_end_to_end(hotfolder) -> None:
    daemon = hotfolder(
        [
            {
                "name": "img",
                "workflow": "image-convert",
                "options": {"IMAGE.FORMAT": "jpeg", "IMAGE.MAX_WIDTH": 16},
            }
        ]
    ).start()
    (daemon.dir("img") / "pattern.png").write_bytes(png_bytes(32, 32))
    daemon.wait_finished("img", 1)
    [status] = daemon.statuses("img")
    assert status["status"] == "success"
    assert status["outputs"][0]["name"] == "pattern.jpg"
    with Image.open(daemon.dir("img", "out") / "pattern.jpg") as image:
        assert image.format == "JPEG" and image.size == (16, 16)
