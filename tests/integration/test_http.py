"""The HTTP endpoint: health and the jobs API read from the journal."""

from __future__ import annotations

from tests.helpers import free_port, http_json, wait_for


def get(url: str) -> tuple[int, dict]:
    return http_json(url)


def test_healthz_and_jobs_api(hotfolder) -> None:
    port = free_port()
    daemon = hotfolder([{"name": "faults", "workflow": "test-faults"}])
    text = daemon.config.read_text().replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    daemon.config.write_text(text)
    daemon.start()
    base = f"http://127.0.0.1:{port}"
    assert get(f"{base}/healthz") == (200, {"healthy": True, "problems": []})
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
