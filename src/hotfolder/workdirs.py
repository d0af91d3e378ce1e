"""Job work directories: made at claim, emptied and handed on after publishing.

Each job converts in its own directory, ``<work area>/jobs/<job id>``, with
``input/`` for the claimed originals and ``work/`` for what the steps write.
Making and deleting those three or four directories for every job cost more
than the whole conversion of a one-page PDF (every filesystem journals each
create and delete; ext4 without a journal also scans the inodes freed in the
last 30 seconds on every create). So a finished job's directory is renamed
aside, emptied in a background thread with its directories kept, and the next
claim in the same work area renames it to its own job id.

Only renames decide who owns a directory, so several daemons can share one
work area: a spare is taken by renaming it to a job id, and anything removed
is first renamed to a name of the remover's own. A directory that someone may
still take is never deleted from under them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
import uuid
from pathlib import Path

#: Finished jobs' work dirs on their way to being emptied.
TRASH_PREFIX = ".trash-"
#: Emptied work dirs waiting for the next job.
SPARE_PREFIX = ".spare-"
#: Spares kept per work area; more finished jobs than this at once are deleted.
MAX_SPARES = 64
#: How deep directories are kept: the job dir, input/ and work/, the step dirs.
_KEEP_DEPTH = 2


def remove(path: Path) -> None:
    """Delete a work dir nobody may be using, even if another daemon shares the area.

    It is renamed to a fresh name first: if someone took it meanwhile, the rename
    fails and nothing of theirs is touched.
    """
    mine = path.with_name(f"{TRASH_PREFIX}{uuid.uuid4().hex}")
    try:
        path.rename(mine)
    except OSError:
        return  # taken (or removed) by someone else
    shutil.rmtree(mine, ignore_errors=True)


def is_internal(name: str) -> bool:
    """True for work-area entries that are not a job's directory."""
    return name.startswith((TRASH_PREFIX, SPARE_PREFIX))


class WorkDirs:
    """Creates job work dirs, recycling the directories of finished jobs."""

    def __init__(self) -> None:
        self._spares: dict[Path, list[Path]] = {}
        self._lock = threading.Lock()
        self._trash: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._reaper = threading.Thread(target=self._reap, name="hotfolder-reaper", daemon=True)
        self._reaper.start()

    def create(self, work: Path) -> None:
        """Make ``work`` (``<jobs>/<job id>``) with an empty ``input/`` in it."""
        while (spare := self._take(work.parent)) is not None:
            try:
                spare.rename(work)
            except OSError:
                continue  # removed by another daemon's start-up: try the next
            with contextlib.suppress(FileExistsError):
                (work / "input").mkdir()
            return
        (work / "input").mkdir(parents=True)

    def discard(self, work: Path) -> None:
        """Hand a work dir nobody needs any more (a finished job's) to the background thread."""
        # Renamed first (atomic, instant): a retry may recreate the work dir at once,
        # and must never find the reaper deleting inside it.
        trash = work.with_name(f"{TRASH_PREFIX}{work.name}")
        try:
            work.rename(trash)
        except FileNotFoundError:
            return
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
            return
        self._trash.put(trash)

    def close(self) -> None:
        """Finish emptying, then delete the spares (at stop)."""
        self._trash.put(None)
        self._reaper.join(timeout=60)
        with self._lock:
            spares = [path for paths in self._spares.values() for path in paths]
            self._spares.clear()
        for spare in spares:
            remove(spare)

    def _take(self, jobs: Path) -> Path | None:
        with self._lock:
            spares = self._spares.get(jobs)
            return spares.pop() if spares else None

    def _reap(self) -> None:
        while (trash := self._trash.get()) is not None:
            jobs = trash.parent
            with self._lock:
                room = len(self._spares.get(jobs, ())) < MAX_SPARES
            if room:
                spare = trash.with_name(f"{SPARE_PREFIX}{trash.name[len(TRASH_PREFIX) :]}")
                try:
                    _clear(trash, _KEEP_DEPTH)
                    trash.rename(spare)
                except OSError:
                    pass  # taken away meanwhile (another daemon's start-up), or stuck
                else:
                    with self._lock:
                        self._spares.setdefault(jobs, []).append(spare)
                    continue
            shutil.rmtree(trash, ignore_errors=True)


def _clear(directory: Path, depth: int) -> None:
    # Deletes every file under ``directory`` and every directory deeper than ``depth``.
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if depth > 0:
                    _clear(Path(entry.path), depth - 1)
                else:
                    shutil.rmtree(entry.path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    Path(entry.path).unlink()
