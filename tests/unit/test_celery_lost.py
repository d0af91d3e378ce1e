"""Lost-worker bookkeeping without a broker: silence, holders, resending, late results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hotfolder.celery_events import FORGET_AFTER, STALL, WorkerBook
from hotfolder.celery_executor import CeleryExecutor
from hotfolder.celery_lost import AbandonedTasks
from hotfolder.celery_settings import CelerySettings
from hotfolder.models import ConversionSpec, JobOutcome, JobSpec

NOWHERE = "redis://127.0.0.1:9/0"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def listen(clock: Clock, book: WorkerBook, seconds: float) -> None:
    """Let ``seconds`` pass with the event loop turning every half second, as it does."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now = min(end, clock.now + 0.5)
        book.turn()


def beat(book: WorkerBook, name: str, kind: str = "worker-heartbeat", **fields: Any) -> None:
    book.seen({"type": kind, "hostname": name, **fields})


def test_a_worker_is_lost_after_its_silence_only_while_the_daemon_listens() -> None:
    """Silence counts from the last event, and only while subscribed and not stalled."""
    clock = Clock()
    book = WorkerBook("hf1.", 10, clock=clock)
    beat(book, "w1@a")
    clock.now += 30
    assert book.silent() == [], "not listening yet: nobody can be declared lost"
    book.listening()
    beat(book, "w1@a")
    listen(clock, book, 9.5)
    assert book.silent() == []
    listen(clock, book, 1)
    [lost] = book.silent()
    assert lost.name == "w1@a" and lost.host == "a"
    assert book.silent() == [], "declared once"
    assert [w.lost for w in book.workers()] == [True]
    beat(book, "w1@a")  # it comes back
    assert [w.lost for w in book.workers()] == [False]
    listen(clock, book, 11)
    assert [w.name for w in book.silent()] == ["w1@a"]
    listen(clock, book, FORGET_AFTER)
    assert book.silent() == [] and book.workers() == [], "forgotten after an hour"


def test_a_stall_of_the_daemon_itself_gives_every_worker_a_fresh_grace() -> None:
    """No turn of the event loop for a while: the silence was ours, not the workers'."""
    clock = Clock()
    book = WorkerBook("hf1.", 10, clock=clock)
    book.listening()
    beat(book, "w1@a")
    clock.now += STALL + 20  # the daemon was frozen: no turn, no event
    assert book.silent() == []
    book.turn()
    assert book.silent() == []
    listen(clock, book, 10)
    assert [w.name for w in book.silent()] == ["w1@a"]
    book.deaf()
    beat(book, "w2@b")
    clock.now += 60
    assert book.silent() == [], "without the broker, silence proves nothing"


def test_holders_are_tracked_for_our_tasks_only_and_goodbyes_are_reported_once() -> None:
    """task-received/started name the holder of our tasks; worker-offline ends a worker."""
    clock = Clock()
    book = WorkerBook("hf1.", 5, clock=clock)
    book.listening()
    beat(book, "w1@a", "task-received", uuid="hf1.J1.1")
    beat(book, "w1@a", "task-received", uuid="other.J9.1")
    beat(book, "w2@b", "task-started", uuid="hf1.J2.1")
    assert book.holder("hf1.J1.1") == "w1@a" and book.holder("other.J9.1") is None
    beat(book, "w2@b", "task-received", uuid="hf1.J1.1")  # redelivered elsewhere
    assert book.holder("hf1.J1.1") == "w2@b"
    book.release("hf1.J1.1")
    assert book.holder("hf1.J1.1") is None
    beat(book, "w1@a", "worker-offline")
    listen(clock, book, 6)
    silent = {w.name: w.offline for w in book.silent()}
    assert silent == {"w1@a": True, "w2@b": False}
    assert [w.name for w in book.workers()] == ["w2@b"]


