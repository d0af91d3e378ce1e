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


def _capture(level: str, capsys, emit) -> list[dict]:
    """Configure JSON logging at ``level``, run ``emit``, return the lines it wrote."""
    from hotfolder.logs import configure

    configure(level, "json")
    try:
        emit()
    finally:
        configure("INFO", "text")
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]


def test_library_lines_inside_a_job_carry_its_id_and_quiet_ones_are_debug(capsys) -> None:
    """What libraries log while a job runs names the job; fontTools' chatter is DEBUG."""
    from hotfolder.logs import job_logging

    def emit() -> None:
        with job_logging("01JOB"):
            logging.getLogger("fontTools.ttLib.tables._h_e_a_d").warning(
                "'modified' timestamp seems very low; regarding as unix timestamp"
            )
            logging.getLogger("fontTools.subset").error("a real failure")
            logging.getLogger("img2pdf").warning("something about the image")
            logging.getLogger("hotfolder.job").info("own", extra={"job_id": "01OWN"})
        logging.getLogger("img2pdf").warning("between jobs")

    lines = _capture("DEBUG", capsys, emit)
    seen = [(line["logger"], line["level"], line.get("jobId")) for line in lines]
    assert seen == [
        ("fontTools.ttLib.tables._h_e_a_d", "DEBUG", "01JOB"),
        ("fontTools.subset", "ERROR", "01JOB"),
        ("img2pdf", "WARNING", "01JOB"),
        ("hotfolder.job", "INFO", "01OWN"),  # an explicit id is kept
        ("img2pdf", "WARNING", None),
    ]
    # At the usual INFO level the lowered lines are not written at all.
    at_info = _capture("INFO", capsys, emit)
    assert [line["logger"] for line in at_info] == [
        "fontTools.subset",
        "img2pdf",
        "hotfolder.job",
        "img2pdf",
    ]
