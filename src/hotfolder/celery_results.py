"""Background threads of the Celery executor: results in, worker census out.

:class:`ResultWatcher` listens for the state changes workers store in the
Redis result backend. The backend publishes every stored state on a channel
named like its key, so one pattern subscription on the executor's own task-id
prefix brings each result the moment it is stored, without polling. Pub/sub
drops messages while disconnected, so after every (re)subscription and every
few seconds the watcher also reads the keys of the jobs still in flight.

:class:`WorkerCensus` asks the workers every few seconds how many processes
they run for the queue; ``/healthz`` and the ``workers_alive`` metric read the
answer without waiting on the network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from redis.exceptions import RedisError

log = logging.getLogger("hotfolder.celery")

#: Seconds between reads of all in-flight keys (pub/sub may have missed one).
SWEEP_INTERVAL = 5.0
#: Seconds between worker census broadcasts, and how long each waits for replies.
CENSUS_INTERVAL = 5.0
CENSUS_REPLY_TIMEOUT = 1.0
#: States the watcher reports: a worker began the job, or it ended.
REPORTED = frozenset({"STARTED", "SUCCESS", "FAILURE", "REVOKED"})
#: States after which a task reports nothing more.
FINAL = REPORTED - {"STARTED"}

Meta = dict[str, Any]


class ResultWatcher:
    """A thread that hands every reported state of our tasks to ``deliver``.

    ``pending`` returns the task ids still in flight (called from this thread;
    it must be thread-safe). A state may be delivered twice (pub/sub and a
    sweep); the receiver deduplicates.
    """

    def __init__(
        self,
        app: Celery,
        prefix: str,
        pending: Callable[[], list[str]],
        deliver: Callable[[Meta], None],
    ) -> None:
        self._backend = app.backend
        self._pattern = bytes(app.backend.get_key_for_task(prefix)) + b"*"
        self._pending = pending
        self._deliver = deliver
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hotfolder-results", daemon=True)

    def start(self, wait: float) -> bool:
        """Start listening; return True once subscribed (False after ``wait`` s)."""
        self._thread.start()
        return self._subscribed.wait(wait)

    def stop(self) -> None:
        """Stop listening (within about a second)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._listen()
                return
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log.warning("result backend unreachable (%s); retrying in %.1f s", exc, backoff)
            except Exception:
                log.exception("result watcher failed; restarting it")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _listen(self) -> None:
        pubsub = self._backend.client.pubsub()
        try:
            pubsub.psubscribe(self._pattern)
            # Sweep only once the server confirmed the subscription: from then on
            # nothing stored is missed, and whatever was stored before is read here.
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "psubscribe":
                    break
            self._subscribed.set()
            self._sweep()
            next_sweep = time.monotonic() + SWEEP_INTERVAL
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=min(1.0, SWEEP_INTERVAL))
                if message is not None and message["type"] == "pmessage":
                    self._report(message["data"])
                if time.monotonic() >= next_sweep:
                    self._sweep()
                    next_sweep = time.monotonic() + SWEEP_INTERVAL
        finally:
            pubsub.close()

    def _sweep(self) -> None:
        for meta in self.fetch(self._pending()):
            self._deliver(meta)

    def fetch(self, task_ids: list[str]) -> list[Meta]:
        """The stored states of ``task_ids`` (those with one), read now; any thread.

        Empty when the backend cannot be reached: the caller acts on what it knows.
        """
        if not task_ids:
            return []
        keys = [self._backend.get_key_for_task(task_id) for task_id in task_ids]
        try:
            payloads = self._backend.client.mget(keys)
        except (RedisError, OSError) as exc:
            if threading.current_thread() is self._thread:
                raise  # the watcher reconnects
            log.warning("cannot read results from the backend: %s", exc)
            return []
        found = [self._decode(payload) for payload in payloads if payload is not None]
        return [meta for meta in found if meta is not None]

    def _report(self, payload: bytes) -> None:
        meta = self._decode(payload)
        if meta is not None:
            self._deliver(meta)

    def _decode(self, payload: bytes) -> Meta | None:
        try:
            meta = self._backend.decode(payload)
        except Exception:
            log.warning("ignored an undecodable result payload", exc_info=True)
            return None
        if isinstance(meta, dict) and meta.get("status") in REPORTED and meta.get("task_id"):
            return meta
        return None


class WorkerCensus:
    """Counts the worker processes serving ``queue``, every few seconds, in a thread."""

    def __init__(self, app: Celery, queue: str) -> None:
        self._app = app
        self._queue = queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hotfolder-census", daemon=True)
        #: Worker processes per worker node last seen serving the queue.
        self.processes: dict[str, int] = {}
        #: Every worker node ever found serving the queue (ours, when it is lost).
        self.seen: set[str] = set()

    def start(self) -> None:
        """Start counting; the first census is taken right away."""
        self._thread.start()

    def stop(self) -> None:
        """Stop counting."""
        self._stop.set()
        self._thread.join(timeout=CENSUS_INTERVAL + 2 * CENSUS_REPLY_TIMEOUT)

    def total(self) -> int:
        """Worker processes of every node that answered the last census."""
        return sum(self.processes.values())

    def _run(self) -> None:
        self._take()
        while not self._stop.wait(CENSUS_INTERVAL):
            self._take()

    def _take(self) -> None:
        try:
            inspect = self._app.control.inspect(timeout=CENSUS_REPLY_TIMEOUT)
            queues: dict[str, list[dict[str, Any]]] = inspect.active_queues() or {}
            stats: dict[str, dict[str, Any]] = inspect.stats() or {}
        except Exception as exc:
            # The broker is down: no worker can be reached, which is what /healthz says.
            log.debug("worker census failed: %s", exc)
            self.processes = {}
            return
        census: dict[str, int] = {}
        for node, served in queues.items():
            if any(queue.get("name") == self._queue for queue in served):
                pool = stats.get(node, {}).get("pool", {})
                census[node] = int(pool.get("max-concurrency", 0) or 0)
        # One assignment: readers in other threads see the old or the new census.
        self.processes = census
        self.seen = self.seen | set(census)
