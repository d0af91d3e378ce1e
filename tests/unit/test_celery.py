"""The Celery executor's parts that need no broker: settings, deliveries, outcome mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hotfolder.celery_app import TASK_NAME, execute, make_app
from hotfolder.celery_executor import CeleryExecutor
from hotfolder.celery_settings import CelerySettings
from hotfolder.config import load_settings
from hotfolder.errors import ConfigError
from hotfolder.models import ConversionSpec, JobOutcome, JobSpec
from hotfolder.workflows import runner
from tests.samples import png_bytes

#: Nothing listens here: nothing in these tests may reach a broker.
NOWHERE = "redis://127.0.0.1:9/0"


def test_settings_defaults_and_checks() -> None:
    """Redis on loopback by default; RabbitMQ needs a Redis result backend; no http URLs."""
    default = CelerySettings()
    assert default.backend_url == default.broker == "redis://127.0.0.1:6379/0"
    rabbit = CelerySettings(broker="amqp://hf@mq/hotfolder", result_backend="redis://r:6379/1")
    assert rabbit.backend_url == "redis://r:6379/1"
    for bad in (
        {"broker": "amqp://hf@mq/hotfolder"},
        {"broker": "http://example.com"},
        {"result_backend": "rpc://"},
        {"max_in_flight": 0},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            CelerySettings.model_validate(bad)
    assert "secret" not in repr(CelerySettings(broker="redis://:secret@h:6379/0"))


def test_a_folder_timeout_must_end_before_the_broker_redelivers(tmp_path: Path) -> None:
    """With the Celery executor, a job may not outlive the visibility timeout."""
    config = tmp_path / "hotfolder.toml"
    folder = '[[folders]]\nname = "a"\npath = "/srv/a"\nworkflow = "pdf-optimize"\ntimeout = 100\n'
    config.write_text(
        '[daemon]\nexecutor = "celery"\n[celery]\nvisibility_timeout = 100\n' + folder
    )
    with pytest.raises(ConfigError, match=r"folders\[0\]\(a\)\.timeout: .*visibility_timeout"):
        load_settings(config)
    config.write_text("[celery]\nvisibility_timeout = 100\n" + folder)
    assert load_settings(config).celery.visibility_timeout == 100


def test_app_acknowledges_late_and_speaks_json_only() -> None:
    """A lost worker's job goes back to the queue; nothing but JSON is accepted."""
    settings = CelerySettings(broker=NOWHERE, visibility_timeout=900, queue="q1")
    conf = make_app(settings, max_jobs_per_worker=50).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 900
    assert conf.task_default_queue == "q1" and conf.worker_max_tasks_per_child == 50


def _job(tmp_path: Path) -> JobSpec:
    """A claimed image-convert job laid out as the daemon lays it out."""
    job_dir = tmp_path / ".hotfolder" / "jobs" / "J1"
    (job_dir / "input").mkdir(parents=True)
    source = job_dir / "input" / "pic.png"
    source.write_bytes(png_bytes(16, 16))
    return JobSpec(
        job_id="J1",
        job_name="pic",
        conversions=[ConversionSpec(workflow="image-convert")],
        inputs=[str(source)],
        work_dir=str(job_dir / "work"),
    )


def _ignore(outcome: dict[str, Any]) -> None:
    """Where a worker out of memory would store its verdict (not reached here)."""


def _run(spec: JobSpec, task_id: str = "t1", deliveries: int = 3, **kw: Any) -> JobOutcome:
    done = kw.get("done", False)
    data = execute(spec.model_dump(mode="json"), task_id, deliveries, lambda: done, _ignore)
    return JobOutcome.model_validate(data)


def test_each_delivery_converts_in_a_fresh_directory_of_its_own(tmp_path: Path) -> None:
    """A redelivered task never writes where an earlier delivery wrote."""
    spec = _job(tmp_path)
    first, second = _run(spec), _run(spec)
    assert first.ok and second.ok
    work = Path(spec.work_dir)
    assert Path(first.outputs[0]).is_relative_to(work / "t1.1")
    assert Path(second.outputs[0]).is_relative_to(work / "t1.2")
    assert Path(first.outputs[0]).read_bytes() == Path(second.outputs[0]).read_bytes()


def test_a_file_that_keeps_killing_its_worker_fails_worker_crashed(tmp_path: Path) -> None:
    """After max_deliveries lost deliveries the next one gives up instead of converting."""
    spec = _job(tmp_path)
    for n in (1, 2):  # two deliveries whose workers died: their directories remain
        (Path(spec.work_dir) / f"t1.{n}").mkdir(parents=True)
    outcome = _run(spec, deliveries=2)
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.code == "worker_crashed"
    assert "lost 2 times" in outcome.message


