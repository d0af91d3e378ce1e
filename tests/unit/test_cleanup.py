"""Cleanup: each kind expires on its own retention; dry runs change nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hotfolder.cleanup import Cleanup, expired_files, orphaned_work_dirs, stuck_jobs
from hotfolder.config import CleanupSettings, FolderSettings
from hotfolder.journal import JobRecord, Journal

DAY = 86400.0


def folder(root: Path) -> FolderSettings:
    settings = FolderSettings(name="f", path=root, workflow="pdf-optimize")
    for directory in (settings.input_dir, settings.output_dir, settings.error_dir):
        directory.mkdir(parents=True, exist_ok=True)
    assert settings.archive_dir is not None
    settings.archive_dir.mkdir(parents=True, exist_ok=True)
    return settings


def record(job_id: str, phase: str, finished: float, **extra: object) -> JobRecord:
    base = {
        "job_id": job_id,
        "folder": "f",
        "state": "success" if phase == "done" else "pending",
        "phase": phase,
        "name": job_id,
        "rel_dir": "",
        "input_name": f"{job_id}.pdf",
        "source": "",
        "work_dir": "",
        "workflow": "pdf-optimize",
        "profile": "default",
        "created_at": finished,
        "finished_at": finished if phase == "done" else None,
    }
    return JobRecord(**{**base, **extra})  # type: ignore[arg-type]


def test_expired_files_use_arrival_time_and_separate_status_files(tmp_path: Path) -> None:
    """ctime decides; status files and outputs are separate kinds; 0 keeps forever."""
    (tmp_path / "a.pdf").write_text("x")
    (tmp_path / "a.status.json").write_text("{}")
    os.utime(tmp_path / "a.pdf", (0, 0))  # an old mtime: ctime still says "just now"
    now = time.time()
    assert expired_files(tmp_path, now, DAY, status=False) == []
    later = now + 2 * DAY
    assert expired_files(tmp_path, later, DAY, status=False) == [tmp_path / "a.pdf"]
    assert expired_files(tmp_path, later, DAY, status=True) == [tmp_path / "a.status.json"]
    assert expired_files(tmp_path, later, 0, status=False) == []


def test_orphans_and_stuck_jobs(tmp_path: Path) -> None:
    """Unknown work dirs past the grace are orphans; lost queued rows past timeout are stuck."""
    settings = folder(tmp_path)
    jobs = settings.work_dir / "jobs"
    (jobs / "KNOWN").mkdir(parents=True)
    (jobs / "LOST").mkdir()
    now = time.time() + 2 * 3600
    found = orphaned_work_dirs([settings], {"KNOWN"}.__contains__, now, 3600)
    assert [path.name for _, path in found] == ["LOST"]
    rows = [
        record("Q", "queued", now - 1000),
        record("R", "running", now - 10, started_at=now - 10),
        record("H", "running", now - 1000),
    ]
    stuck = stuck_jobs(rows, {"H"}.__contains__, {"f": 600}, now)
    assert [r.job_id for r in stuck] == ["Q"]


def test_run_and_dry_run(tmp_path: Path) -> None:
    """A dry run lists and keeps; a real run removes, reclaims orphans' inputs, reports."""
    settings = folder(tmp_path / "f")
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.insert(record("OLD", "done", 1000.0))
    journal.insert(record("NEW", "done", time.time()))
    assert settings.archive_dir is not None
    (settings.archive_dir / "kept.pdf").write_text("original")
    orphan = settings.work_dir / "jobs" / "ORPHAN" / "input"
    orphan.mkdir(parents=True)
    (orphan / "lost.pdf").write_text("user file")
    os.utime(orphan.parent, (0, 0))
    cfg = CleanupSettings(journal_retention=DAY, archive_retention=DAY, orphan_grace=60)
    reports = []
    cleanup = Cleanup(
        cfg,
        {"f": settings},
        journal,
        clock=lambda: time.time() + 2 * DAY,
        on_report=reports.append,
    )
    dry = cleanup.run(dry_run=True)
    assert dry.counts()["journal_rows"] == 2 and dry.counts()["archived"] == 1
    assert journal.get("OLD") is not None and (settings.archive_dir / "kept.pdf").exists()
    assert reports == []
    cleanup = Cleanup(cfg, {"f": settings}, journal, on_report=reports.append)
    done = cleanup.run()
    assert done.items["journal_rows"] == ["OLD"] and journal.get("NEW") is not None
    assert done.counts()["archived"] == 0  # arrived just now
    # The orphan's ctime is recent (utime changes it), so it waits for its grace.
    assert done.counts()["orphaned_work"] == 0
    late = Cleanup(
        cfg, {"f": settings}, journal, clock=lambda: time.time() + 120, on_report=reports.append
    ).run()
    assert late.counts()["orphaned_work"] == 1
    assert (settings.input_dir / "lost.pdf").read_text() == "user file"
    assert not (settings.work_dir / "jobs" / "ORPHAN").exists()
    assert len(reports) == 2
    journal.close()
