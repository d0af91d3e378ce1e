"""The dispatcher's publishing thread: journal order, batches, and a failing commit."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hotfolder.claim import claim_many
from hotfolder.config import DaemonSettings, WorkflowSettings
from hotfolder.dispatch import Dispatcher
from hotfolder.intake import Candidate, Signature
from hotfolder.journal import Journal
from hotfolder.models import FileInfo, JobOutcome, JobSpec
from hotfolder.publish import Publisher
from tests.helpers import wait_for
from tests.unit.test_cleanup import folder


class InstantPool:
    """A seam for the worker pool: every job "converts" by copying its input at once."""

    size = 2

    def __init__(self) -> None:
        self._done: list[tuple[JobSpec, JobOutcome]] = []
        self._busy = 0
        self._wake = threading.Event()

    def start(self) -> None:
        pass

    def free_slots(self) -> int:
        return self.size - self._busy

    def submit(self, spec: JobSpec, timeout: float) -> None:
        self._busy += 1
        source = Path(spec.inputs[0])
        output = Path(spec.work_dir) / "01-copy" / source.name
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(source.read_bytes())
        info = FileInfo(name=output.name, bytes=output.stat().st_size, sha256="")
        outcome = JobOutcome(
            job_id=spec.job_id, ok=True, message="Copied.", outputs=[str(output)],
            output_info=[info],
        )  # fmt: skip
        self._done.append((spec, outcome))

    def poll(self, timeout: float) -> list[tuple[JobSpec, JobOutcome]]:
        if not self._done:
            self._wake.wait(min(timeout, 0.05))
            self._wake.clear()
        done, self._done = self._done, []
        self._busy -= len(done)
        return done

    def progress(self) -> dict[str, tuple[int, int]]:
        return {}

    def wake(self) -> None:
        self._wake.set()

    def kill_job(self, job_id: str) -> bool:
        return False

    def stop(self, drain: float) -> list[tuple[JobSpec, JobOutcome]]:
        return self.poll(0)

    def alive(self) -> bool:
        return True

    def alive_count(self) -> int:
        return self.size

    def reconfigure(self, plugins: Sequence[str], workflows: Sequence[WorkflowSettings]) -> None:
        pass


class FlakyJournal(Journal):
    """A seam: the first commit of a plan fails, as a locked or full disk would make it."""

    failures = 1

    def update_many(self, changes: Any, *, durable: bool = True) -> None:
        if self.failures and any(c.get("phase") == "publishing" for _, c in changes):
            self.failures -= 1
            raise OSError(28, "No space left on device")
        super().update_many(changes, durable=durable)


def test_jobs_are_published_in_order_and_a_failed_commit_is_retried(tmp_path: Path) -> None:
    settings = folder(tmp_path)
    journal = FlakyJournal(tmp_path / "state" / "journal.sqlite3")
    publisher = Publisher(journal, {"f": settings}, keep_originals=False)
    pool = InstantPool()
    dispatcher = Dispatcher(DaemonSettings(), {"f": settings}, journal, publisher, pool)
    loop = threading.Thread(target=dispatcher.run)
    loop.start()
    try:
        names = [f"doc{n}.pdf" for n in range(6)]
        candidates = []
        for name in names:
            path = settings.input_dir / name
            path.write_bytes(b"%PDF-1.7 " + name.encode())
            candidates.append(Candidate(path, "", Signature.of(path.lstat())))
        for record in claim_many(settings, candidates, journal, publisher.workdirs):
            assert not isinstance(record, Exception)
            dispatcher.enqueue(record)
        # The first batch's plan commit fails: those jobs wait, then are published.
        assert dispatcher.wait_finished(len(names), timeout=30)
        assert journal.failures == 0
        for name in names:
            assert (settings.output_dir / name).read_bytes() == b"%PDF-1.7 " + name.encode()
            assert (settings.output_dir / name.replace(".pdf", ".status.json")).is_file()
        rows = journal.recent(limit=100)
        assert {(row.phase, row.state, row.attempts) for row in rows} == {("done", "success", 1)}
        # The journal holds each job's status, also for those whose first plan failed.
        assert sorted(row.status()["name"] for row in rows if row.status()) == [
            name.removesuffix(".pdf") for name in names
        ]
        wait_for(lambda: not any(dispatcher.holds(row.job_id) for row in rows))
    finally:
        dispatcher.stop()
        loop.join(10)
        publisher.close()
        journal.close()
    assert not loop.is_alive()


class AppendingPool(InstantPool):
    """A seam: a writer appends to the first attempt's input while it converts."""

    def __init__(self, tail: bytes) -> None:
        super().__init__()
        self.tail = tail
        self.attempts = 0

    def submit(self, spec: JobSpec, timeout: float) -> None:
        self.attempts += 1
        if self.attempts == 1:
            with Path(spec.inputs[0]).open("ab") as handle:
                handle.write(self.tail)
        super().submit(spec, timeout)


