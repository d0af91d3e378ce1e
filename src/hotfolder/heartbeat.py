"""What the daemon tells systemd while it runs: STATUS lines and watchdog pings.

A ping proves something only if it is sent after checking that the daemon
works: :meth:`Heartbeat.beat` is called from the intake thread's supervision
step, and pings only while the daemon's own threads and workers are alive. A
hung intake thread, a dead dispatcher or a dead pool therefore stop the pings,
and systemd restarts the service after ``WatchdogSec=``. An unreachable share
does not: a restart would not bring it back (STATUS and /healthz report it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hotfolder.metrics import Snapshot
from hotfolder.systemd import Notifier

#: How often the STATUS line is refreshed.
STATUS_EVERY = 5.0


def status_line(snapshot: Snapshot) -> str:
    """``3 queued, 2 running, 1 pending, 4 settling; 2/2 workers``."""
    folders = snapshot.folders.values()
    queued = sum(f.queued for f in folders)
    running = sum(f.running for f in folders)
    pending = sum(f.pending for f in folders)
    settling = sum(f.settling for f in folders)
    unwatched = sum(1 for f in folders if not f.watched)
    line = (
        f"{queued} queued, {running} running, {pending} pending, {settling} settling; "
        f"{snapshot.workers_alive}/{snapshot.workers} workers"
    )
    return line + (f"; {unwatched} folder(s) NOT watched" if unwatched else "")


class Heartbeat:
    """Sends STATUS every few seconds and WATCHDOG=1 while the daemon is healthy."""

    def __init__(
        self,
        notifier: Notifier,
        snapshot: Callable[[], Snapshot],
        alive: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self._snapshot = snapshot
        self._alive = alive
        self._clock = clock
        self._next_status = 0.0
        self._next_ping = 0.0

    def beat(self) -> None:
        """Called after each supervision step of the intake loop."""
        if not self.notifier.enabled:
            return
        now = self._clock()
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY
            self.notifier.status(status_line(self._snapshot()))
        interval = self.notifier.watchdog_interval
        if interval is not None and now >= self._next_ping and self._alive():
            self._next_ping = now + interval  # already half of WatchdogSec=
            self.notifier.watchdog()
