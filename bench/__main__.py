"""Run the benchmarks: ``.venv/bin/python -m bench`` from the repository root.

Every benchmark runs the real daemon (``hotfolder run``) as a subprocess on
folders in a scratch directory, measures one figure against a target, and
the results go to ``bench/results/results.json`` and ``results.png``.
``--only NAME`` runs some of them and updates only their entries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import backlog, idle, latency, memory, overhead, shell_recipe, throughput
from bench.context import Context
from bench.stats import Result

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("throughput", "overhead", "latency", "backlog", "idle", "memory")

#: Full size (the issue's figures) and a quick smoke-test size.
FULL = {
    "pdfs": 60,
    "photos": 200,
    "letters": 1000,
    "drops": 200,
    "backlog": 20000,
    "backlog_window": 60.0,
    "folders": 50,
    "idle_files": 10000,
    "idle_window": 60.0,
    "memory_jobs": 5000,
}
QUICK = {
    "pdfs": 6,
    "photos": 4,
    "letters": 100,
    "drops": 20,
    "backlog": 1000,
    "backlog_window": 5.0,
    "folders": 5,
    "idle_files": 500,
    "idle_window": 5.0,
    "memory_jobs": 700,
}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=NAMES, help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--settle", type=float, default=0.5, help="settle for job benchmarks")
    parser.add_argument("--backlog-settle", type=float, default=2.0, help="the default settle")
    parser.add_argument("--latency-settle", type=float, default=1.0)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    for key, value in FULL.items():
        flag = "--" + key.replace("_", "-")
        parser.add_argument(flag, type=type(value), default=None, help=f"default {value}")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--results", type=Path, default=RESULTS / "results.json", help="results file to update"
    )
    parser.add_argument("--no-shell", action="store_true", help="skip the shell recipe")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def environment(workdir: Path) -> dict[str, Any]:
    """Relative facts about the machine and software (never paths)."""
    import pikepdf
    import PIL
    import watchdog.version

    from hotfolder import __version__
    from hotfolder.watcher import filesystem_type

    commit = _version(["git", "rev-parse", "--short", "HEAD"])
    # Read-only: whether the measured code differs from that commit (the results
    # this run is writing do not count).
    changes = _version(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"]
    )
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hotfolder": __version__,
        "commit": commit,
        "uncommitted_changes": changes not in ("unknown", "missing"),
        "pikepdf": pikepdf.__version__,
        "qpdf": pikepdf.__libqpdf_version__,
        "pillow": PIL.__version__,
        "watchdog": watchdog.version.VERSION_STRING,
        "ghostscript": _version(["gs", "--version"]),
        "inotifywait": _version(["inotifywait", "--help"]),
        "scratch_filesystem": filesystem_type(workdir),
    }


def _runners(args: argparse.Namespace, ctx: Context) -> dict[str, Callable[[], list[Result]]]:
    shell = not args.no_shell and shell_recipe.available()
    return {
        "throughput": lambda: [throughput.run(ctx, args.pdfs, args.photos, args.settle)],
        "overhead": lambda: overhead.run(ctx, args.letters, args.settle, shell=shell),
        "latency": lambda: [latency.run(ctx, args.drops, args.latency_settle, args.poll_interval)],
        "backlog": lambda: [
            backlog.run(ctx, args.backlog, args.backlog_window, args.backlog_settle)
        ],
        "idle": lambda: [
            idle.run(ctx, args.folders, args.idle_files, args.idle_window, args.poll_interval)
        ],
        "memory": lambda: [memory.run(ctx, args.memory_jobs, args.settle)],
    }


def _report(result: Result) -> None:
    print(f"\n== {result.name}: {result.description} ({result.seconds:.0f} s)")
    for check in result.checks:
        mark = "PASS" if check.passed else "MISS"
        bound = "<=" if check.kind == "max" else ">="
        print(f"  {mark}  {check.name}: {check.value:.4g} {check.unit} ({bound} {check.limit:g})")


def main() -> int:
    """Run, print a summary, save results.json and the plot."""
    args = _arguments()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hotfolder-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(workdir, args.workers)
    saved: dict[str, Any] = {}
    if args.results.exists():
        saved = json.loads(args.results.read_text())
    saved.setdefault("benchmarks", {})
    selected = args.only or list(NAMES)
    if "overhead" in selected and not shell_recipe.available() and not args.no_shell:
        print("inotifywait is missing (Debian: inotify-tools): the shell recipe is skipped")
    runners = _runners(args, ctx)
    started = time.monotonic()
    produced: list[Result] = []
    try:
        for name in selected:
            began = time.monotonic()
            results = runners[name]()
            produced += results
            for result in results:
                result.seconds = time.monotonic() - began
                _report(result)
                entry = result.as_dict()
                entry["environment"] = environment(workdir)
                entry["quick"] = args.quick
                saved["benchmarks"][result.name] = entry
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(saved, indent=1) + "\n")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    from bench.plot import plot

    plot(saved, args.results.with_suffix(".png"))
    total = time.monotonic() - started
    print(f"\nall done in {total:.0f} s; results in {args.results.name} and its .png")
    missed = [result.name for result in produced if not result.as_dict()["passed"]]
    if missed:
        print("targets missed in: " + ", ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
