"""The shell recipe admins write instead of a hot-folder daemon.

``inotifywait -m`` prints every file that lands in the input; ``xargs -P``
runs one conversion command per file, as many at a time as there are
workers; the command writes the output under a temporary name, renames it
into out/ and moves the original to archive/. The conversion is the cheapest
honest one: a ``python -c`` one-liner that rewrites the PDF with pikepdf the
way pdf-optimize does by default (object streams, recompressed streams),
without any of the daemon's checks, status files or journal.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.daemon import wait_until

CONVERT = (
    "import sys, pikepdf\n"
    "with pikepdf.open(sys.argv[1]) as pdf:\n"
    "    pdf.save(sys.argv[2], object_stream_mode=pikepdf.ObjectStreamMode.generate,\n"
    "             compress_streams=True, recompress_flate=True)\n"
)

SCRIPT = """\
cd "$1"
inotifywait -m -e close_write -e moved_to --format '%f' in 2>inotify.log |
  xargs -d '\\n' -n 1 -P "$2" sh -c '
    "$0" -c "$CONVERT" "in/$1" "out/.$1.tmp" &&
    mv "out/.$1.tmp" "out/$1" &&
    mv "in/$1" "archive/$1"' "$3"
"""


def available() -> bool:
    """True when inotifywait (Debian package inotify-tools) is installed."""
    return shutil.which("inotifywait") is not None


class ShellRecipe:
    """``inotifywait -m | xargs -P`` on ``root``/in, writing out/ and archive/."""

    def __init__(self, root: Path, workers: int) -> None:
        self.root = root
        for sub in ("in", "out", "archive"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the pipeline and wait until inotifywait watches the folder."""
        self.proc = subprocess.Popen(
            ["sh", "-c", SCRIPT, "sh", str(self.root), str(self.workers), sys.executable],
            env={"PATH": "/usr/bin:/bin", "CONVERT": CONVERT},
            start_new_session=True,  # one process group: the pipeline stops as a whole
        )
        log = self.root / "inotify.log"
        wait_until(
            lambda: log.exists() and b"Watches established" in log.read_bytes(),
            30,
            "inotifywait to watch the folder",
        )

    def wait_done(self, count: int, timeout: float) -> None:
        """Block until ``count`` originals reached archive/."""
        archive = self.root / "archive"
        wait_until(lambda: sum(1 for _ in archive.iterdir()) >= count, timeout, "the shell", 0.2)

    def stop(self) -> None:
        """Stop inotifywait and xargs (the pipeline's process group)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
