"""Callbacks, cancel and retry on the real daemon, with a real local HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, http_json, run_cli, wait_for
from tests.integration.test_manifests import drop, drop_manifest, jobs
from tests.samples import pdf_bytes

SECRET = "s3cret-key"
TOKEN = "letmein-token"


class Receiver(ThreadingHTTPServer):
    """Records POSTs; answers 500 to the first ``fail_first`` of them."""

    def __init__(self, fail_first: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fail_first = fail_first
        self.calls: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            code = 500 if len(self.server.calls) < self.server.fail_first else 204
            self.server.calls.append((dict(self.headers), body, code))
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def cli(daemon: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(daemon.config, *args)


def test_callback_is_signed_retried_and_limited_to_the_allowlist(
    hotfolder, receiver: Receiver
) -> None:
    """Two failures then success; the signature verifies; other URLs are never called."""
    daemon = hotfolder(
        [
            {
                "name": "m",
                "workflow": "pdf-merge",
                "manifests": "required",
                "callback_allow": [receiver.url],
                "callback_secret": SECRET,
            }
        ],
        callback_backoff=0.2,
    ).start()
    inbox = daemon.dir("m")
    drop(inbox / "a.pdf", pdf_bytes())
    drop_manifest(inbox / "a.job.json", inputs=["a.pdf"], callback=receiver.url)
    wait_for(lambda: len(receiver.calls) >= 3, what="a delivered callback")
    assert [code for _, _, code in receiver.calls] == [500, 500, 204]
    headers, body, _ = receiver.calls[-1]
    status = json.loads(body)
    assert status["status"] == "success" and status["name"] == "a"
    assert headers["X-Hotfolder-Job-Id"] == status["jobId"]
    signed = headers["X-Hotfolder-Timestamp"].encode() + b"." + body
    expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Hotfolder-Signature"], expected)
    # The same status the folder got, byte for byte.
    assert json.loads((daemon.dir("m", "out") / "a.status.json").read_text()) == status

    drop(inbox / "b.pdf", pdf_bytes())
    elsewhere = receiver.url.replace("/hook", "/other")
    drop_manifest(inbox / "b.job.json", inputs=["b.pdf"], callback=elsewhere)
    daemon.wait_finished("m", 2)
    wait_for(lambda: b"not in folder m's callback_allow" in daemon.log.read_bytes())
    assert len(receiver.calls) == 3
    assert {s["status"] for s in daemon.statuses("m")} == {"success"}


def test_failing_callback_never_changes_the_result(hotfolder) -> None:
    """Nobody listens at the URL: the job still succeeds; attempts are logged."""
    url = f"http://127.0.0.1:{free_port()}/hook"
    daemon = hotfolder(
        [
            {
                "name": "m",
                "workflow": "pdf-merge",
                "manifests": "required",
                "callback_allow": ["http://127.0.0.1:"],
            }
        ],
        callback_backoff=0.1,
        callback_retries=2,
    ).start()
    drop(daemon.dir("m") / "a.pdf", pdf_bytes())
    drop_manifest(daemon.dir("m") / "a.job.json", inputs=["a.pdf"], callback=url)
    daemon.wait_finished("m", 1)
    assert daemon.statuses("m")[0]["status"] == "success"
    wait_for(lambda: b"callback failed 3 time(s), giving up" in daemon.log.read_bytes())


def test_cancel_pending_and_running_jobs_over_http_and_cli(hotfolder) -> None:
    """POST needs the token; a pending and a running job end aborted, inputs in error/."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = hotfolder(
        [
            {"name": "m", "workflow": "pdf-merge"},
            {"name": "f", "workflow": "test-faults", "timeout": 300},
        ],
        http={"listen": f"127.0.0.1:{port}", "token": TOKEN},
    ).start()
    drop_manifest(daemon.dir("m") / "ab.job.json", inputs=["a.pdf", "b.pdf"])
    [pending] = wait_for(lambda: jobs(port, "pending"), what="a pending job")
    drop(daemon.dir("m") / "a.pdf", pdf_bytes())
    url = f"{base}/jobs/{pending['jobId']}/cancel"
    assert http_json(url, "POST")[0] == 401
    assert http_json(url, "POST", token="wrong")[0] == 401
    code, answer = http_json(url, "POST", token=TOKEN)
    assert (code, answer["status"]) == (200, "aborted")
    daemon.wait_finished("m", 1)
    [status] = daemon.statuses("m", "error")
    assert status["status"] == "aborted" and status["jobId"] == pending["jobId"]
    assert daemon.files("m", "error") == ["a.pdf", "ab.job.json", "ab.status.json"]
    assert http_json(url, "POST", token=TOKEN)[0] == 409
    assert http_json(f"{base}/jobs/nope/cancel", "POST", token=TOKEN)[0] == 404

    (daemon.dir("f") / "forever.job").write_text("hang")
    [running] = wait_for(lambda: jobs(port, "processing"), what="a running job")
    done = cli(daemon, "cancel", running["jobId"])
    assert done.returncode == 0, done.stderr
    assert "aborted" in done.stdout
    daemon.wait_finished("f", 1)
    [status] = daemon.statuses("f", "error")
    assert status["status"] == "aborted"
    assert daemon.files("f", "error") == ["forever.job", "forever.status.json"]


def test_retry_runs_a_failed_job_again_as_the_same_job(hotfolder, tmp_path: Path) -> None:
    """The inputs come back from error/, the job id stays, attempts go on counting."""
    flag = tmp_path / "flag"
    daemon = hotfolder([{"name": "f", "workflow": "test-faults"}]).start()
    (daemon.dir("f") / "needy.job").write_text(f"needs:{flag}")
    daemon.wait_finished("f", 1)
    [failed] = daemon.statuses("f", "error")
    assert failed["error"]["code"] == "tool_failed"
    flag.touch()
    done = cli(daemon, "retry", failed["jobId"])
    assert done.returncode == 0, done.stderr
    wait_for(lambda: daemon.statuses("f", "out"), what="the retried job to succeed")
    [status] = daemon.statuses("f", "out")
    assert status["jobId"] == failed["jobId"] and status["attempts"] == 2
    assert daemon.files("f", "error") == []
    assert daemon.files("f", "archive") == ["needy.job"]
    again = cli(daemon, "retry", failed["jobId"])
    assert again.returncode == 1 and "only failed or aborted" in again.stderr
