"""The worker memory limit: its size, setting it, and telling a job that it hit it.

Every process that runs conversions (a pool worker, a Celery child) gets an
address-space limit (``RLIMIT_AS``), inherited by the engines it starts
(Ghostscript, LibreOffice). A decompression bomb then fails its own job with
``too_large`` instead of sending the machine to the kernel's OOM killer.

With ``worker_memory_limit = "auto"`` (the default) the limit per process is::

    max(MIN_AUTO_MB, AUTO_SHARE * memory_mb / processes)

where ``memory_mb`` is the machine's physical memory or, when smaller, the
``memory.max`` of the cgroup the daemon runs in (a systemd ``MemoryMax``, a
container limit), and ``processes`` is ``workers`` (or a Celery worker's
concurrency). ``worker_memory_limit = 0`` turns the limit off; a number sets it
in MB.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hotfolder.errors import TooLarge

#: The share of the machine's memory all conversion processes together may use.
AUTO_SHARE = 0.5
#: The smallest automatic limit: below it, ordinary PDFs and images would fail.
MIN_AUTO_MB = 1024
#: A worker whose address space reached this share of its limit and then died was
#: stopped by the limit: its last allocation (often the doubling of a buffer) failed.
_NEAR_LIMIT = 0.9
_MB = 1024 * 1024

#: Text engines print when an allocation failed (qpdf and C++, Ghostscript, Python, libc).
OUT_OF_MEMORY_MARKERS = (
    "std::bad_alloc",
    "VMerror",
    "MemoryError",
    "Cannot allocate memory",
    "out of memory",
)

MemorySetting = int | Literal["auto"]


def physical_memory_mb() -> int:
    """The machine's physical memory in MB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // _MB


def _cgroup_file(name: str, root: Path) -> str | None:
    """A file of this process's cgroup (v2), or None when there is none to read."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            relative = line[3:].strip().lstrip("/")
            try:
                return (root / "sys/fs/cgroup" / relative / name).read_text()
            except OSError:
                return None
    return None


def cgroup_memory_max_mb(root: Path = Path("/")) -> int | None:
    """The ``memory.max`` of this process's cgroup (v2) in MB, or None when unlimited."""
    text = (_cgroup_file("memory.max", root) or "").strip()
    return int(text) // _MB if text.isdigit() else None