def test_deliveries_of_finished_jobs_do_nothing(tmp_path: Path) -> None:
    """A stored result or a published job (inputs gone) means: touch nothing."""
    spec = _job(tmp_path)
    assert not _run(spec, done=True).ok
    assert not Path(spec.work_dir).exists()
    job_dir = Path(spec.work_dir).parent
    (job_dir / "input" / "pic.png").unlink()
    (job_dir / "input").rmdir()
    job_dir.rmdir()
    stale = _run(spec)
    assert not stale.ok and "finished by another delivery" in stale.message
    assert not job_dir.exists(), "a stray delivery must not re-create the job's directory"


def test_a_worker_that_does_not_see_the_folders_says_so(tmp_path: Path) -> None:
    """No work area at all: the shared storage is not mounted on that worker."""
    spec = _job(tmp_path).model_copy(update={"work_dir": str(tmp_path / "elsewhere/jobs/J1/work")})
    outcome = _run(spec)
    assert outcome.error is not None and outcome.error.code == "io_error"
    assert "mounts at the same path" in outcome.message


def test_a_run_that_ends_after_publication_removes_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon published another delivery's result meanwhile: nothing may linger."""
    spec = _job(tmp_path)
    job_dir = Path(spec.work_dir).parent
    real = runner.run_job

    def published_meanwhile(job: JobSpec) -> JobOutcome:
        outcome = real(job)
        for path in (job_dir / "input").iterdir():
            path.unlink()
        (job_dir / "input").rmdir()
        return outcome

    monkeypatch.setattr(runner, "run_job", published_meanwhile)
    assert _run(spec).ok
    assert not job_dir.exists()


class _Sent:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, name: str, **kwargs: Any) -> None:
        self.calls.append({"name": name, **kwargs})


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch) -> tuple[CeleryExecutor, _Sent]:
    pool = CeleryExecutor(CelerySettings(broker=NOWHERE, max_in_flight=2, queue="q"))
    sent = _Sent()
    monkeypatch.setattr(pool._app, "send_task", sent)
    return pool, sent


def _spec(job_id: str) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        job_name=job_id,
        conversions=[ConversionSpec(workflow="image-convert")],
        inputs=["/x/in.png"],
        work_dir="/x/work",
    )


def test_submit_sends_the_spec_as_json_with_the_folder_timeout(executor) -> None:
    """One task per job on the configured queue, its hard limit the folder's timeout."""
    pool, sent = executor
    pool.submit(_spec("A"), 42.0)
    [call] = sent.calls
    assert call["name"] == TASK_NAME and call["queue"] == "q" and call["time_limit"] == 42.0
    assert call["args"] == [_spec("A").model_dump(mode="json")]
    assert call["task_id"].endswith(".A.1")
    assert pool.free_slots() == 1 and pool.running() == ["A"]


def test_results_map_to_outcomes_and_duplicates_are_dropped(executor) -> None:
    """Success, time limit, lost worker; a second result of one task is ignored."""
    pool, sent = executor
    for job in ("A", "B", "C"):
        pool.submit(_spec(job), 5.0)
        if job == "B":
            assert pool.free_slots() == 0
    ids = {call["args"][0]["job_id"]: call["task_id"] for call in sent.calls}
    ok = JobOutcome(job_id="A", ok=True, message="done").model_dump(mode="json")
    limit = {"exc_type": "TimeLimitExceeded", "exc_message": [5.0]}
    lost = {"exc_type": "WorkerLostError", "exc_message": ["gone"]}
    for meta in (
        {"task_id": ids["A"], "status": "STARTED", "result": {"hostname": "w1", "pid": 7}},
        {"task_id": ids["A"], "status": "SUCCESS", "result": ok},
        {"task_id": ids["A"], "status": "SUCCESS", "result": ok},
        {"task_id": ids["B"], "status": "FAILURE", "result": limit},
        {"task_id": ids["C"], "status": "FAILURE", "result": lost},
    ):
        pool._deliver(meta)
    results = {spec.job_id: outcome for spec, outcome in pool.poll(5.0)}
    assert results["A"].ok
    assert results["B"].error is not None and results["B"].error.code == "timeout"
    assert "timeout of 5 s" in results["B"].message
    assert results["C"].error is not None and results["C"].error.code == "worker_crashed"
    assert len(results) == 3 and pool.free_slots() == 2


def test_cancel_forgets_the_job_and_drops_its_late_result(executor, monkeypatch) -> None:
    """kill_job revokes with SIGKILL; a result arriving afterwards is not reported."""
    pool, sent = executor
    revoked: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        pool._app.control, "revoke", lambda ids, **kw: revoked.append((ids, kw["signal"]))
    )
    pool.submit(_spec("A"), 5.0)
    assert pool.kill_job("A") and not pool.kill_job("A")
    assert revoked == [([sent.calls[0]["task_id"]], "SIGKILL")]
    pool._deliver({"task_id": sent.calls[0]["task_id"], "status": "REVOKED", "result": None})
    assert pool.poll(0.5) == []
