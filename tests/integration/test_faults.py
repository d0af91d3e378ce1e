"""A crash, hang, memory blow-up or broken output fails only its own job."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest

from tests.helpers import job_dirs, wait_for
from tests.integration.conftest import REPO
from tests.samples import pdf_bytes

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
    # The memory limit is the file's size, not a crash: too_large, naming the limit.
    assert errors["hog.job"]["error"]["code"] == "too_large"
    assert "needed more than 1024 MB (worker_memory_limit)" in errors["hog.job"]["message"]
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


# --- the environment fails: full disk, unwritable folders, folders that vanish ---------


def _succeeds(*command: str) -> bool:
    """Run a system tool; False when it fails or is not installed."""
    try:
        return subprocess.run(command, capture_output=True).returncode == 0
    except OSError:
        return False


def _writable(directory: Path) -> bool:
    probe = directory / ".write-probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[str]:
    """Make ``directory`` unwritable for the daemon, even when the tests run as root.

    chmod binds only other users; root gets a read-only bind mount, or else the
    immutable attribute. Yields which was used; always undone.
    """
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        try:
            yield "chmod"
        finally:
            directory.chmod(mode)
        return
    path = str(directory)
    if _succeeds("mount", "--bind", path, path):
        try:
            if _succeeds("mount", "-o", "remount,ro,bind", path) and not _writable(directory):
                yield "read-only bind mount"
                return
        finally:
            subprocess.run(["umount", path], check=True)
    if _succeeds("chattr", "+i", path):
        try:
            if not _writable(directory):
                yield "chattr +i"
                return
        finally:
            subprocess.run(["chattr", "-i", path], check=True)
    pytest.fail(f"cannot make {directory} read-only here (no bind mount, no chattr)")


@contextlib.contextmanager
def small_filesystem(directory: Path, size_mb: int) -> Iterator[bool]:
    """A tmpfs of ``size_mb`` at ``directory`` where mounting is allowed (yields True).

    Elsewhere it yields False and ``directory`` is an ordinary folder: the test then
    injects ENOSPC at the step instead (faulty.py's ``fill:N``).
    """
    directory.mkdir(parents=True)
    mounted = _succeeds("mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(directory))
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(directory)], check=True)


def _incompressible_pdf(megabytes: float) -> bytes:
    """A one-page PDF whose image is random pixels: no engine can make it smaller."""
    side = int((megabytes * 1e6 / 3) ** 0.5)
    pdf = pikepdf.new()
    image = pdf.make_stream(
        os.urandom(side * side * 3),
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=side,
        Height=side,
        ColorSpace=pikepdf.Name.DeviceRGB,
        BitsPerComponent=8,
    )
    page = pikepdf.Page(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Page,
            MediaBox=[0, 0, 612, 612],
            Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im=image)),
            Contents=pdf.make_stream(b"q 612 0 0 612 0 0 cm /Im Do Q"),
        )
    )
    pdf.pages.append(page)
    out = io.BytesIO()
    pdf.save(out, compress_streams=False)
    return out.getvalue()


def test_full_disk_fails_the_job_keeps_the_original_and_leaves_nothing_partial(
    hotfolder, tmp_path: Path
) -> None:
    """ENOSPC while outputs are written: retried (io_error), then failed with the original
    and its status in error/; no partial file anywhere; the next file converts.

    Each folder is its own small tmpfs (the state dir is not on it), so the disk is
    really full: for a plugin step that leaves its partial output behind (the status
    still finds room: a failed attempt's files are removed before it is written), and
    for pdf-optimize, whose output of an incompressible 3.5 MB PDF cannot fit.
    """
    with (
        small_filesystem(tmp_path / "fill", 4) as real_fill,
        small_filesystem(tmp_path / "pdfs", 6) as real_pdfs,
    ):
        daemon = hotfolder(
            [
                {"name": "fill", "workflow": "test-faults", "timeout": 30},
                {"name": "pdfs", "workflow": "pdf-optimize", "timeout": 30},
            ],
            retry_backoff=0.1,
        ).start()
        try:
            command = "fill" if real_fill else "fill:3000000"
            (daemon.dir("fill") / "fill.job").write_text(command)
            daemon.wait_finished("fill", 1)
            [failed] = daemon.statuses("fill", "error")
            assert failed["error"]["code"] == "io_error" and failed["attempts"] == 3
            assert "No space left on device" in failed["error"]["message"]
            assert daemon.files("fill", "error") == ["fill.job", "fill.status.json"]
            assert (daemon.dir("fill", "error") / "fill.job").read_text() == command
            assert daemon.files("fill", "out") == []
            wait_for(lambda: not job_dirs(tmp_path / "fill/.hotfolder/jobs"))
            if real_fill:
                usage = os.statvfs(tmp_path / "fill")
                assert usage.f_bfree > 0.9 * usage.f_blocks, "the partial output was removed"

            if real_pdfs:
                big = _incompressible_pdf(3.5)
                (daemon.dir("pdfs") / "big.pdf").write_bytes(big)
                daemon.wait_finished("pdfs", 1)
                [failed] = daemon.statuses("pdfs", "error")
                assert failed["error"]["code"] == "io_error"
                assert (daemon.dir("pdfs", "error") / "big.pdf").read_bytes() == big
                assert daemon.files("pdfs", "out") == []
            # The disk has room again: conversions go on.
            (daemon.dir("pdfs") / "good.pdf").write_bytes(pdf_bytes(pages=2))
            daemon.wait_finished("pdfs", 1 + real_pdfs)
            assert daemon.files("pdfs", "out") == ["good.pdf", "good.status.json"]
            with pikepdf.open(daemon.dir("pdfs", "out") / "good.pdf") as pdf:
                assert len(pdf.pages) == 2
            for folder in ("fill", "pdfs"):
                for status in daemon.statuses(folder, "error") + daemon.statuses(folder):
                    assert status["jobId"]  # every visible status file is whole JSON
            wait_for(lambda: not job_dirs(tmp_path / "pdfs/.hotfolder/jobs"))
            assert daemon.proc.poll() is None
        finally:
            daemon.stop()


def test_unwritable_output_folder_holds_the_job_until_it_can_be_written(hotfolder) -> None:
    """out/ that cannot be written: the job's result waits (original kept, nothing
    partial, other folders go on, a restart meanwhile is fine) and is published once
    out/ is writable again, without a restart."""
    daemon = hotfolder(
        [{"name": "p", "workflow": "pdf-optimize"}, {"name": "q", "workflow": "pdf-optimize"}]
    ).start()
    jobs = daemon.root / "p/.hotfolder/jobs"
    original = pdf_bytes(pages=2)
    with read_only(daemon.dir("p", "out")):
        (daemon.dir("p") / "a.pdf").write_bytes(original)
        wait_for(lambda: b"could not be published" in daemon.log.read_bytes(), what="failure")
        (daemon.dir("q") / "b.pdf").write_bytes(pdf_bytes())
        daemon.wait_finished("q", 1)
        # A restart while out/ is still unwritable: the daemon starts and keeps the job.
        assert daemon.stop() == 0
        daemon.start()
        (daemon.dir("q") / "c.pdf").write_bytes(pdf_bytes())
        daemon.wait_finished("q", 2)
        assert daemon.files("p", "out") == [] and daemon.files("p", "error") == []
        [job] = list(jobs.iterdir())
        assert (job / "input" / "a.pdf").read_bytes() == original
    daemon.wait_finished("p", 1, timeout=30)
    assert daemon.files("p", "out") == ["a.pdf", "a.status.json"]
    assert (daemon.dir("p", "archive") / "a.pdf").read_bytes() == original
    [status] = daemon.statuses("p")
    assert status["status"] == "success"
    wait_for(lambda: not job_dirs(jobs), what="empty work area")
    assert daemon.stop() == 0


def test_input_folder_removed_and_recreated_while_running(hotfolder, tmp_path: Path) -> None:
    """in/ deleted and made again (empty, by the daemon, or as a whole with files in it):
    intake follows each new folder at once, not only at the next rescan."""
    daemon = hotfolder(
        [{"name": "p", "workflow": "pdf-optimize", "settle": 0.2}], rescan_interval=600
    ).start()
    inbox = daemon.dir("p")
    (inbox / "a.pdf").write_bytes(pdf_bytes())
    daemon.wait_finished("p", 1)
    shutil.rmtree(inbox)
    inbox.mkdir()
    (inbox / "b.pdf").write_bytes(pdf_bytes())
    daemon.wait_finished("p", 2, timeout=15)
    shutil.rmtree(inbox)
    wait_for(inbox.is_dir, what="the daemon recreating in/")
    (inbox / "c.pdf").write_bytes(pdf_bytes())
    daemon.wait_finished("p", 3, timeout=15)
    staged = tmp_path / "staged"
    staged.mkdir()
    for name in ("d.pdf", "e.pdf"):
        (staged / name).write_bytes(pdf_bytes())
    shutil.rmtree(inbox)
    staged.rename(inbox)
    daemon.wait_finished("p", 5, timeout=15)
    assert sorted(s["inputs"][0]["name"] for s in daemon.statuses("p")) == [
        f"{n}.pdf" for n in "abcde"
    ]
    assert daemon.files("p", "error") == []
    assert daemon.stop() == 0


def test_read_only_state_dir_at_start_is_a_clear_error_with_exit_73(
    hotfolder, tmp_path: Path
) -> None:
    """A state dir that exists (with its journal) but cannot be written: exit 73 and a
    message naming it, before anything else happens (test_cli covers a file in its place)."""
    daemon = hotfolder([{"name": "p", "workflow": "pdf-optimize"}]).start()
    assert daemon.stop() == 0
    (daemon.dir("p") / "waiting.pdf").write_bytes(pdf_bytes())
    with read_only(tmp_path / "state"):
        result = subprocess.run(
            [sys.executable, "-m", "hotfolder", "run", "--config", str(daemon.config)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert result.returncode == 73, result.stderr
    assert str(tmp_path / "state") in result.stderr and "not writable" in result.stderr
    assert "Traceback" not in result.stderr
    assert daemon.files("p", "in") == ["waiting.pdf"]  # nothing was claimed
