"""The job queue: fair across folders, with delayed entries for retries.

Each folder has its own FIFO; :meth:`FairQueue.pop` serves the folders in
turn, so a folder with ten thousand waiting files cannot starve one with a
single file. Retries wait in a heap until their backoff has passed.
"""

from __future__ import annotations

import heapq
from collections import deque


class FairQueue:
    """Round-robin over per-folder FIFOs of job ids. Not thread-safe: one owner thread."""

    def __init__(self) -> None:
        self._fifos: dict[str, deque[str]] = {}
        self._turn: deque[str] = deque()
        self._delayed: list[tuple[float, str, str]] = []
        self._sizes: dict[str, int] = {}

    def put(self, folder: str, job_id: str, not_before: float = 0.0, now: float = 0.0) -> None:
        """Queue a job; with ``not_before`` in the future it waits until then."""
        self._sizes[folder] = self._sizes.get(folder, 0) + 1
        if not_before > now:
            heapq.heappush(self._delayed, (not_before, folder, job_id))
            return
        self._append(folder, job_id)

    def _append(self, folder: str, job_id: str) -> None:
        fifo = self._fifos.get(folder)
        if fifo is None:
            fifo = self._fifos[folder] = deque()
        if not fifo:
            self._turn.append(folder)
        fifo.append(job_id)

    def pop(self, now: float) -> tuple[str, str] | None:
        """The next job, taking folders in turn; None when nothing is due."""
        while self._delayed and self._delayed[0][0] <= now:
            _, folder, job_id = heapq.heappop(self._delayed)
            self._append(folder, job_id)
        if not self._turn:
            return None
        folder = self._turn.popleft()
        fifo = self._fifos[folder]
        job_id = fifo.popleft()
        if fifo:
            self._turn.append(folder)
        self._sizes[folder] -= 1
        return folder, job_id

    def remove(self, job_id: str) -> bool:
        """Take a queued job out (cancel); True if it was queued."""
        for folder, fifo in self._fifos.items():
            if job_id in fifo:
                fifo.remove(job_id)
                if not fifo and folder in self._turn:
                    self._turn.remove(folder)
                self._sizes[folder] -= 1
                return True
        for index, (_, folder, queued) in enumerate(self._delayed):
            if queued == job_id:
                self._delayed.pop(index)
                heapq.heapify(self._delayed)
                self._sizes[folder] -= 1
                return True
        return False

    def size(self, folder: str | None = None) -> int:
        """Jobs waiting (due or delayed), for one folder or all."""
        if folder is None:
            return sum(self._sizes.values())
        return self._sizes.get(folder, 0)

    def next_due(self) -> float | None:
        """When the earliest delayed job becomes due."""
        return self._delayed[0][0] if self._delayed else None
