"""Lost Celery workers: noticed in seconds, their jobs end exactly once, zombies change nothing.

Real brokers (Redis, and RabbitMQ from Debian), real ``hotfolder worker``
processes in their own process groups, the real daemon. ``worker_lost_after``
is a few seconds here (15 by default) to keep the tests short; the visibility
timeout is long, so that only the daemon's own loss detection can bring a
job back in time on Redis.
"""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime
from typing import Any

from tests.helpers import free_port, http_json, run_cli, wait_for
from tests.integration.brokers import (
    Worker,
    celery_daemon,
    metric,
    redis_server,
    start_all,
    work_area_empty,
)
from tests.integration.conftest import HotfolderProcess

LOST_AFTER = 5
FOLDER = {"name": "faults", "workflow": "test-faults", "timeout": 30}
#: The broker alone would hand a lost worker's job on only after 10 minutes.
LOSS = {"worker_lost_after": LOST_AFTER, "visibility_timeout": 600, "max_in_flight": 4}


def holding(daemon: HotfolderProcess, pool: list[Worker]) -> tuple[Worker, str] | None:
    """A worker of ``pool`` the daemon saw start a job, and that job's id."""
    for job_id, pid in re.findall(r"\[job (\w+)\] running on worker hotfolder-(\d+)@", log(daemon)):
        for worker in pool:
            if worker.proc.pid == int(pid) and worker.proc.poll() is None:
                return worker, job_id
    return None


def log(daemon: HotfolderProcess) -> str:
    return daemon.log.read_text(errors="replace")


def finished_at(status: dict[str, Any]) -> float:
    return datetime.fromisoformat(status["finishedAt"].replace("Z", "+00:00")).timestamp()


def assert_each_once(daemon: HotfolderProcess, names: list[str]) -> dict[str, dict[str, Any]]:
    """One output and one status per name in out/, nothing in error/ or in/; the statuses."""
    expected = sorted(f"{n}{ext}" for n in names for ext in (".txt", ".status.json"))
    assert daemon.files("faults", "out") == expected
    assert daemon.files("faults", "error") == [] and daemon.files("faults", "in") == []
    statuses = {s["jobId"]: s for s in daemon.statuses("faults")}
    assert len(statuses) == len(names) and {s["status"] for s in statuses.values()} == {"success"}
    return statuses


def test_a_killed_worker_is_declared_lost_and_its_job_ends_once_within_seconds(
    hotfolder, redis_url, workers
) -> None:
    """kill -9 of a worker holding a job: declared lost, job sent again, every file once."""
    port = free_port()
    daemon = celery_daemon(
        hotfolder, redis_url, [FOLDER], celery=LOSS, http={"listen": f"127.0.0.1:{port}"}
    )
    pool = workers(daemon.config, 2)
    start_all(daemon, pool)
    names = [f"doc{i}" for i in range(8)]
    for name in names:
        (daemon.dir("faults") / f"{name}.job").write_text("slow:1")
    victim, held = wait_for(lambda: holding(daemon, pool), what="a job running on a worker")
    victim.kill()
    killed = time.time()

    daemon.wait_finished("faults", len(names), timeout=90)
    statuses = assert_each_once(daemon, names)
    # Sent again as a new attempt once the worker was silent for worker_lost_after.
    assert statuses[held]["attempts"] == 2
    assert finished_at(statuses[held]) - killed < LOST_AFTER + 10
    text = log(daemon)
    assert re.search(
        rf"worker {re.escape(victim.name)}\S* was not heard from .* declared lost", text
    )
    assert re.search(rf"\[job {held}\] its worker \S+ was lost; sent again", text)
    assert re.search(rf"\[job {held}\] processing .* attempt=2", text)
    assert metric(port, "hotfolder_worker_lost_total") == 1
    # The daemon's view of its workers: the survivor alive, the victim lost.
    [survivor] = [w for w in pool if w is not victim]
    code, status = http_json(f"http://127.0.0.1:{port}/status")
    assert code == 200 and status["workersLost"] == 1
    states = {w["name"].split("@")[0] + "@": w["state"] for w in status["workers"]}
    assert states[victim.name] == "lost" and states[survivor.name] == "alive"
    [alive] = [w for w in status["workers"] if w["state"] == "alive"]
    assert alive["processes"] == 1 and alive["jobs"] == 0 and alive["lastHeartbeat"]

    def status_lists_workers() -> str:
        out = run_cli(daemon.config, "status").stdout
        return out if survivor.name in out else ""

    report = wait_for(status_lists_workers, what="hotfolder status listing the workers")
    assert "lost since start: 1" in report and "last heartbeat" in report
    wait_for(lambda: work_area_empty(daemon, "faults"), what="empty work area")
    assert daemon.stop() == 0


