"""Intake: which entries of an input folder become jobs, and when.

Filesystem events are only hints that make intake fast; the startup scan and
the periodic rescan make it correct. Every hint or scan marks a path *dirty*;
a dirty path is ``lstat``-ed once and either dropped (gone, filtered, a
directory), rejected at once (symlink, FIFO, socket, device: never followed or
read), or tracked. A tracked file is *ready* once its signature (device, inode,
size, mtime, ctime) has stayed the same for ``settle`` seconds; it is checked
again just before it is claimed. Time comes from an injectable clock.
"""

from __future__ import annotations

import fnmatch
import heapq
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from hotfolder.config import FolderSettings
from hotfolder.manifest import is_manifest

log = logging.getLogger("hotfolder.intake")

Clock = Callable[[], float]


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


@dataclass(frozen=True)
class Candidate:
    """An entry ready to be claimed as a job."""

    path: Path
    rel_dir: str
    signature: Signature

    @property
    def rejected(self) -> bool:
        """Non-regular entries become jobs that fail with ``not_regular_file``."""
        return not self.signature.regular


def _matches(name: str, patterns: Iterable[str]) -> bool:
    # Case-insensitive: people drop INVOICE.PDF into a folder configured for *.pdf.
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


class NameFilter:
    """Include globs (default: everything) and exclude globs on the file name."""

    def __init__(self, include: Iterable[str], exclude: Iterable[str]) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def excluded(self, name: str) -> bool:
        """True for junk and temp names; also applies to directory names."""
        return _matches(name, self.exclude)

    def accepts(self, name: str) -> bool:
        """True when a file with this name may become a job."""
        if self.excluded(name):
            return False
        return not self.include or _matches(name, self.include)


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


