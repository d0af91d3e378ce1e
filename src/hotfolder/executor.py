"""The worker pool: long-lived conversion processes with crash isolation.

``concurrent.futures.ProcessPoolExecutor`` is not used because one dying
worker breaks the whole pool (every pending future fails) and a running task
cannot be stopped. Here each worker is a process with its own pipe: a job that
overruns its timeout gets its worker killed, a worker that dies (segfault,
``os._exit``, out of memory) fails only the job it was running, and the slot is
refilled with a fresh process. Workers are forked from a forkserver that has
already imported the engines, so a respawn costs milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from hotfolder.config import WorkflowSettings
from hotfolder.errors import JobTimeout, TooLarge, WorkerCrashed
from hotfolder.executors import WorkerView
from hotfolder.memory import (
    PeakWatch,
    needed_more_message,
    oom_killed_message,
    oom_kills,
    reached_limit,
    set_address_space_limit,
)
from hotfolder.models import ErrorInfo, JobOutcome, JobSpec

log = logging.getLogger("hotfolder.executor")

_OOM_EXIT = 70
_CTX = multiprocessing.get_context("forkserver")
# Import the engines once in the forkserver, not in every new worker.
_CTX.set_forkserver_preload(["hotfolder.workflows.runner"])

#: Environment variables a worker (and any engine it starts) must not inherit.
_SCRUBBED_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


def cpu_share(processes: int) -> int:
    """The cores one of ``processes`` conversion processes may keep busy (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def prepare_worker_process(memory_limit_mb: int, processes: int = 1) -> None:
    """Set up a process that runs conversions (pool worker or Celery child).

    The OOM killer takes it before its parent, it keeps none of the service's
    systemd variables, and ``memory_limit_mb`` (0: none) caps its address space.
    Multi-threaded engines (OCR) use at most this process's share of the cores
    when ``processes`` of them run side by side (``HOTFOLDER_CPU_SHARE``).
    """
    os.environ["HOTFOLDER_CPU_SHARE"] = str(cpu_share(processes))
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("500")
    for name in _SCRUBBED_ENV:
        os.environ.pop(name, None)
    set_address_space_limit(memory_limit_mb)


def _exit_when_the_daemon_dies(conn: Connection) -> None:
    """Exit at once when the daemon's end of the pipe closes: the daemon was killed.

    A worker in the middle of a job would otherwise finish it, writing into the job's
    work dir while the restarted daemon runs the same job there again. (The
    forkserver cannot pass the daemon's death on: every worker holds its "alive"
    pipe, so it lives as long as they do.)
    """
    gone = select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL

    def watch() -> None:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLRDHUP)
        while True:
            if any(events & gone for _fd, events in poller.poll()):
                os._exit(0)

    threading.Thread(target=watch, name="hotfolder-daemon-watch", daemon=True).start()


def _worker_main(
    conn: Connection,
    peak: Any,  # a shared Value("q"): the largest address space seen (PeakWatch)
    memory_limit_mb: int,
    plugins: list[str],
    workflows: list[dict[str, Any]],
    logging_setup: tuple[str, str],
    processes: int = 1,
) -> None:
    """Loop of one worker process: receive a spec, run it, send the outcome."""
    _exit_when_the_daemon_dies(conn)
    # The daemon handles SIGINT/SIGTERM and stops workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prepare_worker_process(memory_limit_mb, processes)
    watch = PeakWatch(peak)
    watch.start()
    from hotfolder.config import WorkflowSettings
    from hotfolder.logs import configure as configure_logging

    # Lines a step logs carry the job id, in the daemon's format, on the same stderr.
    level, fmt = logging_setup
    configure_logging(level, "json" if fmt == "json" else "text")
    from hotfolder.workflows.registry import configure
    from hotfolder.workflows.runner import run_job

    # The daemon validated these before starting workers; here they only load.
    configure(plugins, [WorkflowSettings.model_validate(w) for w in workflows])

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        spec = JobSpec.model_validate(message)
        watch.reset()
        try:
            outcome = run_job(spec, _progress_sender(conn, spec.job_id))
        except MemoryError:
            # The heap may be corrupt now; report and leave so a fresh worker takes over.
            try:
                conn.send({"oom": True})
            finally:
                os._exit(_OOM_EXIT)
        watch.idle()
        try:
            conn.send(outcome.model_dump())
        except OSError:
            return  # the daemon is gone; its restart runs the job again


def _progress_sender(conn: Connection, job_id: str) -> Callable[[int, int], None]:
    """A callback that tells the daemon how many pages of the job are done."""

    def send(done: int, total: int) -> None:
        # Lost progress only makes the status lag; the job goes on.
        with contextlib.suppress(OSError):
            conn.send({"progress": [job_id, done, total]})

    return send


@dataclass
class _Slot:
    process: Any  # multiprocessing.Process from the forkserver context
    conn: Connection
    peak: Any  # the worker's shared peak address space in bytes (PeakWatch)
    spec: JobSpec | None = None
    deadline: float = 0.0
    timeout: float = 0.0
    jobs_done: int = 0
    #: The pool's setup generation this worker was started with (see reconfigure).
    generation: int = 0
    oom: bool = field(default=False)


