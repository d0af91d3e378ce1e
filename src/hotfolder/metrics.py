"""Prometheus metrics: a dispatcher listener plus a collector of live figures.

Workers report back to the main process (each outcome carries its bytes and
times), so one registry in the daemon holds everything: no multiprocess mode.
Labels are bounded by the config: ``folder``, ``workflow``, ``status`` and
error ``code``; never file names or job ids. Every labelled series exists from
the start (initialised per folder), so rates and alerts see zeros, not gaps.

Figures that are a state rather than an event (queue depth, jobs in progress,
watch health) are read at scrape time from a :class:`Snapshot`, so a folder
removed by a reload disappears from them instead of freezing at its last value.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hotfolder import __version__
from hotfolder.config import FolderSettings
from hotfolder.errors import ERROR_CODES
from hotfolder.journal import JobRecord
from hotfolder.models import JobState, JobStatus

#: Document work takes from a fraction of a second to half an hour.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
#: Waiting in the queue: from milliseconds (idle) to a long backlog.
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The *_created series double every counter and histogram for no use on a dashboard.
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass
class FolderFigures:
    """Live figures of one folder at scrape time."""

    queued: int = 0
    running: int = 0
    pending: int = 0
    settling: int = 0
    ignored: int = 0
    watched: bool = True


@dataclass
class Snapshot:
    """Live figures of the daemon at scrape time."""

    folders: dict[str, FolderFigures] = field(default_factory=dict)
    workers: int = 0
    workers_alive: int = 0
    #: Workers declared lost since the start (Celery: silent for worker_lost_after).
    workers_lost: int = 0
    callbacks: Mapping[str, int] = field(default_factory=dict)


class _LiveCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        now = self._snapshot()
        families = {
            "queued": GaugeMetricFamily(
                "hotfolder_jobs_queued", "Jobs claimed and waiting for a worker.", labels=["folder"]
            ),
            "running": GaugeMetricFamily(
                "hotfolder_jobs_in_progress", "Jobs a worker is converting.", labels=["folder"]
            ),
            "pending": GaugeMetricFamily(
                "hotfolder_jobs_pending",
                "Manifest jobs waiting for their inputs or for process=true.",
                labels=["folder"],
            ),
            "settling": GaugeMetricFamily(
                "hotfolder_files_settling",
                "Files seen in an input folder, waiting to stay unchanged for settle seconds.",
                labels=["folder"],
            ),
            "ignored": GaugeMetricFamily(
                "hotfolder_files_ignored",
                "Files left in an input folder because the folder's include, exclude or "
                "manifests rule keeps them out (each is logged once).",
                labels=["folder"],
            ),
            "watched": GaugeMetricFamily(
                "hotfolder_watch_up",
                "1 when the folder's observer is running and its input is reachable.",
                labels=["folder"],
            ),
        }
        for name, figures in sorted(now.folders.items()):
            families["queued"].add_metric([name], figures.queued)
            families["running"].add_metric([name], figures.running)
            families["pending"].add_metric([name], figures.pending)
            families["settling"].add_metric([name], figures.settling)
            families["ignored"].add_metric([name], figures.ignored)
            families["watched"].add_metric([name], 1 if figures.watched else 0)
        yield from families.values()
        yield GaugeMetricFamily("hotfolder_workers", "Configured worker processes.", now.workers)
        yield GaugeMetricFamily(
            "hotfolder_workers_alive", "Worker processes running.", now.workers_alive
        )
        yield CounterMetricFamily(
            "hotfolder_worker_lost",
            "Celery workers declared lost (silent for worker_lost_after); their jobs ran again.",
            now.workers_lost,
        )
        callbacks = CounterMetricFamily(
            "hotfolder_callbacks",
            "Manifest callback attempts by result (delivered, failed_attempts, given_up, refused).",
            labels=["result"],
        )
        for result, count in sorted(now.callbacks.items()):
            callbacks.add_metric([result], count)
        yield callbacks


class Metrics:
    """The daemon's registry; also a dispatcher listener."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        # No auto-describe: it would call the live collector before the daemon runs.
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        reg = self.registry
        self.finished = Counter(
            "hotfolder_jobs_finished",
            "Jobs that reached a final state, by status.",
            ["folder", "workflow", "status"],
            registry=reg,
        )
        self.failed = Counter(
            "hotfolder_jobs_failed",
            "Failed or aborted jobs by error code.",
            ["folder", "workflow", "code"],
            registry=reg,
        )
        self.duration = Histogram(
            "hotfolder_job_duration_seconds",
            "Time from a worker taking a job to its result being published.",
            ["folder", "workflow"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.wait = Histogram(
            "hotfolder_job_queue_wait_seconds",
            "Time a claimed job waited for a worker.",
            ["folder"],
            buckets=WAIT_BUCKETS,
            registry=reg,
        )
        self.input_bytes = Counter(
            "hotfolder_input_bytes", "Bytes of inputs of finished jobs.", ["folder"], registry=reg
        )
        self.output_bytes = Counter(
            "hotfolder_output_bytes", "Bytes of published outputs.", ["folder"], registry=reg
        )
        self.last_success = Gauge(
            "hotfolder_last_success_timestamp_seconds",
            "When the folder last published a successful job (Unix time; 0: never).",
            ["folder"],
            registry=reg,
        )
        self.retries = Counter(
            "hotfolder_job_retries",
            "Attempts retried after a transient error.",
            ["folder"],
            registry=reg,
        )
        self.inputs_changed = Counter(
            "hotfolder_inputs_changed_after_claim",
            "Inputs found changed after their conversion (a writer was still at work): "
            "the job went back to settling and ran again.",
            ["folder"],
            registry=reg,
        )
        self.cleanup_removed = Counter(
            "hotfolder_cleanup_removed",
            "Things the scheduled cleanup removed or recovered, by kind.",
            ["kind"],
            registry=reg,
        )
        self.cleanup_runs = Counter(
            "hotfolder_cleanup_runs", "Cleanup runs by result.", ["result"], registry=reg
        )
        self.reloads = Counter(
            "hotfolder_config_reloads",
            "Config reloads (SIGHUP) by result.",
            ["result"],
            registry=reg,
        )
        build = Gauge(
            "hotfolder_build_info",
            "Always 1; the labels say which hotfolder runs.",
            ["version", "python_version"],
            registry=reg,
        )
        build.labels(__version__, platform.python_version()).set(1)
        for result in ("success", "failure"):
            self.reloads.labels(result)
            self.cleanup_runs.labels(result)
        reg.register(_LiveCollector(snapshot))
        self._queued_at: dict[str, float] = {}

    def init_folders(self, folders: Iterable[FolderSettings], workflows: Iterable[str]) -> None:
        """Create every labelled series of these folders at zero (rates need a start)."""
        for folder in folders:
            name = folder.name
            for state in (JobState.SUCCESS, JobState.FAILED, JobState.ABORTED):
                self.finished.labels(name, folder.workflow, state.value)
            for code in ERROR_CODES:
                self.failed.labels(name, folder.workflow, code)
            self.duration.labels(name, folder.workflow)
            self.wait.labels(name)
            self.input_bytes.labels(name)
            self.output_bytes.labels(name)
            self.last_success.labels(name)
            self.retries.labels(name)
            self.inputs_changed.labels(name)
        del workflows  # series of other workflows (manifest overrides) appear when used

    def cleanup_kinds(self, kinds: Iterable[str]) -> None:
        """Create the cleanup counters at zero."""
        for kind in kinds:
            self.cleanup_removed.labels(kind)

    def exposition(self) -> bytes:
        """The text format for a scrape."""
        return generate_latest(self.registry)

    # --- dispatcher listener -------------------------------------------------------

    def job_queued(self, record: JobRecord) -> None:
        """Remember when the job joined the queue."""
        self._queued_at.setdefault(record.job_id, time.time())

    def job_started(self, record: JobRecord) -> None:
        """Observe how long the job waited for a worker."""
        queued = self._queued_at.pop(record.job_id, None)
        if queued is not None and record.started_at is not None:
            self.wait.labels(record.folder).observe(max(0.0, record.started_at - queued))

    def job_retried(self, record: JobRecord, code: str) -> None:
        """Count a retry; the job queues again."""
        self.retries.labels(record.folder).inc()
        self._queued_at[record.job_id] = time.time() + max(0.0, record.not_before - time.time())

    def job_input_changed(self, record: JobRecord) -> None:
        """Count an input that changed after its claim; the job settles and runs again."""
        self.inputs_changed.labels(record.folder).inc()

    def job_finished(self, record: JobRecord, status: JobStatus) -> None:
        """Count the result, its bytes and, for jobs that ran, their duration."""
        self._queued_at.pop(record.job_id, None)
        folder, workflow = record.folder, record.workflow
        self.finished.labels(folder, workflow, status.status.value).inc()
        if status.error is not None:
            self.failed.labels(folder, workflow, status.error.code).inc()
        self.input_bytes.labels(folder).inc(sum(i.bytes for i in status.inputs))
        self.output_bytes.labels(folder).inc(sum(o.bytes for o in status.outputs))
        if record.started_at is not None and status.duration_seconds is not None:
            self.duration.labels(folder, workflow).observe(status.duration_seconds)
        if status.status is JobState.SUCCESS:
            self.last_success.labels(folder).set(record.finished_at or time.time())
