"""Stability tracking and filters, driven by a fake clock."""

from __future__ import annotations

import os
import threading
import unicodedata
from pathlib import Path

import pytest

from hotfolder.config import BUILTIN_EXCLUDES, FolderSettings
from hotfolder.intake import FolderIntake, Hint, NameFilter, Signature, StabilityTracker
from hotfolder.writers import WriterProbe


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sig(size: int, mtime: int = 1) -> Signature:
    return Signature(dev=1, ino=2, size=size, mtime_ns=mtime, ctime_ns=mtime, mode=0o100644)


def test_file_is_due_only_after_settle_seconds_unchanged() -> None:
    tracker = StabilityTracker(settle=2.0)
    path = Path("/in/a.pdf")
    tracker.observe(path, sig(10), now=0.0)
    assert tracker.due(1.9) == []
    tracker.observe(path, sig(20, 2), now=1.9)  # grew: the clock restarts
    assert tracker.due(2.0) == []
    assert tracker.due(3.8) == []
    assert tracker.due(3.9) == [(path, sig(20, 2))]


def test_same_signature_seen_again_does_not_restart_the_clock() -> None:
    tracker = StabilityTracker(settle=2.0)
    path = Path("/in/a.pdf")
    tracker.observe(path, sig(10), now=0.0)
    tracker.observe(path, sig(10), now=1.5)
    assert tracker.due(2.0) == [(path, sig(10))]


def test_forgotten_file_is_never_due() -> None:
    tracker = StabilityTracker(settle=1.0)
    tracker.observe(Path("/in/a"), sig(1), now=0.0)
    tracker.forget(Path("/in/a"))
    assert tracker.due(10.0) == []


def test_builtin_excludes_cover_junk_and_temp_names() -> None:
    names = NameFilter([], BUILTIN_EXCLUDES)
    for junk in [
        ".DS_Store",
        "Thumbs.db",
        "._invoice.pdf",
        "~$report.docx",
        "a.pdf.part",
        "x.tmp",
        "dl.crdownload",
        ".~lock.report.odt#",
        "desktop.ini",
    ]:
        assert not names.accepts(junk), junk
    assert names.accepts("invoice.pdf")


def test_include_globs_are_case_insensitive() -> None:
    names = NameFilter(["*.pdf"], [])
    assert names.accepts("SCAN.PDF")
    assert not names.accepts("scan.jpg")


def _intake(tmp_path: Path, clock: FakeClock, **extra: object) -> FolderIntake:
    folder = FolderSettings(name="t", path=tmp_path, workflow="pdf-optimize", settle=2, **extra)
    folder.input_dir.mkdir(parents=True)
    return FolderIntake(folder, clock, threading.Event())