def test_a_late_result_removes_only_the_abandoned_tasks_directories(tmp_path: Path) -> None:
    """The attempt being waited for converts in its own directory, which is never touched."""
    work = tmp_path / "jobs" / "J1" / "work"
    for name in ("hf1.J1.1.1", "hf1.J1.1.2", "hf1.J1.2.1", "hf1.J1.10.1"):
        (work / name).mkdir(parents=True)
        (work / name / "out.pdf").write_bytes(b"x")
    abandoned = AbandonedTasks(keep=100)
    abandoned.add("hf1.J1.1", "J1", str(work), "w1@a")
    assert "hf1.J1.1" in abandoned and abandoned.ids() == ["hf1.J1.1"]
    abandoned.discard("hf1.J1.1", "SUCCESS")
    assert sorted(p.name for p in work.iterdir()) == ["hf1.J1.10.1", "hf1.J1.2.1"]
    assert "hf1.J1.1" not in abandoned


def _spec(job_id: str, work_dir: str = "/x/work") -> JobSpec:
    return JobSpec(
        job_id=job_id,
        job_name=job_id,
        conversions=[ConversionSpec(workflow="image-convert")],
        inputs=["/x/in.png"],
        work_dir=work_dir,
    )


@pytest.fixture
def lossy(monkeypatch: pytest.MonkeyPatch) -> tuple[CeleryExecutor, Clock, dict[str, list[Any]]]:
    """An executor on no broker: sends, revokes and new attempts are recorded."""
    clock = Clock()
    settings = CelerySettings(broker=NOWHERE, worker_lost_after=5, max_deliveries=2)
    pool = CeleryExecutor(settings, clock=clock)
    calls: dict[str, list[Any]] = {"sent": [], "revoked": [], "attempts": []}
    monkeypatch.setattr(pool._app, "send_task", lambda name, **kw: calls["sent"].append(kw))
    monkeypatch.setattr(pool._app.control, "revoke", lambda ids, **kw: calls["revoked"].extend(ids))
    monkeypatch.setattr(pool._watcher, "fetch", lambda ids: [])
    pool.on_attempt = calls["attempts"].append
    pool._book.listening()
    return pool, clock, calls


def test_the_jobs_of_a_lost_worker_are_sent_again_and_its_late_result_is_dropped(
    lossy, tmp_path: Path
) -> None:
    """New task id, new attempt, old task revoked; the old task's result is discarded."""
    pool, clock, calls = lossy
    work = tmp_path / "work"
    pool.submit(_spec("A", str(work)), 30.0)
    pool.submit(_spec("B"), 30.0)
    first_a, first_b = (call["task_id"] for call in calls["sent"])
    assert calls["sent"][0]["argsrepr"] == "[A]", "events and worker logs carry no options"
    beat(pool._book, "w1@a", "task-started", uuid=first_a)
    beat(pool._book, "w2@b", "task-started", uuid=first_b)
    listen(clock, pool._book, 3)
    beat(pool._book, "w2@b")
    listen(clock, pool._book, 2.5)
    assert pool.poll(0) == []
    assert calls["revoked"] == [first_a] and calls["attempts"] == ["A"]
    second_a = calls["sent"][-1]["task_id"]
    assert second_a != first_a and second_a.endswith(".A.3")
    assert pool.workers_lost == 1 and sorted(pool.running()) == ["A", "B"]
    (work / f"{first_a}.1").mkdir(parents=True)
    late = JobOutcome(job_id="A", ok=True, message="late").model_dump(mode="json")
    pool._deliver({"task_id": first_a, "status": "SUCCESS", "result": late})
    assert pool.poll(0) == [], "the late result is not the attempt waited for"
    assert not (work / f"{first_a}.1").exists()
    ok = JobOutcome(job_id="A", ok=True, message="done").model_dump(mode="json")
    pool._deliver({"task_id": second_a, "status": "SUCCESS", "result": ok})
    [(spec, outcome)] = pool.poll(0)
    assert spec.job_id == "A" and outcome.message == "done"


def test_a_job_whose_worker_is_lost_max_deliveries_times_fails_worker_crashed(lossy) -> None:
    """A file that takes its machine down every time must not go round forever."""
    pool, clock, calls = lossy
    pool.submit(_spec("A"), 30.0)
    for worker in ("w1@a", "w2@b"):
        beat(pool._book, worker, "task-received", uuid=calls["sent"][-1]["task_id"])
        listen(clock, pool._book, 6)
        results = pool.poll(0)
    [(_, outcome)] = results
    assert outcome.error is not None and outcome.error.code == "worker_crashed"
    assert "lost 2 times" in outcome.message
    assert calls["attempts"] == ["A"] and pool.running() == []
