"""Nothing is ignored silently (invariant 9): every file left alone and every wait says why.

The real daemon on temp folders; files dropped the way users drop them.
"""

from __future__ import annotations

import json
import subprocess
import unicodedata
import urllib.request
from pathlib import Path
from typing import Any

from hotfolder.journal import Journal
from tests.helpers import drop, drop_manifest, free_port, http_json, run_cli, wait_for
from tests.samples import pdf_bytes


def cli(daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(daemon.config, *args)


def log_text(daemon) -> str:
    return daemon.log.read_text(errors="replace")


def test_a_manifest_is_a_manifest_whatever_include_says(hotfolder) -> None:
    daemon = hotfolder([{"name": "m", "workflow": "pdf-merge", "include": ["*.pdf"]}]).start()
    inbox = daemon.dir("m")
    drop_manifest(inbox / "both.job.json", name="both", inputs=["a.pdf", "b.pdf"])
    wait_for(lambda: "pending folder=m" in log_text(daemon), what="the manifest job")
    drop(inbox / "a.pdf", pdf_bytes(pages=1))
    drop(inbox / "b.pdf", pdf_bytes(pages=2))
    daemon.wait_finished("m", 1, timeout=30)
    [merged] = daemon.statuses("m")
    assert merged["name"] == "both" and merged["status"] == "success"
    assert [i["name"] for i in merged["inputs"]] == ["a.pdf", "b.pdf"]
    assert "not taken" not in log_text(daemon)


def test_a_file_the_filters_keep_out_is_logged_counted_and_shown(hotfolder) -> None:
    port = free_port()
    daemon = hotfolder(
        [{"name": "p", "workflow": "pdf-optimize", "include": ["*.pdf"]}],
        http={"listen": f"127.0.0.1:{port}"},
    ).start()
    inbox = daemon.dir("p")
    drop(inbox / "notes.txt", b"not a pdf")
    drop(inbox / "~$lock.pdf", b"office lock file: junk, never reported")
    drop(inbox / "real.pdf", pdf_bytes())
    daemon.wait_finished("p", 1)

    def ignored_gauge() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith('hotfolder_files_ignored{folder="p"}'):
                    return line.split()[-1]
        return None

    assert wait_for(lambda: ignored_gauge() == "1.0", what="the ignored gauge")
    assert log_text(daemon).count("'notes.txt' in") == 1
    assert "include = ['*.pdf']" in log_text(daemon)
    assert "~$lock.pdf" not in log_text(daemon)
    code, health = http_json(f"http://127.0.0.1:{port}/healthz")
    assert code == 200
    assert health["folders"]["p"]["ignored"] == [
        {"name": "notes.txt", "rule": "include = ['*.pdf']"}
    ]
    shown = cli(daemon, "status")
    assert shown.returncode == 0, shown.stderr
    assert "notes.txt" in shown.stdout and "include" in shown.stdout
    assert (inbox / "notes.txt").exists()  # it stays where it is
    (inbox / "notes.txt").unlink()
    assert wait_for(lambda: ignored_gauge() == "0.0", what="the gauge to drop")


def test_a_pending_manifest_says_what_it_waits_for(hotfolder) -> None:
    port = free_port()
    daemon = hotfolder(
        [{"name": "m", "workflow": "pdf-merge", "manifest_timeout": 120}],
        http={"listen": f"127.0.0.1:{port}"},
    ).start()
    inbox = daemon.dir("m")
    drop_manifest(inbox / "set.job.json", name="set", inputs=["one.pdf", "two.pdf"])
    wait_for(lambda: "pending folder=m" in log_text(daemon), what="the manifest job")
    drop(inbox / "one.pdf", pdf_bytes())

    def pending() -> dict[str, Any] | None:
        code, body = http_json(f"http://127.0.0.1:{port}/jobs?status=pending")
        jobs = body.get("jobs", []) if code == 200 else []
        if jobs and "two.pdf" in (jobs[0].get("message") or "") and "one" not in jobs[0]["message"]:
            return dict(jobs[0])
        return None

    job = wait_for(pending, what="the pending job to name its missing input")
    code, document = http_json(f"http://127.0.0.1:{port}/jobs/{job['jobId']}")
    assert code == 200
    assert "1 of 2 input(s) not there yet: two.pdf" in document["message"]
    manifest_size = (inbox / "set.job.json").stat().st_size
    assert document["inputs"][0] == {"name": "set.job.json", "bytes": manifest_size}
    shown = cli(daemon, "status", job["jobId"])
    assert "two.pdf" in json.loads(shown.stdout)["message"]
    assert "not there yet: two.pdf" in cli(daemon, "status").stdout
    drop(inbox / "two.pdf", pdf_bytes(pages=2))
    daemon.wait_finished("m", 1)
    assert daemon.statuses("m")[0]["status"] == "success"


def test_manifest_names_match_across_unicode_normalisation(hotfolder) -> None:
    daemon = hotfolder([{"name": "m", "workflow": "pdf-merge"}]).start()
    inbox = daemon.dir("m")
    nfc = unicodedata.normalize("NFC", "März.pdf")
    nfd = unicodedata.normalize("NFD", "März.pdf")
    assert nfc != nfd
    drop_manifest(inbox / "umlaut.job.json", name="umlaut", inputs=[nfc, "b.pdf"])
    wait_for(lambda: "pending folder=m" in log_text(daemon), what="the manifest job")
    drop(inbox / nfd, pdf_bytes(pages=2))  # as a macOS client writes it to a share
    drop(inbox / "b.pdf", pdf_bytes(pages=1))
    daemon.wait_finished("m", 1, timeout=60)
    [status] = daemon.statuses("m") + daemon.statuses("m", "error")
    assert status["status"] == "success", status
    assert status["name"] == "umlaut"
    assert daemon.files("m", "in") == []


def test_an_input_name_too_long_for_the_filesystem_fails_at_once(hotfolder) -> None:
    daemon = hotfolder([{"name": "m", "workflow": "pdf-merge", "manifest_timeout": 600}]).start()
    long_name = "é" * 200 + ".pdf"  # 404 bytes in UTF-8
    drop_manifest(daemon.dir("m") / "long.job.json", inputs=[long_name, "b.pdf"])
    daemon.wait_finished("m", 1, timeout=20)
    [status] = daemon.statuses("m", "error")
    assert status["error"]["code"] == "manifest_invalid"
    assert "255 bytes" in status["error"]["message"]
    assert "Traceback" not in log_text(daemon)


def test_a_manifest_naming_a_folder_never_moves_it(hotfolder) -> None:
    daemon = hotfolder([{"name": "m", "workflow": "pdf-merge"}]).start()
    inbox = daemon.dir("m")
    subdir = inbox / "subdir"
    subdir.mkdir()
    (subdir / "someone-elses.pdf").write_bytes(pdf_bytes())
    drop_manifest(inbox / "dir.job.json", inputs=["subdir", "b.pdf"])
    daemon.wait_finished("m", 1, timeout=30)
    [status] = daemon.statuses("m", "error")
    assert status["error"]["code"] == "manifest_invalid"
    assert "folder" in status["error"]["message"]
    assert (subdir / "someone-elses.pdf").exists()
    assert "subdir" not in daemon.files("m", "error")


def test_a_shutdown_past_drain_timeout_names_the_stopped_jobs(hotfolder) -> None:
    daemon = hotfolder([{"name": "f", "workflow": "test-faults"}], drain_timeout=1).start()
    drop(daemon.dir("f") / "stuck.txt", b"slow:600")
    wait_for(lambda: "processing folder=f" in log_text(daemon), what="the job to start")
    daemon.stop()
    log = log_text(daemon)
    assert "drain_timeout (1 s) passed with 1 job(s) still running" in log
    assert "'stuck.txt'" in log and "run again at the next start" in log
    shown = cli(daemon, "status")
    assert "interrupted" in shown.stdout, shown.stdout
    assert "the daemon is not running" in shown.stdout
    listed = json.loads(cli(daemon, "status", "--json").stdout)
    assert listed[0]["interrupted"] is True
    assert "runs again when hotfolder starts" in listed[0]["message"]


def test_status_of_an_empty_journal_says_none(tmp_path: Path) -> None:
    config = tmp_path / "hotfolder.toml"
    config.write_text(
        '[daemon]\nstate_dir = "state"\n[[folders]]\nname = "a"\npath = "a"\n'
        'workflow = "pdf-optimize"\n'
    )
    Journal(tmp_path / "state" / "journal.sqlite3").close()
    shown = run_cli(config, "status")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "jobs: none"
    assert "the daemon is not running" in shown.stdout
