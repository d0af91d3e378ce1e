"""Asking the kernel whether anyone still has a file open for writing.

Time alone cannot tell a finished file from a writer that paused (a scanner
between pages, a stalled SMB copy). On a local filesystem the kernel knows: a
read lease (``F_SETLEASE`` with ``F_RDLCK``) on a read-only descriptor is
refused with ``EAGAIN`` while any descriptor has the file open for writing,
whichever process holds it, a local Samba or NFS server writing for a client
included. The lease is dropped again at once; it only asks the question.

Leases need the file's owner or ``CAP_LEASE`` (the systemd units grant it) and
a filesystem that supports them. Where the kernel refuses to answer, the probe
says "unknown" and intake keeps to the time rule (``settle``), with one log
line per folder saying so.

A lease holder is sent ``SIGIO`` when a writer opens the file during the lease;
its default action ends the process, so the daemon ignores ``SIGIO``
(:func:`ignore_lease_breaks`, called from the main thread at start).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
from pathlib import Path

log = logging.getLogger("hotfolder.writers")

#: errno values that mean "the kernel will not answer for this file": not the
#: owner and no CAP_LEASE (EACCES), leases off or unsupported (EINVAL, ENOLCK).
_UNANSWERED = frozenset({errno.EACCES, errno.EPERM, errno.EINVAL, errno.ENOLCK, errno.ENOSYS})


def ignore_lease_breaks() -> None:
    """Ignore SIGIO, which a lease break would otherwise end the process with (main thread)."""
    signal.signal(signal.SIGIO, signal.SIG_IGN)


def open_for_writing(path: Path) -> bool | None:
    """True while some process has ``path`` open for writing, False when none has.

    None when the kernel cannot say (no permission for a lease, a filesystem
    without leases, an unreadable file): the caller falls back to time alone.
    """
    try:
        # O_NONBLOCK: opening a file someone holds a write lease on must not block.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EWOULDBLOCK:
            return True
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return True
        if exc.errno in _UNANSWERED:
            return None
        raise
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


class WriterProbe:
    """:func:`open_for_writing` for one folder, logging once when it must fall back."""

    def __init__(self, folder: str, root: Path) -> None:
        self.folder = folder
        self.root = root
        self._warned = False

    def busy(self, path: Path) -> bool | None:
        """True while a writer has ``path`` open, False when none has, None when none can tell."""
        try:
            answer = open_for_writing(path)
        except OSError as exc:
            log.debug("cannot ask about writers of %s: %s", path, exc)
            answer = None
        if answer is None and not self._warned:
            self._warned = True
            log.warning(
                "folder %s: the kernel will not say whether files in %s are still open "
                "for writing (a file lease needs the file's owner or CAP_LEASE, and a "
                "local filesystem); files there are taken once unchanged for `settle` "
                "seconds. Give the service CAP_LEASE (the shipped systemd units do).",
                self.folder,
                self.root,
            )
        return answer
