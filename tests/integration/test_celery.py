"""Scale-out on Celery: a real Redis, real workers in their own processes, the real daemon.

Each test starts Debian's redis-server on a free loopback port (no persistence),
one or two ``hotfolder worker`` processes and the daemon with
``executor = "celery"``, all on the same config file, and checks the same
promises as for the embedded pool: one output and one status per file, a
worker lost mid-job costs nothing but time, timeouts, crashes and cancel fail
only their own job.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pikepdf

from tests.helpers import free_port, wait_for
from tests.integration.brokers import celery_daemon, metric, start_all, work_area_empty
from tests.integration.conftest import REPO, HotfolderProcess
from tests.samples import pdf_bytes

FAULTS = {"name": "faults", "workflow": "test-faults", "timeout": 3}


def test_every_file_gives_one_output_and_one_status_across_two_workers(
    hotfolder, redis_url, workers
) -> None:
    """Files spread over two workers each end with one output and one status; metrics agree."""
    port = free_port()
    daemon = celery_daemon(
        hotfolder,
        redis_url,
        [FAULTS, {"name": "pdf", "workflow": "pdf-optimize", "timeout": 20}],
        http={"listen": f"127.0.0.1:{port}"},
    )
    pool = workers(daemon.config, 2)
    start_all(daemon, pool)
    names = [f"job{i}" for i in range(6)]
    for name in names:
        (daemon.dir("faults") / f"{name}.job").write_text("slow:0.5")
    (daemon.dir("pdf") / "doc.pdf").write_bytes(pdf_bytes(pages=3, text="scaled out"))
    daemon.wait_finished("faults", len(names))
    daemon.wait_finished("pdf", 1)

    out = daemon.files("faults", "out")
    assert out == sorted(f"{n}{ext}" for n in names for ext in (".txt", ".status.json"))
    statuses = daemon.statuses("faults")
    assert {s["status"] for s in statuses} == {"success"}
    assert {s["attempts"] for s in statuses} == {1}
    assert daemon.files("faults", "error") == [] and daemon.files("faults", "in") == []
    # The real workflow code ran on a worker: a valid, checked PDF came back.
    assert daemon.files("pdf", "out") == ["doc.pdf", "doc.status.json"]
    with pikepdf.open(daemon.dir("pdf", "out") / "doc.pdf") as pdf:
        assert len(pdf.pages) == 3
    # Both workers took jobs: each process holds one job at a time (prefetch 1).
    log = daemon.log.read_text()
    for worker in pool:
        assert f"running on worker {worker.name}" in log
    for folder in ("faults", "pdf"):
        wait_for(lambda f=folder: work_area_empty(daemon, f), what=f"empty work area of {folder}")
    # Metrics count results from every worker; the census sees both workers.
    assert metric(
        port,
        'hotfolder_jobs_finished_total{folder="faults",status="success",workflow="test-faults"}',
    ) == len(names)
    wait_for(lambda: metric(port, "hotfolder_workers_alive") == 2, what="census of 2 workers")
    assert daemon.stop() == 0


def test_worker_killed_mid_job_its_job_runs_on_the_other_and_appears_once(
    hotfolder, redis_url, workers
) -> None:
    """SIGKILL to a whole worker mid-job: the other worker runs it; out/ gets it once."""
    # The broker hands an unacknowledged job to another worker after the
    # visibility timeout; it must stay above the folder's timeout.
    daemon = celery_daemon(hotfolder, redis_url, [FAULTS], celery={"visibility_timeout": 4})
    pool = workers(daemon.config, 2)
    start_all(daemon, pool)
    (daemon.dir("faults") / "victim.job").write_text("slow:2")
    found = wait_for(
        lambda: re.search(r"running on worker hotfolder-(\d+)@", daemon.log.read_text()),
        what="the job running on a worker",
    )
    victim = next(w for w in pool if w.proc.pid == int(found.group(1)))
    [survivor] = [w for w in pool if w is not victim]
    # The broker says "started" a moment before the worker's own line: on a busy
    # machine a kill in between would leave the victim's log without it.
    wait_for(lambda: "(delivery 1)" in victim.text(), what="the victim converting")
    victim.kill()  # mid-job: it sleeps 2 s

    daemon.wait_finished("faults", 1, timeout=30)
    [status] = daemon.statuses("faults")
    assert status["status"] == "success" and status["attempts"] == 1
    assert daemon.files("faults", "out") == ["victim.status.json", "victim.txt"]
    assert (daemon.dir("faults", "out") / "victim.txt").read_text() == "slow:2"
    assert daemon.files("faults", "error") == []
    assert f"handed to worker {survivor.name}" in daemon.log.read_text()
    assert "(delivery 1)" in victim.text() and "(delivery 2)" in survivor.text()
    wait_for(lambda: work_area_empty(daemon, "faults"), what="empty work area")
    assert daemon.stop() == 0


def test_timeout_crash_and_cancel_fail_only_their_own_job(hotfolder, redis_url, workers) -> None:
    """A time limit, a segfaulting engine and a cancel each fail one job; the worker goes on."""
    # A crash is seen within Celery's pool maintenance interval (up to a few
    # seconds): the crash folder's timeout leaves room for that, the other's does not.
    folders = [{**FAULTS, "name": "hang", "timeout": 2}, {**FAULTS, "timeout": 20}]
    daemon = celery_daemon(hotfolder, redis_url, folders, celery={"max_deliveries": 2})
    [worker] = workers(daemon.config, 1, concurrency=2)
    start_all(daemon, [worker])
    (daemon.dir("hang") / "hang.job").write_text("hang")
    inbox = daemon.dir("faults")
    (inbox / "segv.job").write_text("segv")
    daemon.wait_finished("hang", 1)
    daemon.wait_finished("faults", 1, timeout=40)
    [hang] = daemon.statuses("hang", "error")
    assert hang["error"]["code"] == "timeout"
    assert "timeout of 2 s" in hang["error"]["message"]
    [segv] = daemon.statuses("faults", "error")
    assert segv["error"]["code"] == "worker_crashed"
    assert "lost 2 times" in segv["error"]["message"]
    # A timed-out job is acknowledged, never handed out again; a crashed one twice.
    assert worker.text().count("] converting on") == 1 + 2

    # The worker limits its processes by the daemon's formula, over its concurrency.
    shown = re.search(r"memory limit (\d+) MB per worker process \(.* / 2 process", worker.text())
    assert shown, worker.text()
    limit_mb = int(shown.group(1))
    (inbox / "big.job").write_text("reserve")
    daemon.wait_finished("faults", 2, timeout=40)
    big = {s["name"]: s for s in daemon.statuses("faults", "error")}["big"]
    assert big["error"]["code"] == "too_large"
    assert f"needed more than {limit_mb} MB (worker_memory_limit)" in big["error"]["message"]

    (inbox / "long.job").write_text("slow:60")
    found = wait_for(
        lambda: re.search(r"\[job (\w+)\] running on worker \S+ pid (\d+)", _tail(daemon, "long")),
        what="the long job running",
    )
    job_id, pid = found.group(1), int(found.group(2))
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert re.search(rf"^Max address space\s+{limit_mb << 20}\s", limits, re.MULTILINE), limits
    cancel = subprocess.run(
        [sys.executable, "-m", "hotfolder", "cancel", "--config", str(daemon.config), job_id],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert cancel.returncode == 0, cancel.stderr
    daemon.wait_finished("faults", 3)
    assert {s["name"]: s for s in daemon.statuses("faults", "error")}["long"]["status"] == (
        "aborted"
    )
    # The worker process running it was killed (revoke with SIGKILL), not left to finish.
    wait_for(lambda: not _exists(pid), timeout=10, what="the cancelled job's process gone")
    (inbox / "after.job").write_text("ok")
    daemon.wait_finished("faults", 4, timeout=15)
    assert [s["name"] for s in daemon.statuses("faults", "out")] == ["after"]
    assert daemon.files("faults", "in") == [] and daemon.files("hang", "in") == []
    assert daemon.stop() == 0


def test_daemon_killed_with_jobs_on_workers_then_restarted_each_file_once(
    hotfolder, redis_url, workers
) -> None:
    """kill -9 of the daemon while workers convert: after a restart each file appears once."""
    daemon = celery_daemon(hotfolder, redis_url, [FAULTS])
    pool = workers(daemon.config, 2, concurrency=2)
    start_all(daemon, pool)
    total = 10
    for i in range(total):
        (daemon.dir("faults") / f"doc{i}.job").write_text("slow:0.7")
    wait_for(lambda: daemon.finished("faults") >= 1, what="a first result")
    daemon.kill()  # jobs are queued and running on the workers right now
    assert daemon.finished("faults") < total
    daemon.start()
    daemon.wait_finished("faults", total, timeout=60)
    out = daemon.files("faults", "out")
    assert out == sorted(f"doc{i}{ext}" for i in range(total) for ext in (".txt", ".status.json"))
    assert daemon.files("faults", "error") == [] and daemon.files("faults", "in") == []
    assert len({s["jobId"] for s in daemon.statuses("faults")}) == total
    # Executions of the killed daemon's tasks end on their own and clean up after them.
    wait_for(lambda: work_area_empty(daemon, "faults"), timeout=20, what="empty work area")
    assert daemon.stop() == 0


def test_two_daemons_on_the_same_folder_make_each_file_exactly_one_job(
    hotfolder, redis_url, workers, tmp_path: Path
) -> None:
    """High availability: both daemons watch one folder; the atomic claim gives each file to one."""
    first = celery_daemon(hotfolder, redis_url, [FAULTS])
    root = tmp_path / "second"
    root.mkdir()
    second = celery_daemon(
        lambda folders, **kw: HotfolderProcess(root, folders, **kw),
        redis_url,
        [{**FAULTS, "path": str(tmp_path / "faults")}],  # the same folder, its own journal
    )
    pool = workers(first.config, 2, concurrency=2)
    start_all(first, pool)
    second.start()
    try:
        total = 20
        for i in range(total):
            (first.dir("faults") / f"f{i:02d}.job").write_text("slow:0.2")
        first.wait_finished("faults", total)
        out = first.files("faults", "out")
        assert out == sorted(
            f"f{i:02d}{ext}" for i in range(total) for ext in (".txt", ".status.json")
        )
        assert first.files("faults", "error") == [] and first.files("faults", "in") == []
        # Every file was claimed, and so run, by exactly one of the two daemons.
        claims = [
            line
            for daemon in (first, second)
            for line in daemon.log.read_text().splitlines()
            if " processing folder=faults" in line
        ]
        assert len(claims) == total
        # Losing the race for a file is normal here, not an error worth a log line.
        assert "cannot claim" not in first.log.read_text() + second.log.read_text()
        wait_for(lambda: work_area_empty(first, "faults"), what="empty work area")
        assert second.stop() == 0 and first.stop() == 0
    finally:
        for daemon in (first, second):
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.kill()


def _tail(daemon: HotfolderProcess, name: str) -> str:
    """The daemon's log from the line where job ``name`` started processing."""
    text = daemon.log.read_text()
    start = text.find(f"input='{name}.job'")
    return text[start:] if start >= 0 else ""


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its Celery parent) is gone for our purpose.
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text()
    except FileNotFoundError:
        return False
