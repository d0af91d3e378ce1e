"""Scheduled cleanup: pure "what is expired" functions, then one place that acts.

Each kind has its own retention (seconds, 0 = keep forever). Deleting user
files would surprise, so only the journal's finished rows expire by default;
archived originals, status files and outputs are kept until the operator sets
a retention. File ages come from ``ctime``: it changes when hotfolder links or
renames a file into place, so it says when the file *arrived* there (an
archived original keeps its old mtime).

Two kinds repair rather than delete: *orphaned work dirs* (a work dir with no
journal row, older than ``orphan_grace``) have their inputs moved back to the
input folder so they become jobs again, and *stuck jobs* (journal rows in
``queued``/``running`` that the dispatcher does not know, past their folder's
timeout) are queued again.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import Counter

from hotfolder.config import CleanupSettings, FolderSettings
from hotfolder.journal import JobRecord, Journal
from hotfolder.publish import STATUS_SUFFIX, place_unique
from hotfolder.workdirs import is_internal

log = logging.getLogger("hotfolder.cleanup")

KINDS = ("journal_rows", "archived", "status_files", "outputs", "orphaned_work", "stuck_jobs")


# --- pure: what is expired ------------------------------------------------------------


def _files(directory: Path) -> Iterator[Path]:
    if not directory.is_dir():
        return
    for root, _dirs, names in os.walk(directory):
        for name in names:
            yield Path(root) / name


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.lstat().st_ctime < cutoff
    except FileNotFoundError:
        return False


def expired_files(directory: Path, now: float, retention: float, *, status: bool) -> list[Path]:
    """Status files (``status=True``) or other files in ``directory`` older than retention."""
    if retention <= 0:
        return []
    cutoff = now - retention
    return sorted(
        path
        for path in _files(directory)
        if path.name.endswith(STATUS_SUFFIX) == status and _older(path, cutoff)
    )


def orphaned_work_dirs(
    folders: Iterable[FolderSettings], known: Callable[[str], bool], now: float, grace: float
) -> list[tuple[FolderSettings, Path]]:
    """Work dirs with no journal row, untouched for ``grace`` seconds."""
    found = []
    for folder in folders:
        jobs = folder.work_dir / "jobs"
        if not jobs.is_dir():
            continue
        for entry in sorted(jobs.iterdir()):
            if is_internal(entry.name):
                continue  # a finished job's work dir on its way out, or a spare
            if not known(entry.name) and _older(entry, now - grace):
                found.append((folder, entry))
    return found


def stuck_jobs(
    records: Iterable[JobRecord],
    active: Callable[[str], bool],
    timeouts: Mapping[str, float],
    now: float,
) -> list[JobRecord]:
    """Queued or running rows the dispatcher does not hold, past their folder's timeout."""
    stuck = []
    for record in records:
        if record.phase not in ("queued", "running") or active(record.job_id):
            continue
        since = record.started_at or record.created_at
        if record.folder in timeouts and since + timeouts[record.folder] < now:
            stuck.append(record)
    return stuck


# --- acting ---------------------------------------------------------------------------


@dataclass
class CleanupReport:
    """What one run removed or repaired (or, for a dry run, would)."""

    items: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def lines(self) -> list[str]:
        """One line per item: ``kind: what``."""
        return [f"{kind}: {item}" for kind, items in self.items.items() for item in items]

    def counts(self) -> dict[str, int]:
        """How many items of each kind."""
        return {kind: len(items) for kind, items in self.items.items()}


