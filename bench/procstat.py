"""What the kernel says about a process: CPU time, memory, state, children.

Read straight from /proc so that the measuring costs next to nothing and
needs no extra package; every figure is the kernel's own accounting.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

T = TypeVar("T")


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/<pid>/stat the benchmarks use."""

    state: str
    ppid: int
    cpu_seconds: float  # user + system time of the process itself (not its children)


def stat(pid: int) -> Stat | None:
    """Parse /proc/<pid>/stat; None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return Stat(state=fields[0], ppid=int(fields[1]), cpu_seconds=(utime + stime) / CLOCK_TICKS)


def rss_bytes(pid: int) -> int:
    """Resident set size (0 when the process is gone)."""
    try:
        resident = Path(f"/proc/{pid}/statm").read_text().split()[1]
    except OSError:
        return 0
    return int(resident) * PAGE_SIZE


def idle_worker(pid: int) -> bool:
    """True when a worker process sleeps waiting for its next job on its pipe.

    A worker converting sleeps too (in fsync, or on the disk: state D, or on a
    futex), so the state alone cannot tell; the kernel function it waits in can.
    """
    info = stat(pid)
    return info is not None and info.state == "S" and wchan(pid).startswith("unix_stream_read")


def wchan(pid: int) -> str:
    """The kernel function a sleeping process waits in ("0" when it runs)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        info = stat(int(entry.name))
        if info is not None and info.ppid == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the forkserver, the workers, tools they run)."""
    result: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        result += kids
        todo += kids
    return result


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and every living descendant."""
    total = 0.0
    for member in [pid, *descendants(pid)]:
        info = stat(member)
        if info is not None:
            total += info.cpu_seconds
    return total


class Sampler(Generic[T]):
    """Calls ``probe`` every ``interval`` seconds in a thread; keeps (time, value) pairs."""

    def __init__(self, probe: Callable[[], T], interval: float) -> None:
        self.probe = probe
        self.interval = interval
        self.samples: list[tuple[float, T]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.time(), self.probe()))
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Sampler[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
