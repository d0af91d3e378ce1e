"""Invariant 6 for memory: a decompression bomb fails its own job, bounded, named right.

A 2 MB PDF whose page content inflates to 2 GiB of spaces, and the same data as a
60000 x 60000 image, go through every PDF workflow of the real daemon. Each job
ends ``too_large`` (or succeeds where the engine never decodes the data), while a
sampler reads every worker's peak RSS (``VmHWM``) from /proc; it stays under the
configured limit, and good files dropped right after convert.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from tests import hostile
from tests.helpers import drop, drop_manifest, run_cli, wait_for
from tests.integration.conftest import HotfolderProcess
from tests.samples import pdf_bytes

#: MB per worker: small enough for a bomb that reaches the engines to hit it in a
#: second or two, large enough for every ordinary conversion.
LIMIT_MB = 512
#: What RSS may exceed the limit by: none in theory (RSS is part of the address
#: space); a page of rounding.
MARGIN_MB = 16
#: The early size check counts inflated bytes up to this many MB (default 512).
CHECKED = {"PDF.MAX_DECODED_MB": 64}
#: Lets a bomb smaller than the worker's limit past the early size check, into the
#: engines, which need more than the limit to parse it.
UNCHECKED = {"PDF.MAX_DECODED_MB": 100_000}


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (in parentheses) may hold spaces; ppid follows it.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


class PeakSampler:
    """Samples the peak RSS of every process below the daemon (workers, engines)."""

    def __init__(self, daemon_pid: int) -> None:
        self.daemon_pid = daemon_pid
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for pid in _descendants(self.daemon_pid):
                peak = _peak_rss_mb(pid)
                if peak is not None:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0.0))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """The two bombs, each about 2 MB on disk (built without holding the 2 GiB)."""
    return {
        "content-bomb.pdf": hostile.spaces_pdf(2),
        "image-bomb.pdf": hostile.spaces_pdf(2, image_side=60000),
        "content-300.pdf": hostile.spaces_pdf(0.3),
    }


def _outcome(status: dict) -> str:
    return status["error"]["code"] if status["error"] else "success"


def _by_input(daemon: HotfolderProcess, folder: str) -> dict[str, dict]:
    found = {}
    for sub in ("out", "error"):
        for status in daemon.statuses(folder, sub):
            found[status["inputs"][0]["name"]] = status
    return found


FOLDERS = [
    {"name": "optimize", "workflow": "pdf-optimize", "options": CHECKED},
    {"name": "archive", "workflow": "pdf-archive", "options": CHECKED},
    {"name": "render", "workflow": "pdf-to-image", "options": CHECKED},
    {"name": "split", "workflow": "pdf-split"},
    {"name": "merge", "workflow": "pdf-merge"},
    {"name": "archive-unchecked", "workflow": "pdf-archive", "options": UNCHECKED},
    {"name": "render-unchecked", "workflow": "pdf-to-image", "options": UNCHECKED},
]


def _bombs_for(folder: str) -> list[str]:
    if folder == "merge":
        return []  # one job, from a manifest
    if folder == "archive-unchecked":
        # A stream larger than the worker's whole limit fails the early check as
        # the limit's, whatever PDF.MAX_DECODED_MB allows.
        return ["content-bomb.pdf", "content-300.pdf"]
    if folder == "render-unchecked":
        # Past the early check, pdfium parses 300 MB in more than 512 MB.
        return ["content-300.pdf"]
    return ["content-bomb.pdf", "image-bomb.pdf"]


def test_bombs_fail_their_own_job_within_the_memory_limit(
    hotfolder, bombs: dict[str, bytes]
) -> None:
    daemon = hotfolder(
        [{**folder, "timeout": 60} for folder in FOLDERS], worker_memory_limit=LIMIT_MB
    ).start()
    assert daemon.proc is not None
    with PeakSampler(daemon.proc.pid) as sampler:
        for folder in FOLDERS:
            for name in _bombs_for(folder["name"]):
                drop(daemon.dir(folder["name"]) / name, bombs[name])
        # A merge of the content bomb with a good file: one job, two inputs.
        drop(daemon.dir("merge") / "good.pdf", pdf_bytes(pages=2))
        drop(daemon.dir("merge") / "content-bomb.pdf", bombs["content-bomb.pdf"])
        drop_manifest(
            daemon.dir("merge") / "both.job.json", inputs=["content-bomb.pdf", "good.pdf"]
        )
        for folder in FOLDERS:
            expected = len(_bombs_for(folder["name"])) or 1
            daemon.wait_finished(folder["name"], expected, timeout=90)
        # Good files dropped right after the bombs convert.
        for folder in FOLDERS:
            if folder["name"] != "merge":
                drop(daemon.dir(folder["name"]) / "after.pdf", pdf_bytes(pages=2, text="after"))
        for folder in FOLDERS:
            expected = len(_bombs_for(folder["name"])) + 1
            daemon.wait_finished(folder["name"], expected, timeout=60)
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0

    results = {folder["name"]: _by_input(daemon, folder["name"]) for folder in FOLDERS}
    for folder, statuses in results.items():
        for name, status in statuses.items():
            outcome = _outcome(status)
            assert outcome in ("too_large", "success"), (folder, name, status["message"])
            if name == "after.pdf":
                assert outcome == "success", (folder, status["message"])
    # The early check names its option; a bomb let into the engines hits the limit.
    options = {"content-bomb.pdf": "PDF.MAX_DECODED_MB", "image-bomb.pdf": "PDF.MAX_IMAGE_PIXELS"}
    for folder in ("optimize", "archive", "render"):
        for name in _bombs_for(folder):
            status = results[folder][name]
            assert _outcome(status) == "too_large", (folder, name, status["message"])
            assert options[name] in status["message"]
    for folder in ("archive-unchecked", "render-unchecked"):
        for name in _bombs_for(folder):
            status = results[folder][name]
            assert _outcome(status) == "too_large", (folder, name, status["message"])
            assert f"needed more than {LIMIT_MB} MB (worker_memory_limit)" in status["message"]
    # Split and merge copy the streams without decoding them: they succeed.
    assert {_outcome(s) for s in results["split"].values()} == {"success"}
    assert _outcome(results["merge"]["content-bomb.pdf"]) == "success"

    assert sampler.peaks, "no worker was sampled"
    worst = max(sampler.peaks.values())
    assert worst < LIMIT_MB + MARGIN_MB, f"a worker reached {worst:.0f} MB of RSS"


def _limits_or_empty(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return ""  # the process has ended


def test_the_default_limit_is_derived_shown_and_enforced(hotfolder) -> None:
    faults = {"name": "faults", "workflow": "test-faults", "timeout": 60}
    daemon = hotfolder([faults])
    assert "worker_memory_limit" not in daemon.config.read_text()
    checked = run_cli(daemon.config, "check-config")
    assert checked.returncode == 0, checked.stderr
    shown = checked.stdout
    match = re.search(
        r"worker memory limit: (\d+) MB per worker process \(worker_memory_limit = auto", shown
    )
    assert match, shown
    limit_mb = int(match.group(1))
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert 1024 <= limit_mb <= total_mb // 2

    daemon.start()
    assert f"worker memory limit: {limit_mb} MB" in daemon.log.read_text()
    assert daemon.proc is not None
    pattern = re.compile(rf"^Max address space\s+{limit_mb * 2**20}\s", re.MULTILINE)

    def limited() -> list[int]:
        pids = _descendants(daemon.proc.pid) if daemon.proc else []
        return [pid for pid in pids if pattern.search(_limits_or_empty(pid))]

    # Both workers (the forkserver above them has no limit) set it as they start.
    wait_for(lambda: len(limited()) == 2, timeout=30, what="two limited workers")
    # A job that allocates without end fails too_large at that limit, alone.
    (daemon.dir("faults") / "hog.job").write_text("reserve")
    (daemon.dir("faults") / "ok.job").write_text("ok")
    daemon.wait_finished("faults", 2)
    statuses = _by_input(daemon, "faults")
    assert _outcome(statuses["ok.job"]) == "success"
    assert _outcome(statuses["hog.job"]) == "too_large"
    assert f"needed more than {limit_mb} MB (worker_memory_limit)" in statuses["hog.job"]["message"]
    assert daemon.stop() == 0