class FolderIntake:
    """Turns hints and scans of one input folder into ready candidates."""

    def __init__(
        self,
        folder: FolderSettings,
        clock: Clock,
        wake: threading.Event,
        *,
        wall: Clock = time.time,
    ) -> None:
        self.folder = folder
        #: Set for local filesystems (native observer): there the kernel stamps ctime
        #: with this machine's clock, so a ctime ``settle`` seconds old proves the file
        #: has not changed for that long and it need not be watched settling again
        #: (a backlog present at start is taken at once). Never on network shares:
        #: the server's clock and attribute caching make ctime untrustworthy there.
        self.trust_ctime = False
        self._wall = wall
        self.root = folder.input_dir
        self.filter = NameFilter(folder.include, folder.excludes)
        self.tracker = StabilityTracker(folder.settle)
        self._clock = clock
        self._wake = wake
        self._lock = threading.Lock()
        self._dirty: set[Path] = set()
        self._ready: dict[Path, Candidate] = {}
        self._blocked: dict[Path, Signature] = {}
        #: Folders in a non-recursive input: never jobs; each is logged once.
        self._ignored_dirs: set[Path] = set()
        #: Manifests of pending jobs and the inputs they name: watched by their job,
        #: never taken on their own.
        self._reserved: set[Path] = set()

    # --- called from watcher threads -------------------------------------------------

    def hint(self, path: Path) -> None:
        """Something happened at ``path``: look at it soon. Never raises, never blocks long."""
        with self._lock:
            self._dirty.add(path)
        self._wake.set()

    # --- called from the intake thread -----------------------------------------------

    def scan(self) -> int:
        """Mark every entry of the input folder dirty (the startup scan and rescans)."""
        found = list(self._walk(self.root))
        with self._lock:
            self._dirty.update(found)
            # A rescan is the moment to retry files that could not be claimed before.
            self._blocked.clear()
        return len(found)

    def _walk(self, directory: Path) -> Iterable[Path]:
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    path = Path(entry.path)
                    if self.folder.recursive and entry.is_dir(follow_symlinks=False):
                        if not self.filter.excluded(entry.name):
                            yield from self._walk(path)
                    else:
                        yield path
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot list %s: %s", directory, exc.strerror)

    def tick(self) -> None:
        """Look at dirty paths and settled files; ready ones wait in :meth:`take`."""
        now = self._clock()
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for path in dirty:
            self._look(path, now)
        for path, signature in self.tracker.due(now):
            info = self._lstat(path)
            if info is None:
                continue
            current = Signature.of(info)
            if current == signature:
                self.tracker.forget(path)
                self._ready[path] = Candidate(path, self._rel_dir(path), current)
            else:
                self.tracker.observe(path, current, now)

    def _lstat(self, path: Path) -> os.stat_result | None:
        try:
            return path.lstat()
        except FileNotFoundError:
            self.tracker.forget(path)
            self._ready.pop(path, None)
            return None
        except OSError as exc:
            log.warning("cannot stat %s: %s", path, exc.strerror)
            return None

    def _look(self, path: Path, now: float) -> None:
        # A hint for the input folder itself comes with every create, move or delete
        # in it (our own claims too); rescanning on it made a backlog quadratic. A
        # recreated folder is rescanned by the watch supervisor and the periodic rescan.
        if path == self.root or self.root not in path.parents:
            return
        if not self.folder.recursive and path.parent != self.root:
            return
        if any(self.filter.excluded(part) for part in path.relative_to(self.root).parts[:-1]):
            return
        info = self._lstat(path)
        if info is None:
            return
        if stat.S_ISDIR(info.st_mode):
            if self.folder.recursive and not self.filter.excluded(path.name):
                with self._lock:
                    self._dirty.update(self._walk(path))
                self._wake.set()
            elif not self.folder.recursive and path not in self._ignored_dirs:
                # Not moved to error/: someone may still be filling it, and it is not a
                # file. Logged once, so that "I dropped a folder and nothing happened"
                # has an answer in the log.
                self._ignored_dirs.add(path)
                if not self.filter.excluded(path.name):
                    log.warning(
                        "folder %r in %s is ignored: only files are jobs here "
                        "(recursive = true takes the files inside folders)",
                        path.name,
                        self.root,
                    )
            return
        if not self.filter.accepts(path.name) or not self._may_start_job(path):
            self.tracker.forget(path)
            return
        signature = Signature.of(info)
        if self._blocked.get(path) == signature:
            return
        ready = self._ready.get(path)
        if ready is not None:
            if ready.signature == signature:
                return
            del self._ready[path]
        if not signature.regular:
            # Links and special files are never read, so there is nothing to settle.
            self._ready[path] = Candidate(path, self._rel_dir(path), signature)
            return
        if self.trust_ctime and path not in self.tracker:
            age = self._wall() - signature.ctime_ns / 1e9
            if age >= self.folder.settle:
                self._ready[path] = Candidate(path, self._rel_dir(path), signature)
                return
        self.tracker.observe(path, signature, now)

    def _may_start_job(self, path: Path) -> bool:
        if path in self._reserved:
            return False
        # With manifests = "required" only a manifest turns files into jobs.
        return self.folder.manifests != "required" or is_manifest(path.name)

    def reserve(self, paths: Iterable[Path]) -> None:
        """A pending manifest job owns these paths: never take them as jobs of their own."""
        for path in paths:
            self._reserved.add(path)
            self.tracker.forget(path)
            self._ready.pop(path, None)

    def release(self, paths: Iterable[Path]) -> None:
        """The job no longer owns these paths (it claimed them, or it ended)."""
        for path in paths:
            self._reserved.discard(path)
            self.hint(path)

    def _rel_dir(self, path: Path) -> str:
        rel = path.parent.relative_to(self.root)
        return "" if rel == Path() else str(rel)

    def ready_count(self) -> int:
        """How many candidates wait for room in the queue."""
        return len(self._ready)

    def take(self, limit: int) -> list[Candidate]:
        """Up to ``limit`` ready candidates, each re-checked unchanged just now."""
        taken: list[Candidate] = []
        now = self._clock()
        for path in list(self._ready):
            if len(taken) >= limit:
                break
            candidate = self._ready.pop(path)
            if path in self._reserved:
                continue
            info = self._lstat(path)
            if info is None:
                continue
            if Signature.of(info) != candidate.signature:
                self.tracker.observe(path, Signature.of(info), now)
                continue
            taken.append(candidate)
        return taken

    def block(self, candidate: Candidate) -> None:
        """A claim failed (e.g. no permission): ignore this file until it changes or a rescan."""
        self._blocked[candidate.path] = candidate.signature

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has work, if no hint arrives before."""
        return self.tracker.next_deadline()

    def pending_count(self) -> int:
        """Files still settling."""
        return len(self.tracker)
