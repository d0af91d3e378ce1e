"""Log lines carry the job id: a prefix in text, a field in JSON."""

from __future__ import annotations

import json
import logging

from hotfolder.logs import JsonFormatter, TextFormatter


def record(**extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord(
        {"name": "hotfolder.dispatch", "levelname": "INFO", "levelno": 20, "msg": "done %s"}
    )
    made.args = ("ok",)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_text_prefixes_the_job_id() -> None:
    """[job <id>] before the message; nothing when no job is involved."""
    assert "INFO hotfolder.dispatch: [job 01ABC] done ok" in TextFormatter().format(
        record(job_id="01ABC")
    )
    assert "hotfolder.dispatch: done ok" in TextFormatter().format(record())


def test_json_has_one_object_with_job_id_and_extras() -> None:
    """jobId and other extras become fields; the line is valid JSON."""
    line = JsonFormatter().format(record(job_id="01ABC", folder="scans"))
    document = json.loads(line)
    assert document["jobId"] == "01ABC" and document["folder"] == "scans"
    assert document["message"] == "done ok" and document["level"] == "INFO"
    assert document["time"].endswith("+00:00")