def test_a_paused_worker_that_comes_back_changes_nothing(hotfolder, redis_url, workers) -> None:
    """SIGSTOP mid-job, job re-run elsewhere, SIGCONT: one output set, late result discarded."""
    daemon = celery_daemon(hotfolder, redis_url, [FOLDER], celery=LOSS)
    pool = workers(daemon.config, 2)
    start_all(daemon, pool)
    (daemon.dir("faults") / "paused.job").write_text("slow:2")
    zombie, held = wait_for(lambda: holding(daemon, pool), what="the job running on a worker")
    zombie.signal(signal.SIGSTOP)
    try:
        daemon.wait_finished("faults", 1, timeout=60)
        [status] = assert_each_once(daemon, ["paused"]).values()
        assert status["jobId"] == held and status["attempts"] == 2
    finally:
        zombie.signal(signal.SIGCONT)
    # Back: its old task is revoked (or finishes); whatever it reports is discarded.
    wait_for(
        lambda: re.search(rf"\[job {held}\] late result \(\w+\) from worker", log(daemon)),
        timeout=60,
        what="the late result discarded",
    )
    wait_for(lambda: work_area_empty(daemon, "faults"), what="nothing of it in the work area")
    assert daemon.files("faults", "out") == ["paused.status.json", "paused.txt"]
    assert (daemon.dir("faults", "out") / "paused.txt").read_text() == "slow:2"
    assert "is heard again after it was declared lost" in log(daemon)
    assert daemon.stop() == 0


def test_a_worker_killed_while_the_daemon_restarts_costs_nothing(
    hotfolder, redis_url, workers
) -> None:
    """kill -9 of the daemon, then of a worker holding a job, then a restart: each file once."""
    daemon = celery_daemon(hotfolder, redis_url, [FOLDER], celery=LOSS)
    pool = workers(daemon.config, 2)
    start_all(daemon, pool)
    names = [f"doc{i}" for i in range(6)]
    for name in names:
        (daemon.dir("faults") / f"{name}.job").write_text("slow:1")
    victim, _ = wait_for(lambda: holding(daemon, pool), what="a job running on a worker")
    daemon.kill()
    victim.kill()
    daemon.start()
    daemon.wait_finished("faults", len(names), timeout=90)
    assert_each_once(daemon, names)
    wait_for(lambda: work_area_empty(daemon, "faults"), timeout=60, what="empty work area")
    assert daemon.stop() == 0


def test_healthz_says_when_jobs_wait_and_no_worker_is_alive(hotfolder, redis_url, workers) -> None:
    """No worker: 503 naming the waiting jobs; a worker arrives: the job ends, 200 again."""
    port = free_port()
    daemon = celery_daemon(
        hotfolder, redis_url, [FOLDER], celery=LOSS, http={"listen": f"127.0.0.1:{port}"}
    )
    daemon.start()
    (daemon.dir("faults") / "waiting.job").write_text("ok")
    url = f"http://127.0.0.1:{port}/healthz"

    def waiting_reported() -> tuple[int, dict[str, Any]] | None:
        answer = http_json(url)
        return answer if "job(s) wait" in str(answer[1]) else None

    code, body = wait_for(waiting_reported, what="/healthz naming the waiting job")
    assert code == 503
    assert "no Celery worker serves the queue: 1 job(s) wait for one" in body["problems"]
    workers(daemon.config, 1)
    daemon.wait_finished("faults", 1, timeout=90)
    wait_for(lambda: http_json(url)[0] == 200, what="healthy once a worker serves the queue")
    assert daemon.stop() == 0


def test_on_rabbitmq_a_killed_workers_job_is_redelivered_at_once(
    hotfolder, rabbitmq_url, workers, tmp_path
) -> None:
    """The same kill -9 on RabbitMQ (Redis as result backend): every file once, in seconds."""
    with redis_server(tmp_path) as backend:
        daemon = celery_daemon(
            hotfolder,
            rabbitmq_url,
            [FOLDER],
            # Its own queue: the RabbitMQ node serves every test of the session.
            celery={**LOSS, "result_backend": backend, "queue": f"q{free_port()}"},
        )
        pool = workers(daemon.config, 2)
        start_all(daemon, pool)
        names = [f"doc{i}" for i in range(8)]
        for name in names:
            (daemon.dir("faults") / f"{name}.job").write_text("slow:1")
        victim, held = wait_for(lambda: holding(daemon, pool), what="a job running on a worker")
        victim.kill()
        killed = time.time()
        daemon.wait_finished("faults", len(names), timeout=90)
        statuses = assert_each_once(daemon, names)
        assert finished_at(statuses[held]) - killed < LOST_AFTER + 10
        wait_for(lambda: work_area_empty(daemon, "faults"), what="empty work area")
        assert daemon.stop() == 0
