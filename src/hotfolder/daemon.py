"""The daemon: the one place that wires intake, dispatcher, pool and publisher.

Threads: one observer per folder (hints only), the intake loop (settling,
claiming, rescans, observer supervision), the dispatcher loop (pool and
publishing) and the main thread, which waits for SIGTERM/SIGINT.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from hotfolder import running
from hotfolder.callbacks import CallbackSender
from hotfolder.claim import ClaimFailed, ClaimLost, claim_many
from hotfolder.cleanup import KINDS, Cleanup, scheduled_cleanup
from hotfolder.config import FolderSettings, Settings
from hotfolder.control import Control
from hotfolder.dispatch import Dispatcher
from hotfolder.errors import HotfolderError, StartupError
from hotfolder.executors import make_executor
from hotfolder.heartbeat import Heartbeat
from hotfolder.http import HttpEndpoint
from hotfolder.intake import FolderIntake
from hotfolder.journal import Journal, journal_path
from hotfolder.loader import load_checked
from hotfolder.manifest import is_manifest
from hotfolder.metrics import FolderFigures, Metrics, Snapshot
from hotfolder.paths import prepare_paths
from hotfolder.pending import PendingJobs
from hotfolder.publish import Publisher
from hotfolder.recovery import recover
from hotfolder.reload import plan_reload
from hotfolder.systemd import Notifier
from hotfolder.watcher import FolderWatch
from hotfolder.workflows.registry import log_tool_versions
from hotfolder.writers import WriterProbe, ignore_lease_breaks

log = logging.getLogger("hotfolder.daemon")


class Daemon:
    """A running hotfolder: call :meth:`start`, then :meth:`stop` (or :meth:`run`)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self.folders: dict[str, FolderSettings] = {f.name: f for f in settings.folders}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reload_requested = threading.Event()
        self.journal: Journal | None = None
        self.dispatcher: Dispatcher | None = None
        self.intakes: dict[str, FolderIntake] = {}
        self.watches: dict[str, FolderWatch] = {}
        self._threads: list[threading.Thread] = []
        self.http: HttpEndpoint | None = None
        self.metrics = Metrics(self.snapshot)
        # Taken out of the environment so that no worker or engine speaks for the service.
        self.notifier = Notifier.from_env(unset=True)
        self.heartbeat = Heartbeat(self.notifier, self.snapshot, self.alive, clock)
        self.pending: PendingJobs | None = None
        self.control: Control | None = None
        self.callbacks: CallbackSender | None = None
        self.publisher: Publisher | None = None
        self.cleanup: Cleanup | None = None

    def start(self) -> None:
        """Prepare folders, recover the journal, start watching and converting."""
        daemon = self.settings.daemon
        prepare_paths(self.settings)
        self.journal = Journal(journal_path(daemon.state_dir))
        self._running_lock = running.hold(daemon.state_dir)
        self._reported = -1
        publisher = Publisher(self.journal, self.folders, keep_originals=False)
        pool = make_executor(self.settings)
        pool.start()
        self.dispatcher = Dispatcher(daemon, self.folders, self.journal, publisher, pool)
        self.dispatcher.on_room = self._wake.set
        for folder in self.settings.folders:
            self.intakes[folder.name] = FolderIntake(folder, self._clock, self._wake)
        self.pending = PendingJobs(
            self.folders,
            self.intakes,
            self.journal,
            publisher,
            self.dispatcher.enqueue,
            self.dispatcher.announce_finished,
            self._clock,
        )
        self.control = Control(
            self.journal, self.pending, self.dispatcher, publisher, self._wake.set, self._clock
        )
        self.callbacks = CallbackSender(daemon, self.folders)
        self.dispatcher.listeners.append(self.callbacks)
        self.dispatcher.listeners.append(self.metrics)
        self.metrics.init_folders(self.settings.folders, [])
        self.callbacks.start()
        self.metrics.cleanup_kinds(KINDS)
        self._start_cleanup()
        self.publisher = publisher
        recover(self.journal, self.folders, publisher, self.pending, self.control, self.dispatcher)
        for folder in self.settings.folders:
            self._watch(folder)
        self._spawn("hotfolder-dispatch", self.dispatcher.run)
        self._spawn("hotfolder-intake", self._intake_loop)
        if self.settings.http.listen:
            try:
                self.http = HttpEndpoint(
                    self.settings.http.listen,
                    self.journal,
                    self.problems,
                    self.control.submit,
                    self.metrics.exposition,
                    self.settings.http.token,
                    details=self.intake_report,
                    status=self.service_status,
                )
            except OSError as exc:
                self.stop()
                raise StartupError(
                    f"cannot listen on {self.settings.http.listen}: {exc.strerror}"
                ) from None
            self.http.start()
        # Probing engines (LibreOffice takes a second or two) must not delay intake.
        threading.Thread(target=log_tool_versions, name="hotfolder-probe", daemon=True).start()
        log.info(
            "hotfolder started: %d folder(s), %s, journal %s",
            len(self.folders),
            f"{daemon.workers} worker(s)" if daemon.executor == "pool" else "Celery workers",
            self.journal.path,
        )

    def _watch(self, folder: FolderSettings) -> None:
        """Start observing ``folder`` (its intake exists) and scan it."""
        daemon = self.settings.daemon
        intake = self.intakes[folder.name]
        watch = FolderWatch(
            folder.input_dir,
            folder.observer or daemon.observer,
            folder.recursive,
            daemon.poll_interval,
            intake.hint,
        )
        intake.trust_ctime = watch.kind == "native"
        # Native means a local filesystem, where the kernel knows who writes a file.
        native = watch.kind == "native"
        intake.writers = WriterProbe(folder.name, folder.input_dir) if native else None
        # Observer first, then the scan: a file arriving in between is seen twice
        # (harmless, intake deduplicates) rather than never.
        watch.start()
        self.watches[folder.name] = watch
        intake.scan()

    def _start_cleanup(self) -> None:
        assert self.journal is not None and self.dispatcher is not None
        assert self.pending is not None
        self.cleanup = scheduled_cleanup(
            self.settings.cleanup,
            self.folders,
            self.journal,
            self.dispatcher,
            self.pending,
            self.metrics,
        )

    def request_reload(self) -> None:
        """Re-read the config soon (SIGHUP); safe from any thread or a signal handler."""
        self._reload_requested.set()
        self._wake.set()

    def _reload(self) -> None:
        """Apply a changed config without a restart; an invalid one keeps the old running."""
        self._reload_requested.clear()
        assert self.dispatcher is not None and self.publisher is not None
        log.info("reloading %s", self.settings.config_file)
        self.notifier.reloading()
        try:
            new = load_checked(self.settings.config_file)
            prepare_paths(new)
        except HotfolderError as exc:
            self.metrics.reloads.labels("failure").inc()
            log.error("reload refused, the running config stays: %s", exc.message)
            self.notifier.ready()
            return
        plan = plan_reload(self.settings, new)
        fresh = {folder.name: folder for folder in new.folders}
        for name in plan.removed + plan.changed:
            watch = self.watches.pop(name, None)
            if watch is not None:
                watch.stop()
        for name in plan.removed:
            # Jobs in flight still publish with the settings they were claimed under.
            del self.folders[name]
            self.intakes.pop(name, None)
        for name in plan.added + plan.changed:
            folder = fresh[name]
            self.folders[name] = folder
            self.dispatcher.folders[name] = folder
            self.publisher.folders[name] = folder
            self.intakes[name] = FolderIntake(folder, self._clock, self._wake)
            self._watch(folder)
        if plan.workers_setup_changed:
            self.dispatcher.pool.reconfigure(new.daemon.plugins, new.workflows)
        cleanup_changed = new.cleanup != self.settings.cleanup
        self.dispatcher.settings = new.daemon
        logging.getLogger().setLevel(new.daemon.log_level)
        self.metrics.init_folders(new.folders, [])
        self.settings = new
        if cleanup_changed:
            if self.cleanup is not None:
                self.cleanup.stop()
            self._start_cleanup()
        self.metrics.reloads.labels("success").inc()
        log.info("reloaded: %s", plan.summary())
        self.notifier.ready()
        if plan.restart_needed:
            log.warning(
                "changed settings that take effect at the next restart: %s",
                ", ".join(plan.restart_needed),
            )

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _intake_loop(self) -> None:
        assert self.dispatcher is not None
        rescan_every = self.settings.daemon.rescan_interval
        next_rescan = self._clock() + rescan_every
        next_health = self._clock() + 1.0
        while not self._stopping.is_set():
            self._wake.clear()
            if self._reload_requested.is_set():
                try:
                    self._reload()
                except Exception:
                    self.metrics.reloads.labels("failure").inc()
                    log.exception("reload failed")
                    self.notifier.ready()  # RELOADING=1 went out: leave "reloading" again
            now = self._clock()
            if now >= next_rescan:
                for intake in self.intakes.values():
                    intake.scan()
                next_rescan = now + rescan_every
            if now >= next_health:
                self._supervise_watches()
                self.heartbeat.beat()
                self._report_workers()
                next_health = now + 1.0
            waiting = False
            assert self.pending is not None and self.control is not None
            self.control.process()
            self.pending.check()
            for name, intake in self.intakes.items():
                try:
                    intake.tick()
                    waiting |= self._claim_ready(name, intake)
                except Exception:
                    log.exception("intake of folder %s failed; retrying", name)
            self._report_intake()
            deadlines = [d for d in (i.next_deadline() for i in self.intakes.values()) if d]
            wake_at = min([next_rescan, next_health, self.control.next_poll(), *deadlines])
            timeout = max(0.0, wake_at - self._clock())
            if waiting:
                timeout = min(timeout, 0.5)
            if len(self.pending):
                # Pending manifest jobs watch their inputs settle by polling them.
                timeout = min(timeout, 0.25)
            self._wake.wait(timeout)

    def _claim_ready(self, name: str, intake: FolderIntake) -> bool:
        assert self.dispatcher is not None and self.journal is not None
        if not intake.ready_count():
            return False
        room = self.dispatcher.room(name)
        folder = self.folders[name]
        files = []
        for candidate in intake.take(room):
            if folder.manifests != "off" and is_manifest(candidate.path.name):
                assert self.pending is not None
                self.pending.arrive(folder, candidate)
            else:
                files.append(candidate)
        assert self.publisher is not None
        results = claim_many(folder, files, self.journal, self.publisher.workdirs)
        for candidate, result in zip(files, results, strict=True):
            if isinstance(result, ClaimLost):
                log.debug("%s", result)
            elif isinstance(result, ClaimFailed):
                log.error("%s; it stays in the input folder", result)
                intake.block(candidate)
            else:
                self.dispatcher.enqueue(result)
        return intake.ready_count() > 0

    def intake_report(self) -> dict[str, Any]:
        """Per folder: files settling and files the folder's rules keep out (with the rule)."""
        return {
            "folders": {
                name: {"settling": intake.pending_count(), "ignored": intake.ignored_files()}
                for name, intake in list(self.intakes.items())
            }
        }

    def _report_intake(self) -> None:
        # `hotfolder status` reads it: written only when the ignored files change.
        version = sum(intake.ignored_version for intake in self.intakes.values())
        if version != self._reported:
            self._reported = version
            try:
                running.write_report(self.settings.daemon.state_dir, self.intake_report())
            except OSError as exc:
                log.warning("cannot write the intake report: %s", exc)

    def service_status(self) -> dict[str, Any]:
        """The service at a glance for ``GET /status``: health and the workers."""
        problems = self.problems()
        return {"healthy": not problems, "problems": problems, **self._workers_report()}

    def _workers_report(self) -> dict[str, Any]:
        pool = self.dispatcher.pool if self.dispatcher is not None else None
        return {
            "executor": self.settings.daemon.executor,
            "workers": [view.document() for view in pool.workers()] if pool else [],
            "workersLost": pool.workers_lost if pool else 0,
            "at": time.time(),
        }

    def _report_workers(self) -> None:
        # `hotfolder status` reads it (it talks to no broker); refreshed every second.
        try:
            running.write_report(
                self.settings.daemon.state_dir, self._workers_report(), running.STATUS_NAME
            )
        except OSError as exc:
            log.debug("cannot write the status report: %s", exc)

    def _supervise_watches(self) -> None:
        for name, watch in self.watches.items():
            if watch.alive():
                continue
            log.warning("observer of folder %s is not running; restarting it", name)
            watch.stop()
            try:
                self.folders[name].input_dir.mkdir(parents=True, exist_ok=True)
                watch.start()
            except OSError as exc:
                log.error("cannot watch %s: %s", watch.root, exc)
            self.intakes[name].scan()

    def snapshot(self) -> Snapshot:
        """Live figures for a metrics scrape (called from the HTTP thread)."""
        figures: dict[str, FolderFigures] = {}
        running = self.dispatcher.figures() if self.dispatcher is not None else {}
        for name in self.folders:
            queued, active = running.get(name, (0, 0))
            intake = self.intakes.get(name)
            watch = self.watches.get(name)
            figures[name] = FolderFigures(
                queued=queued,
                running=active,
                pending=self.pending.count(name) if self.pending is not None else 0,
                settling=intake.pending_count() if intake is not None else 0,
                ignored=intake.ignored_count() if intake is not None else 0,
                watched=watch is not None and watch.alive(),
            )
        pool = self.dispatcher.pool if self.dispatcher is not None else None
        stats = self.callbacks.stats if self.callbacks is not None else None
        return Snapshot(
            folders=figures,
            workers=self.settings.daemon.workers,
            workers_alive=pool.alive_count() if pool is not None else 0,
            workers_lost=pool.workers_lost if pool is not None else 0,
            callbacks=vars(stats) if stats is not None else {},
        )

    def problems(self) -> list[str]:
        """What is wrong right now: unwatched folders, dead workers, an unwritable journal."""
        found = [
            f"folder {name} is not watched" for name, w in self.watches.items() if not w.alive()
        ]
        if self.dispatcher is None or not self.dispatcher.pool.alive():
            if self.settings.daemon.executor == "celery":
                figures = self.dispatcher.figures().values() if self.dispatcher else []
                waiting = sum(queued + running for queued, running in figures)
                found.append(
                    "no Celery worker serves the queue"
                    + (f": {waiting} job(s) wait for one" if waiting else "")
                )
            else:
                found.append("worker processes are not running")
        if self.dispatcher is not None and self.dispatcher.unpublished():
            found.append(
                f"{self.dispatcher.unpublished()} finished job(s) cannot be published "
                "(an output or error folder is not writable, or its disk is full)"
            )
        if self.journal is None or not self.journal.writable():
            found.append("the journal is not writable")
        dead = [thread.name for thread in self._threads if not thread.is_alive()]
        if dead and not self._stopping.is_set():
            found.append(f"daemon thread(s) died: {', '.join(dead)}")
        return found

    def alive(self) -> bool:
        """The daemon's own machinery works: its threads run and its workers are up.

        This, not :meth:`problems`, gates the systemd watchdog: an unreachable share
        or a read-only journal is not fixed by a restart (and five restarts leave
        the unit failed even after the share is back); /healthz, STATUS and
        ``hotfolder_watch_up`` report those.
        """
        threads = all(thread.is_alive() for thread in self._threads)
        if self.dispatcher is None:
            return False
        # Celery workers run on other machines: restarting this daemon brings none back.
        celery = self.settings.daemon.executor == "celery"
        return threads and (celery or self.dispatcher.pool.alive())

    def stop(self) -> None:
        """Stop intake, drain running jobs (``drain_timeout``), leave the rest journaled."""
        if self._stopping.is_set():
            return
        log.info(
            "stopping: no new jobs; waiting up to %.0f s for running ones",
            self.settings.daemon.drain_timeout,
        )
        self.notifier.stopping()
        self._stopping.set()
        self._wake.set()
        if self.http is not None:
            self.http.stop()
        for watch in self.watches.values():
            watch.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        for thread in self._threads:
            thread.join()
        if self.publisher is not None:
            self.publisher.close()
        if self.callbacks is not None:
            self.callbacks.stop()
        if self.cleanup is not None:
            self.cleanup.stop()
        if self.journal is not None:
            self.journal.close()
            self._running_lock.close()
        log.info("stopped")

    def run(self) -> None:
        """Start, then serve until SIGTERM or SIGINT; drain and return."""
        stop = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        # Installed before the daemon reports ready: a reload must never kill it.
        signal.signal(signal.SIGHUP, lambda signum, frame: self.request_reload())
        # A watchdog kill (SIGABRT) then leaves every thread's traceback in the journal.
        faulthandler.enable(all_threads=True)
        ignore_lease_breaks()
        self.start()
        self.notifier.ready(f"watching {len(self.folders)} folder(s)")
        try:
            while not stop.wait(1.0):
                pass
        finally:
            self.stop()
