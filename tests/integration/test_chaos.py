"""Invariants 3 and 5 under fire: 20 ``kill -9`` at random moments of a 500-file run.

Each kill lands at a random moment after the daemon was spawned: during start-up
and recovery, while claiming, converting or publishing. Files keep arriving
between and during the runs. A checker thread opens every file the moment it
appears in out/, error/ or archive/; at the end every input has exactly one
output and one status, its original is archived once, and the work area is empty.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pikepdf

from tests.helpers import job_dirs, wait_for
from tests.integration.conftest import REPO
from tests.samples import pdf_bytes

TOTAL = 500
KILLS = 20
#: Pages per document: enough work per job that a kill lands while some is left.
PAGES = 120


def spawn(daemon) -> None:
    """Start the daemon without waiting for it to be ready: kills may land during start-up."""
    daemon._log_handle = daemon.log.open("ab")
    daemon.proc = subprocess.Popen(
        [sys.executable, "-m", "hotfolder", "run", "--config", str(daemon.config)],
        stdout=daemon._log_handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO), "HOTFOLDER_LOG_LEVEL": "DEBUG"},
        cwd=daemon.root,
    )


class VisibleFilesChecker(threading.Thread):
    """Opens each file once, as soon as it shows up: a partial file would fail to parse."""

    def __init__(self, folders: list[Path]) -> None:
        super().__init__(daemon=True)
        self.folders = folders
        self.stop = threading.Event()
        self.checked: set[Path] = set()
        self.broken: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for folder in self.folders:
                for path in self._new_entries(folder):
                    self._check(path)
            self.stop.wait(0.005)

    def _new_entries(self, folder: Path) -> list[Path]:
        try:
            return [Path(e.path) for e in os.scandir(folder) if Path(e.path) not in self.checked]
        except FileNotFoundError:
            return []

    def _check(self, path: Path) -> None:
        try:
            if path.name.endswith(".status.json"):
                json.loads(path.read_bytes())
            elif path.suffix == ".pdf":
                with pikepdf.open(path) as pdf:
                    assert len(pdf.pages) == PAGES
            else:
                self.broken.append(f"unexpected file {path}")
        except FileNotFoundError:
            return  # moved on (never happens to published files, but not a failure)
        except Exception as exc:
            self.broken.append(f"{path}: {exc!r}")
        self.checked.add(path)


def test_20_kill_9_at_random_moments_of_a_500_file_run(hotfolder) -> None:
    rng = random.Random(20261125)  # the same kill moments on every run
    daemon = hotfolder(
        [{"name": "chaos", "workflow": "pdf-optimize", "settle": 0.2}], retry_backoff=0.1
    )
    inbox = daemon.dir("chaos")
    for sub in ("in", "out", "error", "archive"):
        daemon.dir("chaos", sub).mkdir(parents=True, exist_ok=True)
    checker = VisibleFilesChecker([daemon.dir("chaos", s) for s in ("out", "error", "archive")])
    checker.start()
    dropped: dict[str, bytes] = {}

    def drop(count: int) -> None:
        for _ in range(count):
            name = f"doc{len(dropped):03d}.pdf"
            # PAGES pages: enough work per job that a kill lands while some is left
            # (the daemon takes one-page files faster than a kill can be aimed).
            data = pdf_bytes(pages=PAGES, text=f"document {len(dropped)}")
            # Written elsewhere and renamed in, as a careful producer does: the test is
            # about the daemon's crashes, not about settling half-written files.
            temp = daemon.root / f".{name}"
            temp.write_bytes(data)
            temp.rename(inbox / name)
            dropped[name] = data

    killed_with_work_left = 0
    try:
        per_round = TOTAL // (KILLS + 1)
        for _ in range(KILLS):
            drop(per_round)
            offset = daemon.log.stat().st_size if daemon.log.exists() else 0
            spawn(daemon)
            if rng.random() < 0.75:
                # Most kills land while jobs are claimed, converted and published ...
                wait_for(
                    lambda o=offset: b"hotfolder started" in daemon.log.read_bytes()[o:],
                    timeout=60,
                    what="daemon start",
                )
                moment = rng.uniform(0.0, 0.2)
            else:
                # ... the others during start-up: recovery of the last crash's work.
                moment = rng.uniform(0.0, 1.0)
            time.sleep(moment)  # the random moment itself, not a wait for a condition
            assert daemon.proc.poll() is None, daemon.log.read_text(errors="replace")[-3000:]
            daemon.kill()
            killed_with_work_left += daemon.finished("chaos") < len(dropped)
        drop(TOTAL - len(dropped))
        daemon.start()
        daemon.wait_finished("chaos", TOTAL, timeout=120)
        assert daemon.stop() == 0
    finally:
        checker.stop.set()
        checker.join(10)
    assert checker.broken == []
    assert killed_with_work_left >= KILLS // 2, (
        f"only {killed_with_work_left} kills landed while work was left"
    )
    assert b"Traceback" not in daemon.log.read_bytes()

    names = sorted(dropped)
    stems = [name[: -len(".pdf")] for name in names]
    assert daemon.files("chaos", "out") == sorted(
        [f"{s}.pdf" for s in stems] + [f"{s}.status.json" for s in stems]
    )
    assert daemon.files("chaos", "archive") == names
    assert daemon.files("chaos", "error") == [] and daemon.files("chaos", "in") == []
    assert not job_dirs(daemon.root / "chaos/.hotfolder/jobs")
    statuses = {s["inputs"][0]["name"]: s for s in daemon.statuses("chaos")}
    assert len({s["jobId"] for s in statuses.values()}) == TOTAL
    out, archive = daemon.dir("chaos", "out"), daemon.dir("chaos", "archive")
    for name, data in dropped.items():
        status = statuses[name]
        assert status["status"] == "success"
        assert status["inputs"][0]["sha256"] == hashlib.sha256(data).hexdigest()
        [output] = status["outputs"]
        assert output["name"] == name
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == output["sha256"]
        assert (archive / name).read_bytes() == data
    # The journal agrees with the folders: one finished job per input, none left over.
    command = ["status", "--json", "--limit", "100000", "--config", str(daemon.config)]
    listing = subprocess.run(
        [sys.executable, "-m", "hotfolder", *command],
        capture_output=True,
        text=True,
        check=True,
    )
    jobs = json.loads(listing.stdout)
    assert len(jobs) == TOTAL
    assert {job["status"] for job in jobs} == {"success"}


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (the daemon's folder is in its workers')."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass  # gone meanwhile
    return found


def test_workers_die_with_a_killed_daemon(hotfolder) -> None:
    """After ``kill -9`` no worker goes on with its job: it would write into the work dir
    while the restarted daemon runs the same job there again."""
    daemon = hotfolder([{"name": "f", "workflow": "test-faults", "timeout": 60}]).start()
    # The forkserver and the workers carry the daemon's folder (its cwd) in their sys.path.
    assert _processes_mentioning(str(daemon.root))
    (daemon.dir("f") / "slow.job").write_text("slow:4")
    wait_for(lambda: b" processing " in daemon.log.read_bytes(), what="the job running")
    daemon.kill()
    wait_for(
        lambda: not _processes_mentioning(str(daemon.root)),
        timeout=2,
        what="the workers to end with the daemon",
    )
    daemon.start()
    daemon.wait_finished("f", 1)
    [status] = daemon.statuses("f")
    assert status["status"] == "success" and status["attempts"] == 2
    assert daemon.stop() == 0
