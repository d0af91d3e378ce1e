"""The worker side of a job: inputs are checked before anything reads them."""

from __future__ import annotations

import os
from pathlib import Path

from hotfolder.models import ConversionSpec, JobSpec
from hotfolder.workflows.runner import run_job
from tests.samples import pdf_bytes


def spec(tmp_path: Path, *inputs: Path) -> JobSpec:
    return JobSpec(
        job_id="job",
        job_name="doc",
        conversions=[ConversionSpec(workflow="pdf-optimize")],
        inputs=[str(path) for path in inputs],
        work_dir=str(tmp_path / "work"),
    )


def test_a_hard_link_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A second name of a file (maybe outside the folders) is never read: not even its
    atime moves (set before its mtime, so that any read under relatime would)."""
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(pdf_bytes())
    mtime = outside.stat().st_mtime_ns
    os.utime(outside, ns=(mtime - 10**10, mtime))
    dropped = tmp_path / "dropped.pdf"
    os.link(outside, dropped)
    outcome = run_job(spec(tmp_path, dropped))
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.code == "not_regular_file"
    assert "hard link" in outcome.error.message and "2 names" in outcome.error.message
    assert outside.stat().st_atime_ns == mtime - 10**10
    assert outcome.inputs == []  # not even fingerprinted


def test_a_file_with_one_name_converts(tmp_path: Path) -> None:
    dropped = tmp_path / "dropped.pdf"
    dropped.write_bytes(pdf_bytes())
    outcome = run_job(spec(tmp_path, dropped))
    assert outcome.ok, outcome.message
