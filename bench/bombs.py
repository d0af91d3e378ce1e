"""Peak worker memory: decompression bombs against the normal corpus.

Run from the repository root: ``.venv/bin/python -m bench.bombs`` (``--documents N``,
``--workers-limit MB``). Results: ``bench/results/bombs.json``.

One real daemon (``hotfolder run``) with one worker, ``max_jobs_per_worker = 1``
(every job gets a fresh worker process, so a process's peak is one job's) and the
default memory settings unless ``--workers-limit`` is given. Jobs run one at a time;
a sampler reads the peak resident set (``VmHWM``) of the worker and any engine it
starts (Ghostscript) from /proc every 20 ms. Inputs:

* the 2 GiB bombs of issue 12 (``tests/hostile.py``): a 2 MB PDF whose page content
  inflates to 2 GiB of spaces, and the same data as a 60000 x 60000 image, through
  pdf-optimize, pdf-archive, pdf-to-image and pdf-split;
* the normal corpus (``bench/corpus.py``): documents (reports, scans, a legacy
  report that needs Ghostscript) through the same four workflows, and photos
  through image-convert.

Each row: workflow, input, outcome (success or the error code), seconds, and the
peak RSS in MB of the largest process of that job.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests import hostile

from bench import corpus, procstat
from bench.daemon import Daemon

RESULTS = Path(__file__).resolve().parent / "results" / "bombs.json"
PDF_WORKFLOWS = ("pdf-optimize", "pdf-archive", "pdf-to-image", "pdf-split")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _peak_rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler:
    """The largest VmHWM of the workers and the engines they started.

    The forkserver the workers are forked from is left out: it converts nothing,
    and its own resident pages, counted again in each worker, would hide them.
    """

    def __init__(self, daemon_pid: int) -> None:
        self.daemon_pid = daemon_pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            servers = [
                pid for pid in procstat.children(self.daemon_pid) if b"forkserver" in _cmdline(pid)
            ]
            for pid in (p for server in servers for p in procstat.descendants(server)):
                self.peak = max(self.peak, _peak_rss_mb(pid))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _inputs(scratch: Path, documents: int, photos: int) -> list[tuple[str, Path]]:
    """(kind, file): the bombs first, then the corpus."""
    made = scratch / "inputs"
    made.mkdir()
    files: list[tuple[str, Path]] = []
    for name, data in (
        ("content-bomb.pdf", hostile.spaces_pdf(2)),
        ("image-bomb.pdf", hostile.spaces_pdf(2, image_side=60000)),
    ):
        (made / name).write_bytes(data)
        files.append(("bomb", made / name))
    for seed in range(documents):
        files.append(("document", corpus.document_pdf(made / f"document-{seed}.pdf", seed)))
    for seed in range(photos):
        path = made / f"photo-{seed}.jpg"
        files.append(("photo", corpus.write_photo(path, seed, 2000, 1500)))
    return files


def _outcome(daemon: Daemon, folder: str, stem: str) -> str:
    for sub in ("out", "error"):
        status = daemon.folder(folder, sub) / f"{stem}.status.json"
        if status.exists():
            error = json.loads(status.read_text())["error"]
            return str(error["code"]) if error else "success"
    return "missing"


def measure(scratch: Path, documents: int, photos: int, limit: str | int) -> dict[str, Any]:
    """Run every input through its workflows, one job at a time; return the rows."""
    files = _inputs(scratch, documents, photos)
    folders = [
        {"name": name, "path": name, "workflow": name, "settle": 0.2, "timeout": 600}
        for name in (*PDF_WORKFLOWS, "image-convert")
    ]
    daemon = Daemon(
        scratch / "daemon", folders, workers=1, max_jobs_per_worker=1, worker_memory_limit=limit
    )
    daemon.start()
    rows = []
    try:
        for kind, path in files:
            for workflow in ("image-convert",) if kind == "photo" else PDF_WORKFLOWS:
                done = daemon.finished_jobs()
                began = time.monotonic()
                with PeakSampler(daemon.pid) as sampler:
                    shutil.copy(path, daemon.folder(workflow) / path.name)
                    daemon.wait_finished(done + 1, timeout=900)
                rows.append(
                    {
                        "workflow": workflow,
                        "input": path.name,
                        "kind": kind,
                        "outcome": _outcome(daemon, workflow, path.stem),
                        "seconds": round(time.monotonic() - began, 2),
                        "peak_rss_mb": round(sampler.peak, 1),
                    }
                )
                print(json.dumps(rows[-1]))
        memory_line = next(
            (e.message for e in daemon.events(lambda e: "worker memory limit" in e.message)),
            "not logged (before issue 12)",
        )
    finally:
        daemon.stop()
    return {"memory_limit": memory_line, "rows": rows}


def main() -> None:
    """Measure and write ``bench/results/bombs.json`` (or ``--results``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.bombs", description=__doc__)
    parser.add_argument("--documents", type=int, default=6)
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--workers-limit", default="auto", help='worker_memory_limit ("auto")')
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    limit: str | int = "auto" if args.workers_limit == "auto" else int(args.workers_limit)
    scratch = Path(tempfile.mkdtemp(prefix="hotfolder-bombs-"))
    try:
        found = measure(scratch, args.documents, args.photos, limit)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    corpus_rows = [row for row in found["rows"] if row["kind"] != "bomb"]
    summary = {
        "bombs": {
            f"{row['workflow']} {row['input']}": [row["outcome"], row["peak_rss_mb"]]
            for row in found["rows"]
            if row["kind"] == "bomb"
        },
        "corpus_peak_rss_mb_max": max((row["peak_rss_mb"] for row in corpus_rows), default=0),
        "corpus_failures": [row for row in corpus_rows if row["outcome"] != "success"],
    }
    document = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        **found,
        "summary": summary,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