def test_growing_file_waits_and_settled_file_is_ready_once(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    path = intake.root / "a.pdf"
    path.write_bytes(b"x" * 10)
    intake.hint(path)
    intake.tick()
    clock.now += 1.5
    with path.open("ab") as handle:
        handle.write(b"more")
    intake.hint(path)
    intake.tick()
    clock.now += 1.9
    intake.tick()
    assert intake.ready_count() == 0
    clock.now += 0.2
    intake.tick()
    assert intake.ready_count() == 1
    intake.hint(path)  # a stray event for a ready file must not queue it twice
    intake.tick()
    taken = intake.take(10)
    assert [c.path for c in taken] == [path]
    assert intake.take(10) == []


def test_zero_byte_file_waits_too(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    (intake.root / "empty.pdf").touch()
    intake.scan()
    intake.tick()
    assert intake.ready_count() == 0
    clock.now += 2.0
    intake.tick()
    assert intake.ready_count() == 1


def test_symlink_and_fifo_are_ready_at_once_as_rejected(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    (intake.root / "link.pdf").symlink_to("/etc/passwd")
    os.mkfifo(intake.root / "pipe.pdf")
    intake.scan()
    intake.tick()
    taken = intake.take(10)
    assert sorted(c.path.name for c in taken) == ["link.pdf", "pipe.pdf"]
    assert all(c.rejected for c in taken)


def test_file_changed_after_settling_is_not_taken(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    path = intake.root / "a.pdf"
    path.write_bytes(b"1")
    intake.scan()
    intake.tick()
    clock.now += 2.0
    intake.tick()
    assert intake.ready_count() == 1
    path.write_bytes(b"12")
    assert intake.take(10) == []
    assert intake.pending_count() == 1


def test_recursive_intake_finds_files_in_subfolders(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock, recursive=True)
    sub = intake.root / "2026" / "jan"
    sub.mkdir(parents=True)
    (sub / "a.pdf").write_bytes(b"1")
    (intake.root / "@eaDir").mkdir()
    (intake.root / "@eaDir" / "b.pdf").write_bytes(b"1")
    intake.scan()
    intake.tick()
    clock.now += 2.0
    intake.tick()
    taken = intake.take(10)
    assert [(c.rel_dir, c.path.name) for c in taken] == [("2026/jan", "a.pdf")]


def test_non_recursive_intake_ignores_subfolders(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    (intake.root / "sub").mkdir()
    (intake.root / "sub" / "a.pdf").write_bytes(b"1")
    intake.scan()
    intake.hint(intake.root / "sub" / "a.pdf")
    intake.tick()
    clock.now += 5
    intake.tick()
    assert intake.ready_count() == 0


def test_folder_in_a_non_recursive_input_is_logged_once_never_taken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    (intake.root / "x.pdf").mkdir()
    (intake.root / "x.pdf" / "a.pdf").write_bytes(b"1")
    for _ in range(3):
        intake.scan()
        intake.tick()
        clock.now += 5
    assert intake.ready_count() == 0
    assert [r.getMessage() for r in caplog.records].count(
        f"folder 'x.pdf' in {intake.root} is ignored: only files are jobs here "
        "(recursive = true takes the files inside folders)"
    ) == 1


def test_a_file_written_since_its_last_close_is_never_ready_however_long_the_pause(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)  # no kernel probe: events alone decide here
    path = intake.root / "scan.pdf"
    path.write_bytes(b"page one")
    intake.hint(path, Hint.WRITTEN)
    intake.tick()
    for _ in range(10):  # ten times settle without a change: still being written
        clock.now += 2.1
        intake.tick()
        assert intake.ready_count() == 0
    intake.hint(path, Hint.CLOSED)
    intake.tick()
    clock.now += 2.1
    intake.tick()
    assert [c.path for c in intake.take(10)] == [path]


def test_the_kernel_overrules_a_missed_close_event(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    intake.writers = WriterProbe("f", intake.root)
    path = intake.root / "a.pdf"
    path.write_bytes(b"done")
    intake.hint(path, Hint.WRITTEN)  # its close event was lost
    intake.tick()
    clock.now += 2.1
    intake.tick()
    assert [c.path for c in intake.take(10)] == [path]  # nobody holds it: taken


def test_a_file_held_open_for_writing_is_not_taken(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    intake.writers = WriterProbe("f", intake.root)
    path = intake.root / "held.pdf"
    with path.open("wb") as handle:
        handle.write(b"complete, but not closed")
        handle.flush()
        intake.hint(path)  # found by a scan: no events to go by
        intake.tick()
        clock.now += 2.1
        intake.tick()
        assert intake.take(10) == []
        assert path in intake.tracker  # back to settling, not dropped
    clock.now += 2.1
    intake.tick()
    assert [c.path for c in intake.take(10)] == [path]


def test_files_kept_out_by_the_folders_rules_are_reported_junk_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock, include=["*.pdf"])
    for name in ("notes.txt", "~$lock.pdf", "a.job.json"):
        (intake.root / name).write_bytes(b"{}")
    intake.scan()
    with caplog.at_level("WARNING"):
        intake.tick()
        intake.scan()
        intake.tick()
    assert intake.ignored_files() == [{"name": "notes.txt", "rule": "include = ['*.pdf']"}]
    assert sum("notes.txt" in r.getMessage() for r in caplog.records) == 1
    clock.now += 2.1
    intake.tick()
    # A manifest is a manifest whatever include says; junk is never taken nor reported.
    assert [c.path.name for c in intake.take(10)] == ["a.job.json"]
    (intake.root / "notes.txt").unlink()
    intake.scan()
    assert intake.ignored_count() == 0


def test_manifests_required_reports_files_waiting_for_a_manifest(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock, manifests="required")
    (intake.root / "a.pdf").write_bytes(b"x")
    intake.scan()
    intake.tick()
    [entry] = intake.ignored_files()
    assert entry["name"] == "a.pdf" and "manifests = required" in entry["rule"]
    intake.reserve([intake.root / "a.pdf"])  # a manifest names it now
    assert intake.ignored_count() == 0


def test_reservations_hold_across_unicode_normalisation(tmp_path: Path) -> None:
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    nfd = intake.root / unicodedata.normalize("NFD", "März.pdf")
    nfd.write_bytes(b"x")
    intake.reserve([intake.root / unicodedata.normalize("NFC", "März.pdf")])
    intake.scan()
    intake.tick()
    clock.now += 2.1
    intake.tick()
    assert intake.take(10) == []