class Cleanup:
    """Runs the cleanup once (:meth:`run`) or on a schedule (:meth:`start`)."""

    def __init__(
        self,
        settings: CleanupSettings,
        folders: Mapping[str, FolderSettings],
        journal: Journal,
        *,
        active: Callable[[str], bool] = lambda job_id: False,
        requeue: Callable[[JobRecord], None] | None = None,
        on_report: Callable[[CleanupReport | None], None] = lambda report: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.folders = folders
        self.journal = journal
        self.active = active
        self.requeue = requeue
        self.on_report = on_report
        self._clock = clock
        self._scheduler: BackgroundScheduler | None = None

    def run(self, *, dry_run: bool = False) -> CleanupReport:
        """Find what is expired and, unless ``dry_run``, remove or repair it."""
        now = self._clock()
        cfg = self.settings
        report = CleanupReport()
        if cfg.journal_retention > 0:
            for job_id in self.journal.finished_before(now - cfg.journal_retention):
                report.items["journal_rows"].append(job_id)
                if not dry_run:
                    self.journal.delete(job_id)
        for folder in self.folders.values():
            groups = [
                ("archived", folder.archive_dir, cfg.archive_retention, False),
                ("status_files", folder.output_dir, cfg.status_retention, True),
                ("status_files", folder.error_dir, cfg.status_retention, True),
                ("outputs", folder.output_dir, cfg.output_retention, False),
            ]
            for kind, directory, retention, status in groups:
                if directory is None:
                    continue
                for path in expired_files(directory, now, retention, status=status):
                    report.items[kind].append(str(path))
                    if not dry_run:
                        path.unlink(missing_ok=True)
        known = self.journal.job_ids()
        for folder, work in orphaned_work_dirs(
            self.folders.values(), known.__contains__, now, cfg.orphan_grace
        ):
            report.items["orphaned_work"].append(str(work))
            if not dry_run:
                self._reclaim(folder, work)
        if self.requeue is not None:
            timeouts = {name: f.timeout for name, f in self.folders.items()}
            for record in stuck_jobs(self.journal.unfinished(), self.active, timeouts, now):
                report.items["stuck_jobs"].append(record.job_id)
                if not dry_run:
                    log.warning(
                        "stuck past its timeout; queued again", extra={"job_id": record.job_id}
                    )
                    self.requeue(record)
        if not dry_run:
            self.on_report(report)
        removed = {k: v for k, v in report.counts().items() if v}
        log.info("cleanup%s: %s", " (dry run)" if dry_run else "", removed or "nothing to do")
        return report

    @staticmethod
    def _reclaim(folder: FolderSettings, work: Path) -> None:
        # Inputs go back where they came from and become jobs again; nothing is lost.
        inputs = work / "input"
        if inputs.is_dir():
            for original in sorted(inputs.iterdir()):
                stem, dot, ext = original.name.rpartition(".")
                name, rest = (stem, dot + ext) if dot and stem else (original.name, "")
                place_unique(original, folder.input_dir, name, rest)
        shutil.rmtree(work, ignore_errors=True)

    # --- schedule ---------------------------------------------------------------------

    def start(self) -> None:
        """Run on the configured schedule (cron expression, else every ``interval`` s)."""
        cfg = self.settings
        trigger = (
            CronTrigger.from_crontab(cfg.cron, timezone="UTC")
            if cfg.cron
            else IntervalTrigger(seconds=cfg.interval, timezone="UTC")
        )
        self._scheduler = BackgroundScheduler(timezone="UTC", daemon=True)
        self._scheduler.add_job(
            self._scheduled,
            trigger,
            id="cleanup",
            misfire_grace_time=300,
            coalesce=True,
            max_instances=1,
        )
        self._scheduler.start()

    def _scheduled(self) -> None:
        try:
            self.run()
        except Exception:
            log.exception("cleanup failed")
            self.on_report(None)

    def stop(self) -> None:
        """Stop the schedule (a run in progress finishes)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None


class _Dispatch(Protocol):
    def holds(self, job_id: str) -> bool: ...
    def enqueue(self, record: JobRecord) -> None: ...


class _Pending(Protocol):
    def job_ids(self) -> list[str]: ...


class _Counters(Protocol):
    @property
    def cleanup_runs(self) -> Counter: ...
    @property
    def cleanup_removed(self) -> Counter: ...


def scheduled_cleanup(
    settings: CleanupSettings,
    folders: Mapping[str, FolderSettings],
    journal: Journal,
    dispatcher: _Dispatch,
    pending: _Pending,
    metrics: _Counters,
) -> Cleanup | None:
    """Start the daemon's cleanup schedule (None when ``enabled = false``)."""
    if not settings.enabled:
        return None

    def active(job_id: str) -> bool:
        return dispatcher.holds(job_id) or job_id in pending.job_ids()

    def requeue(record: JobRecord) -> None:
        record.phase, record.state = "queued", "pending"
        journal.update(record.job_id, phase="queued", state="pending")
        dispatcher.enqueue(record)

    def count(report: CleanupReport | None) -> None:
        if report is None:
            metrics.cleanup_runs.labels("failure").inc()
            return
        metrics.cleanup_runs.labels("success").inc()
        for kind, n in report.counts().items():
            metrics.cleanup_removed.labels(kind).inc(n)

    cleanup = Cleanup(settings, folders, journal, active=active, requeue=requeue, on_report=count)
    cleanup.start()
    return cleanup