Result = tuple[JobSpec, JobOutcome]


class WorkerPool:
    """A fixed number of worker processes; one job per worker at a time.

    Owned by one thread: :meth:`submit` and :meth:`poll` are called from the
    dispatcher loop; :meth:`wake` may be called from any thread.
    """

    def __init__(
        self,
        size: int,
        *,
        max_jobs_per_worker: int = 0,
        memory_limit_mb: int = 0,
        plugins: Sequence[str] = (),
        workflows: Sequence[WorkflowSettings] = (),
        logging_setup: tuple[str, str] = ("INFO", "text"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.plugins = list(plugins)
        # Plain dicts: they cross into the worker processes by pickle.
        self.workflows = [w.model_dump() for w in workflows]
        self.logging_setup = logging_setup
        self.generation = 0
        self.max_jobs_per_worker = max_jobs_per_worker
        self.memory_limit_mb = memory_limit_mb
        self._clock = clock
        #: Never called: a local process that dies fails its job (worker_crashed).
        self.on_attempt: Callable[[str], None] = lambda job_id: None
        self.workers_lost = 0
        self._slots: list[_Slot] = []
        #: The cgroup's OOM kills so far: a worker SIGKILLed while it grows is theirs.
        self._oom_kills = oom_kills()
        self._progress: dict[str, tuple[int, int]] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def start(self) -> None:
        """Start every worker process."""
        self._slots = [self._spawn() for _ in range(self.size)]

    def _spawn(self) -> _Slot:
        parent, child = _CTX.Pipe(duplex=True)
        peak = _CTX.Value("q", 0, lock=False)
        process = _CTX.Process(
            target=_worker_main,
            args=(
                child,
                peak,
                self.memory_limit_mb,
                self.plugins,
                self.workflows,
                self.logging_setup,
                self.size,
            ),
            name="hotfolder-worker",
        )
        process.daemon = True
        process.start()
        child.close()
        return _Slot(process=process, conn=parent, peak=peak)

    def free_slots(self) -> int:
        """How many workers are idle."""
        return sum(1 for slot in self._slots if slot.spec is None)

    def running(self) -> list[str]:
        """Job ids being converted right now."""
        return [slot.spec.job_id for slot in self._slots if slot.spec is not None]

    def alive_count(self) -> int:
        """How many worker processes are running."""
        return sum(1 for slot in self._slots if slot.process.is_alive())

    def alive(self) -> bool:
        """True when every worker process is running."""
        return all(slot.process.is_alive() for slot in self._slots)

    def workers(self) -> list[WorkerView]:
        """This machine's pool, as one worker."""
        return [
            WorkerView(
                name="local",
                host=socket.gethostname(),
                processes=self.alive_count(),
                jobs=len(self.running()),
                last_heartbeat=time.time(),
                state="alive" if self.alive() else "down",
            )
        ]

    def submit(self, spec: JobSpec, timeout: float) -> None:
        """Hand ``spec`` to an idle worker; the caller checked :meth:`free_slots`."""
        for slot in self._slots:
            if slot.spec is None:
                if slot.generation != self.generation:
                    self._retire(slot)  # idle since a reload: start it with the new setup
                slot.spec = spec
                slot.timeout = timeout
                slot.deadline = self._clock() + timeout
                slot.conn.send(spec.model_dump())
                return
        raise RuntimeError("no idle worker")

    def progress(self) -> dict[str, tuple[int, int]]:
        """(pages done, pages) per running job reported since the last call."""
        reported, self._progress = self._progress, {}
        return reported

    def wake(self) -> None:
        """Interrupt a :meth:`poll` in progress (new work arrived)."""
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            self._wake_w.send(b"\x00")

    def poll(self, timeout: float) -> list[Result]:
        """Wait up to ``timeout`` seconds for results, crashes and timeouts."""
        now = self._clock()
        busy = [slot for slot in self._slots if slot.spec is not None]
        if busy:
            timeout = max(0.0, min(timeout, min(slot.deadline for slot in busy) - now))
        waitables: list[Any] = [self._wake_r]
        for slot in busy:
            waitables += [slot.conn, slot.process.sentinel]
        ready = wait(waitables, timeout)
        if self._wake_r in ready:
            try:
                while self._wake_r.recv(4096):
                    pass
            except BlockingIOError:
                pass
        results: list[Result] = []
        for slot in busy:
            outcome = self._collect(slot)
            if outcome is not None:
                assert slot.spec is not None
                results.append((slot.spec, outcome))
                self._finish(slot)
        return results

    def _collect(self, slot: _Slot) -> JobOutcome | None:
        assert slot.spec is not None
        try:
            while slot.conn.poll():
                message = slot.conn.recv()
                if isinstance(message, dict) and "progress" in message:
                    job_id, done, total = message["progress"]
                    if job_id == slot.spec.job_id:
                        self._progress[job_id] = (int(done), int(total))
                elif isinstance(message, dict) and message.get("oom"):
                    slot.oom = True
                    break
                else:
                    self._progress.pop(slot.spec.job_id, None)
                    return JobOutcome.model_validate(message)
        except (EOFError, OSError):
            pass  # the worker died mid-send: treated as a crash below
        if not slot.process.is_alive() or slot.oom:
            slot.process.join(timeout=5)
            return self._crashed(slot)
        if self._clock() >= slot.deadline:
            log.warning(
                "exceeded its %.0f s timeout; stopping it",
                slot.timeout,
                extra={"job_id": slot.spec.job_id},
            )
            self._kill(slot)
            error = JobTimeout(
                f"The conversion took longer than the folder's timeout of {slot.timeout:g} s "
                "and was stopped. Raise the folder's timeout for large files, or split the file."
            )
            return self._error_outcome(slot.spec, error.code, error.message)
        return None

    def _crashed(self, slot: _Slot) -> JobOutcome:
        assert slot.spec is not None
        code = slot.process.exitcode
        error: TooLarge | WorkerCrashed
        if slot.oom or code == _OOM_EXIT or self._hit_limit(slot, code):
            # MemoryError, or an engine that aborted when an allocation failed (pdfium,
            # an uncaught std::bad_alloc): the limit stopped it, not a bug.
            error = TooLarge(needed_more_message(self.memory_limit_mb))
        elif code == -signal.SIGKILL and oom_kills() > self._oom_kills:
            self._oom_kills = oom_kills()
            error = TooLarge(oom_killed_message())
        else:
            killed = code is not None and code < 0
            why = f"was killed by signal {signal.Signals(-code).name}" if killed else ""
            error = WorkerCrashed(
                f"The worker process converting this file {why or f'exited with code {code}'}. "
                "Other jobs were not affected. The file probably triggers a bug in the "
                "engine; check it, then drop it again or report it."
            )
        log.error("worker converting job %s died: %s", slot.spec.job_id, error.message)
        self._replace(slot)
        return self._error_outcome(slot.spec, error.code, error.message)

    def _hit_limit(self, slot: _Slot, code: int | None) -> bool:
        killed = code is not None and code < 0
        return killed and reached_limit(slot.peak.value, self.memory_limit_mb)

    @staticmethod
    def _error_outcome(spec: JobSpec, code: str, message: str) -> JobOutcome:
        return JobOutcome(
            job_id=spec.job_id,
            ok=False,
            message=message,
            error=ErrorInfo(code=code, message=message),
        )

    def _kill(self, slot: _Slot) -> None:
        slot.process.kill()
        slot.process.join(timeout=5)
        self._replace(slot)

    def _replace(self, slot: _Slot) -> None:
        # The spec stays on the slot until _finish so the caller can report it.
        slot.conn.close()
        fresh = self._spawn()
        slot.process, slot.conn, slot.jobs_done, slot.oom = fresh.process, fresh.conn, 0, False
        slot.peak = fresh.peak
        slot.generation = self.generation

    def reconfigure(self, plugins: Sequence[str], workflows: Sequence[WorkflowSettings]) -> None:
        """New plugins or workflow chains (a reload): idle workers restart with them.

        Running jobs finish in the worker they started in; each worker is replaced
        the next time it is idle.
        """
        self.plugins = list(plugins)
        self.workflows = [w.model_dump() for w in workflows]
        self.generation += 1

    def _retire(self, slot: _Slot) -> None:
        with contextlib.suppress(OSError):
            slot.conn.send(None)
        slot.process.join(timeout=5)
        if slot.process.is_alive():
            slot.process.kill()
        self._replace(slot)

    def _finish(self, slot: _Slot) -> None:
        if slot.spec is not None:
            self._progress.pop(slot.spec.job_id, None)
        slot.spec = None
        slot.jobs_done += 1
        recycle = self.max_jobs_per_worker and slot.jobs_done >= self.max_jobs_per_worker
        # Recycle: a long-lived engine may leak memory; or the setup changed (reload).
        if recycle or slot.generation != self.generation:
            self._retire(slot)

    def kill_job(self, job_id: str) -> bool:
        """Stop the worker running ``job_id`` (cancel); its result is dropped."""
        for slot in self._slots:
            if slot.spec is not None and slot.spec.job_id == job_id:
                self._progress.pop(job_id, None)
                self._kill(slot)
                slot.spec = None
                return True
        return False

    def stop(self, drain: float) -> list[Result]:
        """Wait up to ``drain`` seconds for running jobs, then stop every worker.

        Returns the results that arrived; jobs still running are left to the journal.
        """
        results: list[Result] = []
        end = self._clock() + drain
        while any(slot.spec is not None for slot in self._slots):
            remaining = end - self._clock()
            if remaining <= 0:
                break
            results += self.poll(min(remaining, 0.5))
        for slot in self._slots:
            try:
                if slot.spec is None:
                    slot.conn.send(None)
            except OSError:
                pass
        for slot in self._slots:
            slot.process.join(timeout=2 if slot.spec is None else 0)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)
            slot.conn.close()
        self._slots = []
        return results
