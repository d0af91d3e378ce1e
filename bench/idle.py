"""Idle cost: CPU the daemon burns when there is nothing to convert.

CPU time (user + system, /proc/<pid>/stat) of the daemon's main process is
read at the start and the end of a ``window`` and divided by it: the share
of one core. The whole process tree (forkserver and idle workers too) is
reported beside it. Two set-ups:

* ``folders`` idle folders with the native observer (inotify): target < 1 %;
* one polled folder (``poll_interval`` 2 s) holding ``files`` waiting files,
  which the folder takes only through a manifest (``manifests = "required"``),
  so they stay and are looked at on every poll: target < 5 %.
"""

from __future__ import annotations

import time

from bench import procstat
from bench.context import Context
from bench.daemon import Daemon
from bench.stats import Check, Result


def _cpu_share(daemon: Daemon, window: float, warmup: float) -> tuple[float, float]:
    """(main process, whole tree) CPU over ``window`` as a share of one core."""
    daemon.start()
    try:
        # Start-up (engine version probes, the first scan) is not idle time.
        time.sleep(warmup)
        main_before = procstat.stat(daemon.pid)
        tree_before = procstat.tree_cpu_seconds(daemon.pid)
        started = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
        main_after = procstat.stat(daemon.pid)
        tree_after = procstat.tree_cpu_seconds(daemon.pid)
    finally:
        daemon.stop()
    assert main_before is not None and main_after is not None
    main = (main_after.cpu_seconds - main_before.cpu_seconds) / elapsed
    return main, (tree_after - tree_before) / elapsed


def run(
    ctx: Context, folders: int, files: int, window: float, poll_interval: float = 2.0
) -> Result:
    """Measure both set-ups."""
    root = ctx.fresh("idle-native")
    native = Daemon(
        root,
        [
            {"name": f"f{i:02d}", "path": f"f{i:02d}", "workflow": "pdf-optimize"}
            for i in range(folders)
        ],
        workers=ctx.workers,
        observer="native",
    )
    native_main, native_tree = _cpu_share(native, window, warmup=10)

    root = ctx.fresh("idle-polling")
    polled = Daemon(
        root,
        [
            {
                "name": "waiting",
                "path": "waiting",
                "workflow": "pdf-optimize",
                "manifests": "required",
            }
        ],
        workers=ctx.workers,
        observer="polling",
        poll_interval=poll_interval,
    )
    ctx.stage_letters(polled.folder("waiting"), files)
    polled_main, polled_tree = _cpu_share(polled, window, warmup=15)
    return Result(
        name="idle",
        description=f"{folders} idle folders (native) and one polled folder with "
        f"{files} waiting files: CPU per core over {window:g} s",
        parameters={
            "folders": folders,
            "files": files,
            "window": window,
            "poll_interval": poll_interval,
            "workers": ctx.workers,
        },
        figures={
            "native_main_percent": round(native_main * 100, 3),
            "native_tree_percent": round(native_tree * 100, 3),
            "polling_main_percent": round(polled_main * 100, 3),
            "polling_tree_percent": round(polled_tree * 100, 3),
        },
        checks=[
            Check(f"{folders} idle folders, native", native_main * 100, 1.0, unit="% of a core"),
            Check(f"polling {files} waiting files", polled_main * 100, 5.0, unit="% of a core"),
        ],
    )
