"""Operations on the real daemon: SIGHUP reload and JSON logs with job ids."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request

from tests.helpers import free_port, http_json, wait_for
from tests.integration.test_manifests import drop
from tests.samples import docx_bytes, pdf_bytes


def metric(port: int, line_start: str) -> float:
    code, _ = http_json(f"http://127.0.0.1:{port}/healthz")
    assert code == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line starting with {line_start}")


def test_sighup_adds_a_folder_and_an_invalid_config_keeps_the_old_one(hotfolder) -> None:
    """A folder added by reload converts files; a broken config is refused and counted."""
    port = free_port()
    daemon = hotfolder(
        [{"name": "a", "workflow": "test-faults"}], http={"listen": f"127.0.0.1:{port}"}
    ).start()
    original = daemon.config.read_text()
    daemon.config.write_text(
        original + '[[folders]]\nname = "b"\npath = "b"\nworkflow = "pdf-optimize"\nsettle = 0.5\n'
    )
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b"reloaded: added: b" in daemon.log.read_bytes(), what="the reload")
    drop(daemon.dir("b") / "new.pdf", pdf_bytes(pages=2))
    daemon.wait_finished("b", 1)
    assert daemon.statuses("b")[0]["status"] == "success"
    assert metric(port, 'hotfolder_config_reloads_total{result="success"}') == 1

    daemon.config.write_text(original + "[[folders]]\nname = 'broken'\n")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b"reload refused" in daemon.log.read_bytes(), what="the refusal")
    assert metric(port, 'hotfolder_config_reloads_total{result="failure"}') == 1
    # The running config (a and b) goes on working.
    (daemon.dir("a") / "still.job").write_text("ok")
    drop(daemon.dir("b") / "again.pdf", pdf_bytes())
    daemon.wait_finished("a", 1)
    daemon.wait_finished("b", 2)
    assert daemon.stop() == 0


def test_json_logs_put_the_job_id_on_every_line_about_a_job(hotfolder) -> None:
    """log_format = "json": one object per line; job lines carry jobId."""
    daemon = hotfolder([{"name": "a", "workflow": "pdf-optimize"}], log_format="json").start()
    drop(daemon.dir("a") / "x.pdf", pdf_bytes())
    daemon.wait_finished("a", 1)
    daemon.stop()
    job_id = daemon.statuses("a")[0]["jobId"]
    lines = [json.loads(line) for line in daemon.log.read_text().splitlines() if line]
    about_job = [line for line in lines if line.get("jobId") == job_id]
    assert [line["message"].split()[0] for line in about_job] == ["processing", "success"]
    assert all(job_id not in line["message"] for line in lines if "jobId" not in line)


def test_cleanup_dry_run_then_scheduled_cleanup(hotfolder) -> None:
    """`cleanup --dry-run` lists and keeps; the daemon's schedule removes and counts."""
    port = free_port()
    retention = {"output_retention": 1, "status_retention": 1, "interval": 1}
    daemon = hotfolder(
        [{"name": "a", "workflow": "pdf-optimize"}],
        http={"listen": f"127.0.0.1:{port}"},
        cleanup={"enabled": False, **retention},
    ).start()
    drop(daemon.dir("a") / "x.pdf", pdf_bytes())
    daemon.wait_finished("a", 1)
    daemon.stop()

    def cli_cleanup(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "hotfolder", "cleanup", "--config", str(daemon.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def expired_listing() -> str | None:
        listing = cli_cleanup("--dry-run")
        return listing if "outputs:" in listing else None

    listing = wait_for(expired_listing, what="the output to expire")
    assert "would remove 2 item(s) (dry run: nothing changed)" in listing
    assert daemon.files("a", "out") == ["x.pdf", "x.status.json"]

    text = daemon.config.read_text().replace("enabled = false", "enabled = true", 1)
    daemon.config.write_text(text)
    daemon.start()
    wait_for(lambda: daemon.files("a", "out") == [], what="the scheduled cleanup")
    assert metric(port, 'hotfolder_cleanup_removed_total{kind="outputs"}') == 1
    assert metric(port, 'hotfolder_cleanup_removed_total{kind="status_files"}') == 1
    assert daemon.files("a", "archive") == ["x.pdf"]  # archive_retention is 0: kept


def test_systemd_notifications_from_the_real_daemon(hotfolder, tmp_path) -> None:
    """READY after watching, STATUS, WATCHDOG pings, RELOADING+MONOTONIC_USEC, STOPPING."""
    address = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(0.2)
    messages: list[str] = []

    def received(fragment: str) -> bool:
        try:
            while True:
                messages.append(receiver.recv(4096).decode())
        except TimeoutError:
            pass
        return any(fragment in message for message in messages)

    daemon = hotfolder([{"name": "a", "workflow": "pdf-optimize"}])
    daemon.start(NOTIFY_SOCKET=address, WATCHDOG_USEC="2000000")
    wait_for(lambda: received("READY=1"), what="READY=1")
    wait_for(lambda: received("WATCHDOG=1"), what="a watchdog ping")
    wait_for(lambda: received("STATUS=0 queued, 0 running"), what="a STATUS line")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: received("RELOADING=1"), what="RELOADING=1")
    at = next(i for i, m in enumerate(messages) if "RELOADING=1" in m)
    assert "MONOTONIC_USEC=" in messages[at]  # systemd matches the reload by it
    wait_for(
        lambda: received("READY=1") and any("READY=1" in m for m in messages[at + 1 :]),
        what="READY=1 after the reload",
    )
    assert daemon.stop() == 0
    wait_for(lambda: received("STOPPING=1"), what="STOPPING=1")
    receiver.close()


def test_an_office_jobs_library_lines_carry_its_id_and_its_warnings_its_part(hotfolder) -> None:
    """A real office job to PDF/A-2b: every line written meanwhile names the job.

    fontTools (reading LibreOffice's embedded fonts for the PDF/A check) warns about
    each font's timestamp; those lines are DEBUG and carry the job id. The status
    warnings say nothing about PDF/A-1, which this job does not make.
    """
    chain = {"name": "office-archive", "steps": ["office-to-pdf", "pdf-archive"]}
    daemon = hotfolder(
        [{"name": "office", "workflow": "office-archive", "timeout": 300}],
        workflows=[chain],
        log_format="json",
        log_level="DEBUG",
    ).start()
    drop(daemon.dir("office") / "memo.docx", docx_bytes(["Quarterly memo", "Second page"]))
    daemon.wait_finished("office", 1, timeout=300)
    daemon.stop()
    [status] = daemon.statuses("office")
    assert status["status"] == "success" and "PDF/A-2b" in status["message"]
    assert not [w for w in status["warnings"] if "PDF/A1" in w or "PDF/A-1" in w]
    lines = [json.loads(line) for line in daemon.log.read_text().splitlines() if line]
    # Libraries the workers use; the main process's own (watchdog) log about no job.
    main_process = ("hotfolder", "watchdog", "apscheduler")
    libraries = [line for line in lines if not line["logger"].startswith(main_process)]
    font_lines = [line for line in libraries if line["logger"].startswith("fontTools")]
    assert font_lines, "LibreOffice's fonts no longer make fontTools talk: find another case"
    assert {line["level"] for line in font_lines} == {"DEBUG"}
    assert all(line.get("jobId") == status["jobId"] for line in libraries), libraries