def oom_kills(root: Path = Path("/")) -> int:
    """How many processes of this cgroup any OOM killer has killed (0 if unknown)."""
    for line in (_cgroup_file("memory.events", root) or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def oom_killed_message() -> str:
    """What a job whose worker the kernel's OOM killer took says (``too_large``)."""
    return (
        "The kernel's OOM killer stopped the conversion: the service reached its memory "
        "bound (systemd MemoryMax) or the machine ran out of memory. Other jobs were not "
        "affected. Split the file, or lower worker_memory_limit so that a job fails "
        "before the whole service runs short."
    )


@dataclass(frozen=True)
class MemoryLimit:
    """The limit each conversion process gets, and how it was arrived at."""

    mb: int  # 0: no limit
    setting: MemorySetting
    processes: int
    memory_mb: int = 0  # what "auto" took a share of

    def describe(self) -> str:
        """For ``hotfolder check-config`` and the start-up log line."""
        if self.setting == "auto":
            return (
                f"{self.mb} MB per worker process (worker_memory_limit = auto: "
                f"{AUTO_SHARE:.0%} of {self.memory_mb} MB / {self.processes} process(es), "
                f"at least {MIN_AUTO_MB} MB)"
            )
        if self.mb == 0:
            return "none (worker_memory_limit = 0): a decompression bomb can exhaust the machine"
        return f"{self.mb} MB per worker process (worker_memory_limit = {self.mb})"


def memory_limit(setting: MemorySetting, processes: int) -> MemoryLimit:
    """The limit per conversion process for ``worker_memory_limit = setting``."""
    if setting != "auto":
        return MemoryLimit(setting, setting, processes)
    memory = physical_memory_mb()
    cgroup = cgroup_memory_max_mb()
    if cgroup is not None:
        memory = min(memory, cgroup)
    mb = max(MIN_AUTO_MB, int(AUTO_SHARE * memory / max(1, processes)))
    return MemoryLimit(mb, setting, processes, memory)


def set_address_space_limit(limit_mb: int) -> None:
    """Cap this process's address space (0: leave it unlimited); children inherit it."""
    if limit_mb:
        limit = limit_mb * _MB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def current_limit_mb() -> int:
    """This process's address-space limit in MB (0: none)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    return 0 if soft == resource.RLIM_INFINITY else soft // _MB


def needed_more_message(limit_mb: int) -> str:
    """What a job that hit the memory limit says (error code ``too_large``)."""
    if not limit_mb:
        return (
            "The conversion ran out of memory and was stopped. Other jobs were not "
            "affected. Split the file, or give the machine more memory."
        )
    return (
        f"The conversion needed more than {limit_mb} MB (worker_memory_limit) and was "
        "stopped. Other jobs were not affected. Split the file, or raise "
        "worker_memory_limit if the machine has the memory."
    )


def mentions_out_of_memory(text: str) -> bool:
    """True when an engine's message says an allocation failed."""
    return any(marker in text for marker in OUT_OF_MEMORY_MARKERS)


def out_of_memory(*texts: str) -> TooLarge | None:
    """The ``too_large`` error to raise when an engine's message says it ran out of memory.

    qpdf catches ``std::bad_alloc`` while decoding a stream and reports it as damage
    (a warning, or a PdfError): without this, a memory limit reads as a damaged file.
    """
    if any(mentions_out_of_memory(text) for text in texts):
        return TooLarge(needed_more_message(current_limit_mb()))
    return None


def reached_limit(peak_bytes: int, limit_mb: int) -> bool:
    """True when a process whose address space peaked at ``peak_bytes`` met its limit."""
    return bool(limit_mb) and peak_bytes >= _NEAR_LIMIT * limit_mb * _MB


def address_space_bytes() -> int:
    """This process's address-space size now (what ``RLIMIT_AS`` bounds)."""
    with Path("/proc/self/statm").open("rb") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


class PeakWatch:
    """Records the largest address space this process reached, for its parent to read.

    A worker killed by a failed allocation (an engine that aborts on
    ``std::bad_alloc``) cannot say why it died; the peak it left behind in
    shared memory can. The sampler is a thread: engines called through ctypes
    (pdfium) release the GIL, so it keeps sampling while they allocate.
    """

    INTERVAL = 0.02
    #: A job is sampled only once it has run this long: waking every INTERVAL
    #: during one-page jobs of a few milliseconds cost 15 % of their throughput
    #: (GIL hand-offs), and a job does not reach gigabytes sooner than this.
    GRACE = 0.1

    def __init__(self, peak: ctypes.c_int64) -> None:
        # ``peak``: a multiprocessing ``Value("q", lock=False)`` shared with the parent;
        # one writer (this thread, or the worker between jobs), so no lock.
        self._peak = peak
        self._started = time.monotonic()
        #: Set while a job runs: an idle worker's sampler sleeps instead of waking.
        self._busy = threading.Event()

    def start(self) -> None:
        """Start sampling in a daemon thread."""
        threading.Thread(target=self._run, name="hotfolder-memory-watch", daemon=True).start()

    def reset(self) -> None:
        """Start a new job's peak from the current size."""
        with contextlib.suppress(OSError):
            self._peak.value = address_space_bytes()
        self._started = time.monotonic()
        self._busy.set()

    def idle(self) -> None:
        """The job ended: stop sampling until the next one."""
        self._busy.clear()

    def _run(self) -> None:
        while True:
            self._busy.wait()
            young = self._started + self.GRACE - time.monotonic()
            if young > 0:
                time.sleep(young)  # a new job may have started meanwhile: look again
                continue
            with contextlib.suppress(OSError):
                size = address_space_bytes()
                if size > self._peak.value:
                    self._peak.value = size
            time.sleep(self.INTERVAL)
