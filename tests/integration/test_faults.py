"""A crash, hang, memory blow-up or broken output fails only its own job."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import wait_for

FAULTS = {"name": "faults", "workflow": "test-faults", "timeout": 5}


def by_name(statuses: list[dict]) -> dict[str, dict]:
    return {s["inputs"][0]["name"]: s for s in statuses}


def test_crashes_fail_only_their_job_and_the_pool_goes_on(hotfolder) -> None:
    daemon = hotfolder([FAULTS], worker_memory_limit=1024).start()
    inbox = daemon.dir("faults")
    commands = {"segv": "segv", "exit": "exit", "hog": "hog", "hang": "hang", "ok1": "ok"}
    for name, command in commands.items():
        (inbox / f"{name}.job").write_text(command)
    daemon.wait_finished("faults", len(commands), timeout=90)
    errors = by_name(daemon.statuses("faults", "error"))
    assert errors["segv.job"]["error"]["code"] == "worker_crashed"
    assert "SIGSEGV" in errors["segv.job"]["error"]["message"]
    assert errors["exit.job"]["error"]["code"] == "worker_crashed"
    assert errors["hog.job"]["error"]["code"] == "worker_crashed"
    assert "memory" in errors["hog.job"]["error"]["message"]
    assert errors["hang.job"]["error"]["code"] == "timeout"
    assert [s["status"] for s in daemon.statuses("faults", "out")] == ["success"]
    # Each failed original is kept next to its status, never deleted.
    assert {"segv.job", "exit.job", "hog.job", "hang.job"} <= set(daemon.files("faults", "error"))
    # The pool still works after four dead workers.
    (inbox / "ok2.job").write_text("ok")
    daemon.wait_finished("faults", len(commands) + 1)
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_transient_error_is_retried_and_permanent_is_not(hotfolder) -> None:
    daemon = hotfolder([FAULTS], retry_backoff=0.2).start()
    (daemon.dir("faults") / "flaky.job").write_text("flaky")
    (daemon.dir("faults") / "broken.job").write_text("broken")
    daemon.wait_finished("faults", 2)
    ok = by_name(daemon.statuses("faults", "out"))["flaky.job"]
    assert ok["attempts"] == 2
    failed = by_name(daemon.statuses("faults", "error"))["broken.job"]
    assert failed["error"]["code"] == "tool_failed"
    assert failed["attempts"] == 1
    # An output that failed its check is never published.
    assert not [n for n in daemon.files("faults", "out") if n.startswith("broken")]


def test_sigterm_drains_running_jobs_and_leaves_the_rest_for_the_next_start(hotfolder) -> None:
    daemon = hotfolder([FAULTS], workers=1, drain_timeout=30).start()
    inbox = daemon.dir("faults")
    for i in range(3):
        (inbox / f"slow{i}.job").write_text("slow:1.5")
    wait_for(lambda: b" processing " in daemon.log.read_bytes(), what="first job running")
    assert daemon.stop() == 0
    done = daemon.finished("faults")
    assert 1 <= done < 3, "the running job finished, the queued ones did not start"
    daemon.start()
    daemon.wait_finished("faults", 3)
    assert sorted(s["status"] for s in daemon.statuses("faults", "out")) == ["success"] * 3
    daemon.stop()


def test_status_command_reads_the_journal_while_the_daemon_runs(hotfolder) -> None:
    daemon = hotfolder([FAULTS]).start()
    (daemon.dir("faults") / "a.job").write_text("ok")
    daemon.wait_finished("faults", 1)
    job_id = daemon.statuses("faults")[0]["jobId"]
    listing = subprocess.run(
        [sys.executable, "-m", "hotfolder", "status", "--config", str(daemon.config), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(listing.stdout)[0]["jobId"] == job_id
    one = subprocess.run(
        [sys.executable, "-m", "hotfolder", "status", "--config", str(daemon.config), job_id],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(one.stdout)["status"] == "success"
