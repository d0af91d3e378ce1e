"""Intake: which entries of an input folder become jobs, and when.

Filesystem events are only hints that make intake fast; the startup scan and
the periodic rescan make it correct. Every hint or scan marks a path *dirty*;
a dirty path is ``lstat``-ed once and either dropped (gone, junk, a
directory), reported and left alone (kept out by the folder's own filters),
rejected at once (symlink, FIFO, socket, device: never followed or read), or
tracked. A tracked file is *ready* once its signature (device, inode, size,
mtime, ctime) has stayed the same for ``settle`` seconds *and* no writer still
holds it: on native folders a file modified since its last close-write event
is still being written, however long the pause, and on local filesystems the
kernel is asked (a file lease, :mod:`hotfolder.writers`) just before the claim.
Time comes from an injectable clock.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from hotfolder.config import BUILTIN_EXCLUDES, FolderSettings
from hotfolder.manifest import is_manifest
from hotfolder.settling import JUNK, Hint, NameFilter, Signature, StabilityTracker
from hotfolder.writers import WriterProbe

__all__ = [
    "Candidate",
    "FolderIntake",
    "Hint",
    "NameFilter",
    "Signature",
    "StabilityTracker",
    "same_name",
]

log = logging.getLogger("hotfolder.intake")

Clock = Callable[[], float]


def same_name(path: Path) -> str:
    """A key under which names that differ only in Unicode normalisation are equal.

    macOS clients write NFD names to SMB shares, while manifests and people type NFC.
    """
    return unicodedata.normalize("NFC", os.fsdecode(path))


@dataclass(frozen=True)
class Candidate:
    """An entry ready to be claimed as a job."""

    path: Path
    rel_dir: str
    signature: Signature
    #: The kernel said nobody had it open for writing just before the claim.
    writer_free: bool = False

    @property
    def rejected(self) -> bool:
        """Non-regular entries become jobs that fail with ``not_regular_file``."""
        return not self.signature.regular


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
        #: Asks the kernel about open writers; set for native folders (local
        #: filesystems). None: the time rule alone (polling, network shares).
        self.writers: WriterProbe | None = None
        self._wall = wall
        self.root = folder.input_dir
        self.filter = NameFilter(folder.include, folder.exclude, BUILTIN_EXCLUDES)
        self.tracker = StabilityTracker(folder.settle)
        self._clock = clock
        self._wake = wake
        self._lock = threading.Lock()
        self._dirty: set[Path] = set()
        self._ready: dict[Path, Candidate] = {}
        self._blocked: dict[Path, Signature] = {}
        #: Files written to since their last close-write event (native events).
        self._writing: set[Path] = set()
        #: Files already logged as still open for writing (one line each).
        self._told_open: set[Path] = set()
        #: Folders in a non-recursive input: never jobs; each is logged once.
        self._ignored_dirs: set[Path] = set()
        #: Files the folder's own rules keep out, with the rule; each logged once.
        self.ignored: dict[Path, str] = {}
        #: Changes whenever ``ignored`` does (the daemon reports it when it moves).
        self.ignored_version = 0
        #: Manifests of pending jobs and the inputs they name (by :func:`same_name`):
        #: watched by their job, never taken on their own.
        self._reserved: set[str] = set()

    # --- called from watcher threads -------------------------------------------------

    def hint(self, path: Path, kind: Hint = Hint.SEEN) -> None:
        """Something happened at ``path``: look at it soon. Never raises, never blocks long."""
        with self._lock:
            self._dirty.add(path)
            if kind is Hint.WRITTEN:
                self._writing.add(path)
            elif kind is Hint.CLOSED:
                self._writing.discard(path)
        self._wake.set()

    # --- called from the intake thread -----------------------------------------------

    def scan(self) -> int:
        """Mark every entry of the input folder dirty (the startup scan and rescans)."""
        found = list(self._walk(self.root))
        present = set(found)
        with self._lock:
            self._dirty.update(found)
            # A rescan is the moment to retry files that could not be claimed before.
            self._blocked.clear()
        for path in [p for p in self.ignored if p not in present]:
            self._unignore(path)
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
            if current != signature:
                self.tracker.observe(path, current, now)
            elif self._still_written(path):
                self.tracker.rearm(path, current, now)
            else:
                self.tracker.forget(path)
                self._ready[path] = Candidate(path, self._rel_dir(path), current)

    def _still_written(self, path: Path) -> bool:
        # Written to since its last close-write: a writer paused, however long. The
        # kernel, where it answers, overrules a close event that was never seen.
        with self._lock:
            if path not in self._writing:
                return False
        if self.writers is not None and self.writers.busy(path) is False:
            with self._lock:
                self._writing.discard(path)
            return False
        self._tell_open(path)
        return True

    def _tell_open(self, path: Path) -> None:
        if path not in self._told_open:
            self._told_open.add(path)
            log.info(
                "%r in %s is still open for writing; it is taken once the writer closes it",
                path.name,
                self.root,
            )

    def _lstat(self, path: Path) -> os.stat_result | None:
        try:
            return path.lstat()
        except FileNotFoundError:
            self._gone(path)
            return None
        except OSError as exc:
            log.warning("cannot stat %s: %s", path, exc.strerror)
            return None

    def _gone(self, path: Path) -> None:
        self.tracker.forget(path)
        self._ready.pop(path, None)
        self._unignore(path)
        self._told_open.discard(path)
        with self._lock:
            self._writing.discard(path)

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
            self._look_dir(path)
            return
        if not self._may_start_job(path):
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
            if age >= self.folder.settle and not self._still_written(path):
                self._ready[path] = Candidate(path, self._rel_dir(path), signature)
                return
        self.tracker.observe(path, signature, now)

    def _look_dir(self, path: Path) -> None:
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

    def _may_start_job(self, path: Path) -> bool:
        if same_name(path) in self._reserved:
            return False
        manifest = self.folder.manifests != "off" and is_manifest(path.name)
        rule = self.filter.rule_against(path.name, manifest=manifest)
        if rule is None and self.folder.manifests == "required" and not manifest:
            rule = "manifests = required (a file becomes a job only when a manifest names it)"
        if rule is None:
            self._unignore(path)
            return True
        if rule != JUNK and path not in self.ignored:
            # Nothing is ignored silently: one line per file, and a count per folder.
            self.ignored[path] = rule
            self.ignored_version += 1
            log.warning(
                "%r in %s is not taken: the folder's rule %s keeps it out; it stays there",
                path.name,
                self.root,
                rule,
            )
        return False

    def reserve(self, paths: Iterable[Path]) -> None:
        """A pending manifest job owns these paths: never take them as jobs of their own."""
        for path in paths:
            self._reserved.add(same_name(path))
            self.tracker.forget(path)
            self._ready.pop(path, None)
            self._unignore(path)

    def release(self, paths: Iterable[Path]) -> None:
        """The job no longer owns these paths (it claimed them, or it ended)."""
        for path in paths:
            self._reserved.discard(same_name(path))
            self.hint(path)

    def _rel_dir(self, path: Path) -> str:
        rel = path.parent.relative_to(self.root)
        return "" if rel == Path() else str(rel)

    def ready_count(self) -> int:
        """How many candidates wait for room in the queue."""
        return len(self._ready)

    def take(self, limit: int) -> list[Candidate]:
        """Up to ``limit`` ready candidates, each re-checked unchanged and unheld just now."""
        taken: list[Candidate] = []
        now = self._clock()
        for path in list(self._ready):
            if len(taken) >= limit:
                break
            candidate = self._ready.pop(path)
            if same_name(path) in self._reserved:
                continue
            info = self._lstat(path)
            if info is None:
                continue
            current = Signature.of(info)
            if current != candidate.signature:
                self.tracker.observe(path, current, now)
                continue
            held = self.writers.busy(path) if current.regular and self.writers else None
            if held:
                # The kernel knows better than the clock: a writer still holds it.
                self._tell_open(path)
                self.tracker.rearm(path, current, now)
                continue
            if held is False:
                candidate = replace(candidate, writer_free=True)
            self._told_open.discard(path)
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

    def _unignore(self, path: Path) -> None:
        if self.ignored.pop(path, None) is not None:
            self.ignored_version += 1

    def ignored_files(self) -> list[dict[str, str]]:
        """The files kept out by the folder's rules: name (relative to in/) and rule."""
        return [
            {"name": _printable(path.relative_to(self.root)), "rule": rule}
            for path, rule in sorted(self.ignored.items())
        ]

    def ignored_count(self) -> int:
        """Files the folder's own rules keep out (read from other threads for metrics)."""
        return len(self.ignored)


def _printable(path: Path) -> str:
    # Names that are not UTF-8 carry surrogates, which JSON text cannot hold.
    return os.fsencode(path).decode("utf-8", "replace")