class Heard:
    """A listener that records the changed-input hook."""

    def __init__(self) -> None:
        self.changed: list[str] = []

    def job_input_changed(self, record: Any) -> None:
        self.changed.append(record.job_id)


def test_an_input_changed_during_its_conversion_settles_and_runs_again(tmp_path: Path) -> None:
    settings = folder(tmp_path)
    journal = Journal(tmp_path / "state" / "journal.sqlite3")
    publisher = Publisher(journal, {"f": settings}, keep_originals=False)
    pool = AppendingPool(b" and the rest")
    dispatcher = Dispatcher(DaemonSettings(retries=0), {"f": settings}, journal, publisher, pool)
    heard = Heard()
    dispatcher.listeners.append(heard)  # type: ignore[arg-type]
    loop = threading.Thread(target=dispatcher.run)
    loop.start()
    try:
        path = settings.input_dir / "scan.pdf"
        path.write_bytes(b"%PDF-1.7 first half")
        candidate = Candidate(path, "", Signature.of(path.lstat()))
        [record] = claim_many(settings, [candidate], journal, publisher.workdirs)
        assert not isinstance(record, Exception)
        dispatcher.enqueue(record)
        assert dispatcher.wait_finished(1, timeout=30)
        # Not published half-written, not failed, although retries = 0: run again.
        output = settings.output_dir / "scan.pdf"
        assert output.read_bytes() == b"%PDF-1.7 first half and the rest"
        row = journal.get(record.job_id)
        assert row is not None and (row.state, row.attempts) == ("success", 2)
        assert heard.changed == [record.job_id]
        assert list(settings.error_dir.iterdir()) == []
    finally:
        dispatcher.stop()
        loop.join(10)
        publisher.close()
        journal.close()


class ChmodPool(InstantPool):
    """A seam: every attempt changes its input's ctime only, as a step linking it would."""

    def submit(self, spec: JobSpec, timeout: float) -> None:
        source = Path(spec.inputs[0])
        source.chmod(source.stat().st_mode ^ 0o040)
        super().submit(spec, timeout)


def test_a_conversion_that_touches_only_its_inputs_ctime_ends_after_one_more_try(
    tmp_path: Path,
) -> None:
    settings = folder(tmp_path).model_copy(update={"settle": 0.2})
    journal = Journal(tmp_path / "state" / "journal.sqlite3")
    publisher = Publisher(journal, {"f": settings}, keep_originals=False)
    dispatcher = Dispatcher(DaemonSettings(), {"f": settings}, journal, publisher, ChmodPool())
    loop = threading.Thread(target=dispatcher.run)
    loop.start()
    try:
        path = settings.input_dir / "doc.pdf"
        path.write_bytes(b"%PDF-1.7 whole")
        candidate = Candidate(path, "", Signature.of(path.lstat()))
        [record] = claim_many(settings, [candidate], journal, publisher.workdirs)
        assert not isinstance(record, Exception)
        dispatcher.enqueue(record)
        assert dispatcher.wait_finished(1, timeout=30)  # no endless settling
        row = journal.get(record.job_id)
        assert row is not None and (row.state, row.attempts) == ("success", 2)
    finally:
        dispatcher.stop()
        loop.join(10)
        publisher.close()
        journal.close()
