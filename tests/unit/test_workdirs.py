"""Work dirs: recycled after a job, never deleted from under another taker; batched
journal commits and publishing of several jobs at once."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hotfolder.claim import claim_many
from hotfolder.intake import Candidate, Signature
from hotfolder.journal import Journal
from hotfolder.models import FileInfo, JobOutcome, JobState
from hotfolder.publish import Publisher
from hotfolder.workdirs import SPARE_PREFIX, WorkDirs, is_internal, remove
from tests.helpers import wait_for
from tests.unit.test_cleanup import folder, record


def spares(jobs: Path) -> list[Path]:
    return sorted(p for p in jobs.iterdir() if p.name.startswith(SPARE_PREFIX))


def test_a_finished_work_dir_is_emptied_and_taken_by_the_next_job(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    dirs = WorkDirs()
    try:
        first = jobs / "A"
        dirs.create(first)
        step = first / "work" / "01-optimize"
        step.mkdir(parents=True)
        (step / "left.pdf").write_text("x")
        (step / "deeper").mkdir()
        (step / "deeper" / "tmp").write_text("x")
        dirs.discard(first)
        assert not first.exists()
        spare = wait_for(lambda: spares(jobs), what="a spare")[0]
        # Emptied, with its directories kept (a directory below a step dir is not).
        assert sorted(str(p.relative_to(spare)) for p in spare.rglob("*")) == [
            "input",
            "work",
            "work/01-optimize",
        ]
        second = jobs / "B"
        dirs.create(second)
        assert spares(jobs) == []
        assert (second / "input").is_dir() and (second / "work" / "01-optimize").is_dir()
    finally:
        dirs.close()


def test_close_removes_spares_and_a_taken_spare_is_never_removed(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    dirs = WorkDirs()
    dirs.create(jobs / "A")
    dirs.discard(jobs / "A")
    spare = wait_for(lambda: spares(jobs), what="a spare")[0]
    # Another daemon sharing the area took it (a rename): removing it must fail
    # quietly and leave the taker's files alone.
    taken = jobs / "TAKEN"
    spare.rename(taken)
    (taken / "input" / "user.pdf").write_text("precious")
    remove(spare)
    assert (taken / "input" / "user.pdf").read_text() == "precious"
    dirs.create(jobs / "C")  # its spare is gone: made anew
    assert (jobs / "C" / "input").is_dir()
    dirs.discard(jobs / "C")
    dirs.close()
    assert [p.name for p in jobs.iterdir()] == ["TAKEN"]
    assert is_internal(".spare-x") and is_internal(".trash-x") and not is_internal("01ABC")


def test_several_jobs_share_one_commit_and_running_skips_its_fsync(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.insert_many([record("A", "claiming", 1.0), record("B", "claiming", 1.0)])
    journal.update_many([("A", {"phase": "queued"}), ("B", {"phase": "queued"})])
    journal.update("A", durable=False, phase="running")
    # The journal is durable again after a non-durable commit.
    synchronous = journal._db.execute("PRAGMA synchronous").fetchone()[0]
    assert synchronous == 2  # FULL
    journal.close()
    # A second connection (another process, e.g. `hotfolder status`) sees all of it.
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    assert dict(db.execute("SELECT job_id, phase FROM jobs").fetchall()) == {
        "A": "running",
        "B": "queued",
    }


def test_two_jobs_with_one_name_in_one_batch_get_distinct_names(tmp_path: Path) -> None:
    settings = folder(tmp_path)
    journal = Journal(tmp_path / "state" / "journal.sqlite3")
    publisher = Publisher(journal, {"f": settings}, keep_originals=False)
    try:
        items = []
        for n in (1, 2):
            sub = tmp_path / f"drop{n}"
            sub.mkdir()
            (sub / "report.pdf").write_bytes(b"%PDF-1.7 original")
            signature = Signature.of((sub / "report.pdf").lstat())
            claimed = claim_many(
                settings,
                [Candidate(sub / "report.pdf", "", signature)],
                journal,
                publisher.workdirs,
            )[0]
            assert not isinstance(claimed, Exception)
            output = Path(claimed.work_dir) / "work" / "report.pdf"
            output.parent.mkdir()
            output.write_bytes(b"%PDF-1.7 converted")
            outcome = JobOutcome(
                job_id=claimed.job_id,
                ok=True,
                message="done",
                outputs=[str(output)],
                output_info=[FileInfo(name="report.pdf", bytes=18, sha256="")],
            )
            items.append(publisher.succeeded(claimed, outcome))
        results = publisher.publish(items)
        names = sorted(p.name for p in settings.output_dir.iterdir())
        assert names == [
            "report.pdf",
            "report.status.json",
            "report_2.pdf",
            "report_2.status.json",
        ]
        for item, status in zip(items, results, strict=True):
            assert not isinstance(status, OSError)
            assert status.status is JobState.SUCCESS
            row = journal.get(item.record.job_id)
            assert row is not None and row.phase == "done"
            on_disk = json.loads((settings.output_dir / f"{status.name}.status.json").read_text())
            assert on_disk["jobId"] == item.record.job_id
    finally:
        publisher.close()
        journal.close()
