"""Settling: what a file must look like, and for how long, before it may become a job.

A file's :class:`Signature` (device, inode, size, mtime, ctime, mode) must stay
the same for ``settle`` seconds (:class:`StabilityTracker`), and its name must
pass the folder's filters (:class:`NameFilter`). Kernel knowledge about open
writers comes on top of this (:mod:`hotfolder.writers`).
"""

from __future__ import annotations

import fnmatch
import heapq
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class Hint(Enum):
    """What an event says about a file's writers (native observers only)."""

    #: Nothing about writers (created, attributes, a scan, a polling observer).
    SEEN = "seen"
    #: Written to: a writer has it open until its close-write event.
    WRITTEN = "written"
    #: Closed after writing, moved into place, or deleted: that writer is done.
    CLOSED = "closed"


@dataclass(frozen=True)
class Signature:
    """What must not change while a file settles."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    mode: int

    @classmethod
    def of(cls, info: os.stat_result) -> Signature:
        """Build a signature from an ``lstat`` result."""
        return cls(
            info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_mode
        )

    @property
    def regular(self) -> bool:
        """True for a regular file (not a link, FIFO, socket or device)."""
        return stat.S_ISREG(self.mode)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    # Case-insensitive: people drop INVOICE.PDF into a folder configured for *.pdf.
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


#: What :meth:`NameFilter.rule_against` says of built-in junk and temp names.
JUNK = "junk"


class NameFilter:
    """Include globs (default: everything) and exclude globs on the file name.

    ``junk`` are the built-in junk and temp names: never jobs, never reported.
    Names kept out by the folder's own ``include``/``exclude`` are reported by
    the intake (nothing is ignored silently).
    """

    def __init__(
        self, include: Iterable[str], exclude: Iterable[str], junk: Iterable[str] = ()
    ) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.junk = tuple(junk)

    def excluded(self, name: str) -> bool:
        """True for junk, temp and excluded names; also applies to directory names."""
        return _matches(name, self.junk) or _matches(name, self.exclude)

    def accepts(self, name: str) -> bool:
        """True when a file with this name may become a job."""
        return self.rule_against(name) is None

    def rule_against(self, name: str, *, manifest: bool = False) -> str | None:
        """The rule that keeps ``name`` out (:data:`JUNK` for junk), or None.

        A manifest is checked against the junk names only: it is a manifest
        whatever the folder's ``include`` and ``exclude`` say.
        """
        if _matches(name, self.junk):
            return JUNK
        if manifest:
            return None
        if _matches(name, self.exclude):
            return f"exclude = {list(self.exclude)}"
        if self.include and not _matches(name, self.include):
            return f"include = {list(self.include)}"
        return None


class StabilityTracker:
    """Tracks when each file's signature last changed; says which have settled."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._since: dict[Path, tuple[Signature, float]] = {}
        self._heap: list[tuple[float, Path]] = []

    def __len__(self) -> int:
        return len(self._since)

    def __contains__(self, path: object) -> bool:
        return path in self._since

    def observe(self, path: Path, signature: Signature, now: float) -> None:
        """Record the signature seen now; a changed signature restarts the clock."""
        known = self._since.get(path)
        if known is not None and known[0] == signature:
            return
        self._since[path] = (signature, now)
        heapq.heappush(self._heap, (now + self.settle, path))

    def rearm(self, path: Path, signature: Signature, now: float) -> None:
        """Restart the clock for ``path`` even though it did not change (a writer holds it)."""
        self._since[path] = (signature, now)
        heapq.heappush(self._heap, (now + self.settle, path))

    def forget(self, path: Path) -> None:
        """Stop tracking ``path`` (gone, claimed or filtered)."""
        self._since.pop(path, None)

    def due(self, now: float) -> list[tuple[Path, Signature]]:
        """Tracked files whose settle time has passed, with the signature they settled on."""
        result = []
        while self._heap and self._heap[0][0] <= now:
            deadline, path = heapq.heappop(self._heap)
            known = self._since.get(path)
            # Stale heap entries (re-armed or forgotten paths) are skipped lazily.
            if known is not None and known[1] + self.settle == deadline:
                result.append((path, known[0]))
        return result

    def next_deadline(self) -> float | None:
        """When the next tracked file may settle."""
        return self._heap[0][0] if self._heap else None
