"""watchdog observers that turn filesystem events into intake hints.

One observer per folder, so that a dead or slow observer affects one folder
only, and so that each folder gets the observer its filesystem needs: inotify
cannot see changes other machines make on NFS/SMB shares or FUSE mounts, so
``auto`` picks polling there (read from /proc/self/mountinfo).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
from watchdog.observers.polling import PollingObserver

from hotfolder.settling import Hint

log = logging.getLogger("hotfolder.watcher")

# watchdog holds every unpaired IN_MOVED_FROM for 0.5 s to pair it with its
# IN_MOVED_TO, at the head of a FIFO: each claim (a rename out of in/) then
# delays every later event by half a second. Events are only hints here, so
# pairing moves buys nothing; measured: native arrival-to-start p50 234 ms -> 3 ms.
InotifyMoveEventGrouper.delay = 0

#: Filesystem types on which inotify misses changes made elsewhere.
NETWORK_FSTYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "virtiofs",
        "vboxsf",
        "vmhgfs",
        "glusterfs",
        "ceph",
        "lustre",
        "gpfs",
        "davfs",
    }
)

# Our own lstat calls raise no events, but other readers' opens would: only
# events that can mean "this entry is new or changed" are subscribed to.
_EVENTS = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirModifiedEvent,
    DirDeletedEvent,
]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(path: Path, mountinfo: str | None = None) -> str:
    """The filesystem type of the mount holding ``path`` (``"unknown"`` if unreadable)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "unknown"
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        mount_point = _unescape(fields[4])
        fstype = right.split()[0] if right.split() else "unknown"
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fstype
    return best_type


def choose_observer(kind: str, path: Path, mountinfo: str | None = None) -> str:
    """Resolve ``auto`` to ``native`` or ``polling`` from the mount table."""
    if kind != "auto":
        return kind
    fstype = filesystem_type(path, mountinfo)
    if fstype in NETWORK_FSTYPES or fstype.startswith("fuse"):
        return "polling"
    return "native"


#: What a native (inotify) event says about the file's writers. Polling observers
#: diff snapshots: their "modified" says nothing about open writers.
_NATIVE_HINTS: dict[type[FileSystemEvent], Hint] = {
    FileModifiedEvent: Hint.WRITTEN,
    FileClosedEvent: Hint.CLOSED,
    FileDeletedEvent: Hint.CLOSED,
    FileMovedEvent: Hint.CLOSED,
}


class _Hints(FileSystemEventHandler):
    def __init__(self, hint: Callable[[Path, Hint], None], native: bool) -> None:
        self._hint = hint
        self._native = native

    def on_any_event(self, event: FileSystemEvent) -> None:
        # An exception here would kill watchdog's dispatcher thread silently.
        try:
            kind = _NATIVE_HINTS.get(type(event), Hint.SEEN) if self._native else Hint.SEEN
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                if raw:
                    self._hint(Path(os.fsdecode(raw)), kind)
        except Exception:
            log.exception("dropping a filesystem event; the next rescan covers it")


class FolderWatch:
    """The observer of one input folder."""

    def __init__(
        self,
        root: Path,
        kind: str,
        recursive: bool,
        poll_interval: float,
        hint: Callable[[Path, Hint], None],
    ) -> None:
        self.root = root
        self.kind = choose_observer(kind, root)
        self.recursive = recursive
        self.poll_interval = poll_interval
        self._hint = hint
        self._observer: BaseObserver | None = None
        #: The watched folder's identity: a folder removed and made again under the
        #: same name is another folder, which the old inotify watch does not see.
        self._identity: tuple[int, int] | None = None

    def start(self) -> None:
        """Start (or restart) watching."""
        observer: BaseObserver = (
            PollingObserver(timeout=self.poll_interval) if self.kind == "polling" else Observer()
        )
        observer.schedule(
            _Hints(self._hint, self.kind == "native"),
            str(self.root),
            recursive=self.recursive,
            event_filter=_EVENTS,
        )
        observer.daemon = True
        info = self.root.stat()
        observer.start()
        self._identity = (info.st_dev, info.st_ino)
        self._observer = observer
        log.info("watching %s (%s observer)", self.root, self.kind)

    def alive(self) -> bool:
        """True while the observer thread runs on the folder that is there now."""
        if self._observer is None or not self._observer.is_alive():
            return False
        # The inotify emitter stops when its folder is deleted, while the observer
        # thread runs on; a folder made again may even reuse the old inode number.
        if not all(emitter.is_alive() for emitter in self._observer.emitters):
            return False
        try:
            info = self.root.stat()
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == self._identity

    def stop(self) -> None:
        """Stop and join the observer."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
