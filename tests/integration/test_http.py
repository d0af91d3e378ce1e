"""The HTTP endpoint: health and the jobs API read from the journal."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

from tests.helpers import free_port, http_json, wait_for
from tests.samples import pdf_bytes


def get(url: str) -> tuple[int, dict]:
    return http_json(url)


def test_healthz_and_jobs_api(hotfolder) -> None:
    port = free_port()
    daemon = hotfolder([{"name": "faults", "workflow": "test-faults"}])
    text = daemon.config.read_text().replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    daemon.config.write_text(text)
    daemon.start()
    base = f"http://127.0.0.1:{port}"
    assert get(f"{base}/healthz") == (
        200,
        {
            "healthy": True,
            "problems": [],
            "folders": {"faults": {"settling": 0, "ignored": []}},
        },
    )
    (daemon.dir("faults") / "a.job").write_text("ok")
    (daemon.dir("faults") / "b.job").write_text("broken")
    daemon.wait_finished("faults", 2)
    code, listing = get(f"{base}/jobs?folder=faults")
    assert code == 200 and len(listing["jobs"]) == 2
    code, failed = get(f"{base}/jobs?status=failed")
    assert [j["inputs"][0]["name"] for j in failed["jobs"]] == ["b.job"]
    job_id = failed["jobs"][0]["jobId"]
    code, one = get(f"{base}/jobs/{job_id}")
    assert code == 200 and one["error"]["code"] == "tool_failed"
    code, missing = get(f"{base}/jobs/nope")
    assert code == 404 and missing["error"]["code"] == "not_found"
    # A folder that cannot be watched (its input replaced by a file) makes it unhealthy.
    daemon.dir("faults").rename(daemon.root / "moved-away")
    daemon.dir("faults").write_text("not a folder")
    code, health = wait_for(lambda: (r := get(f"{base}/healthz"))[0] == 503 and r, what="unhealthy")
    assert "faults" in health["problems"][0]


def test_30_seconds_of_concurrent_load_gives_no_errors_and_conversions_go_on(hotfolder) -> None:
    """Eight clients hammer /healthz, /jobs, /jobs/{id} and /metrics for 30 s while files
    keep arriving: every answer is a 200 with a whole body, and every file converts."""
    port = free_port()
    daemon = hotfolder(
        [{"name": "load", "workflow": "pdf-optimize", "settle": 0.2}],
        http={"listen": f"127.0.0.1:{port}"},
    ).start()
    base = f"http://127.0.0.1:{port}"
    (daemon.dir("load") / "first.pdf").write_bytes(pdf_bytes())
    daemon.wait_finished("load", 1)
    known_id = daemon.statuses("load")[0]["jobId"]
    paths = ["/healthz", "/jobs?limit=50", "/jobs?folder=load&status=success", "/metrics"]
    paths.append(f"/jobs/{known_id}")
    stop = threading.Event()
    errors: list[str] = []
    counts: list[int] = []

    def client(offset: int) -> None:
        done = 0
        while not stop.is_set():
            path = paths[(done + offset) % len(paths)]
            try:
                with urllib.request.urlopen(base + path, timeout=30) as response:
                    body = response.read()
                    if response.status != 200:
                        errors.append(f"{path}: HTTP {response.status}")
                    elif path == "/metrics":
                        if b"hotfolder_jobs_finished_total" not in body:
                            errors.append(f"{path}: no job counter in {body[:200]!r}")
                    else:
                        json.loads(body)
            except Exception as exc:  # refused, reset, timeout, a 5xx, half a body
                errors.append(f"{path}: {exc!r}")
            done += 1
        counts.append(done)

    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in clients:
        thread.start()
    dropped = 1
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            (daemon.dir("load") / f"doc{dropped:03d}.pdf").write_bytes(pdf_bytes())
            dropped += 1
            # One file about every 0.2 s, paced by the daemon's own progress.
            wait_for(lambda d=dropped: daemon.finished("load") >= d - 3, timeout=30)
    finally:
        stop.set()
        for thread in clients:
            thread.join(60)
    assert errors[:5] == [] and len(errors) == 0
    assert sum(counts) > 1000, f"only {sum(counts)} requests in 30 s"
    daemon.wait_finished("load", dropped)
    assert {s["status"] for s in daemon.statuses("load")} == {"success"}
    assert get(f"{base}/healthz")[0] == 200
    assert daemon.stop() == 0
