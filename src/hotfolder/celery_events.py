"""Which Celery workers are alive, and which of our tasks each one holds, from Celery's events.

Every worker's main process sends a ``worker-heartbeat`` every couple of
seconds (a long conversion in a pool process does not delay it) and, with task
events on, ``task-received`` and ``task-started`` naming itself. The
:class:`EventFollower` thread feeds these events into a :class:`WorkerBook`;
the executor asks the book which workers went silent for ``worker_lost_after``
seconds and which of its tasks they held.

Silence is evidence only while this daemon listens. After a (re)connection to
the broker, or a stall of this process (a long gap between two turns of the
event loop: the daemon, not the worker, was not listening), every worker gets
a fresh ``worker_lost_after`` before it can be declared lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from celery import Celery

log = logging.getLogger("hotfolder.celery")

#: A gap this long (seconds) between two turns of the event loop means the daemon
#: itself stalled (or lost the broker): nobody's silence meanwhile counts.
STALL = 3.0
#: A lost worker is listed (``hotfolder status``) for this long, then forgotten.
FORGET_AFTER = 3600.0
#: Task events that name the worker holding a task.
_HOLDING = frozenset({"task-received", "task-started"})


@dataclass
class WorkerSeen:
    """One worker node as its events show it."""

    #: Celery node name, ``hotfolder-<pid>@<host>``.
    name: str
    host: str
    #: Daemon clock (monotonic) at its last event of any kind.
    last_seen: float
    #: Wall-clock time of the last event, for people.
    last_seen_at: float
    #: Tasks it runs right now, by its last heartbeat (all queues).
    active: int = 0
    #: It said goodbye (``worker-offline``): a warm shutdown.
    offline: bool = False
    #: Declared lost; set back when it is heard again.
    lost: bool = False


class WorkerBook:
    """Workers and the holders of our tasks; fed by the follower thread, read by the executor.

    Thread-safe. ``prefix`` selects the task ids of this daemon run: tasks of
    other daemons sharing the broker are not ours to track.
    """

    def __init__(
        self,
        prefix: str,
        lost_after: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.lost_after = lost_after
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._workers: dict[str, WorkerSeen] = {}
        self._holders: dict[str, str] = {}
        self._listening_since: float | None = None
        self._last_turn = 0.0

    # --- fed by the follower thread ----------------------------------------------------

    def listening(self) -> None:
        """The follower is (again) subscribed: silences are counted from now."""
        with self._lock:
            self._listening_since = self._last_turn = self._clock()

    def deaf(self) -> None:
        """The follower lost the broker: nobody can be declared lost meanwhile."""
        with self._lock:
            self._listening_since = None

    def turn(self) -> None:
        """One turn of the event loop (at least every second while connected)."""
        with self._lock:
            now = self._clock()
            if self._listening_since is not None and now - self._last_turn > STALL:
                # This process did not listen for a while: a worker's silence
                # meanwhile is ours, not its.
                self._listening_since = now
            self._last_turn = now

    def seen(self, event: dict[str, Any]) -> None:
        """Record one Celery event (any type)."""
        name = event.get("hostname")
        if not isinstance(name, str):
            return
        kind = str(event.get("type", ""))
        now = self._clock()
        with self._lock:
            worker = self._workers.get(name)
            if worker is None:
                worker = self._workers[name] = WorkerSeen(
                    name=name, host=name.partition("@")[2] or name, last_seen=now, last_seen_at=0
                )
            elif worker.lost:
                worker.lost = False
                log.warning(
                    "worker %s is heard again after it was declared lost; results of the jobs "
                    "it held are discarded, its new jobs count",
                    name,
                )
            worker.last_seen = now
            worker.last_seen_at = self._wall()
            worker.offline = kind == "worker-offline"
            if kind == "worker-heartbeat":
                worker.active = int(event.get("active") or 0)
            task_id = event.get("uuid")
            if kind in _HOLDING and isinstance(task_id, str) and task_id.startswith(self.prefix):
                self._holders[task_id] = name

    # --- read by the executor ----------------------------------------------------------

    def holder(self, task_id: str) -> str | None:
        """The worker that last received or started ``task_id`` (None: not known)."""
        with self._lock:
            return self._holders.get(task_id)

    def release(self, task_id: str) -> None:
        """Forget the holder of a task the executor no longer waits for."""
        with self._lock:
            self._holders.pop(task_id, None)

    def silent(self) -> list[WorkerSeen]:
        """Workers silent for ``lost_after`` s while the daemon listened; marked lost now.

        A worker that said goodbye is returned too (``offline``), once, so that
        jobs it still held are not forgotten; it is then dropped from the book.
        """
        with self._lock:
            now = self._clock()
            since = self._listening_since
            if since is None or now - self._last_turn > STALL:
                return []
            found = []
            for worker in list(self._workers.values()):
                if worker.lost and now - worker.last_seen > FORGET_AFTER:
                    del self._workers[worker.name]  # workers come and go with new names
                if worker.lost or now - max(worker.last_seen, since) < self.lost_after:
                    continue
                found.append(replace(worker))
                if worker.offline:
                    del self._workers[worker.name]
                else:
                    worker.lost = True
            return found

    def workers(self) -> list[WorkerSeen]:
        """Copies of every worker seen and not gone, lost ones included."""
        with self._lock:
            return [replace(worker) for worker in self._workers.values()]


class EventFollower:
    """A thread that receives Celery's events from the broker into a :class:`WorkerBook`."""

    def __init__(self, app: Celery, book: WorkerBook) -> None:
        self._app = app
        self._book = book
        self._stop = threading.Event()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, name="hotfolder-events", daemon=True)

    def start(self) -> None:
        """Start following events."""
        self._thread.start()

    def stop(self) -> None:
        """Stop following (within about a second)."""
        self._stop.set()
        receiver = self._receiver
        if receiver is not None:
            receiver.should_stop = True
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._follow()
                backoff = 0.5
            except Exception as exc:  # kombu, redis and amqp raise many kinds
                self._book.deaf()
                if self._stop.is_set():
                    return
                log.warning("cannot follow worker events (%s); retrying in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _follow(self) -> None:
        with self._app.connection_for_read() as connection:
            receiver = self._app.events.Receiver(connection, handlers={"*": self._book.seen})
            # Each turn of the loop (an event, or a second without one) proves we listen.
            receiver.on_iteration = self._book.turn
            receiver.should_stop = self._stop.is_set()
            subscribed = receiver.on_consume_ready

            def ready(*args: Any, **kwargs: Any) -> None:
                # wakeup: every worker answers with a heartbeat at once, so a freshly
                # started daemon knows all of them within a moment.
                subscribed(*args, **kwargs)
                self._book.listening()

            receiver.on_consume_ready = ready
            self._receiver = receiver
            for _ in receiver.consume(limit=None, timeout=None, wakeup=True):
                if self._stop.is_set():
                    break
        self._book.deaf()
