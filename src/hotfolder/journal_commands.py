"""The commands that work on the journal: ``status``, ``cancel``, ``retry``, ``cleanup``.

They read (or leave requests in) the journal, whether or not a daemon runs, and
import no engine: they must answer fast and on machines without the engines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hotfolder import running
from hotfolder.config import Settings, load_settings
from hotfolder.control import Answer
from hotfolder.errors import ExitCode
from hotfolder.journal import Journal, journal_path
from hotfolder.models import JobState


def _journal_path(args: argparse.Namespace) -> tuple[Settings, Path]:
    """The settings of ``--config`` and where their journal lives."""
    settings = load_settings(args.config)
    return settings, journal_path(settings.daemon.state_dir)


def request(args: argparse.Namespace) -> int:
    """Leave a cancel/retry request in the journal and wait for the daemon's answer."""
    _, path = _journal_path(args)
    if not path.exists():
        print(f"hotfolder: no journal at {path}: the daemon has never run", file=sys.stderr)
        return int(ExitCode.FAILURE)
    journal = Journal(path)
    try:
        if journal.get(args.job_id) is None:
            print(f"hotfolder: no job {args.job_id}", file=sys.stderr)
            return int(ExitCode.FAILURE)
        request_id = journal.add_request(args.job_id, args.command)
        deadline = time.monotonic() + args.wait
        while (text := journal.request_answer(request_id)) is None:
            if time.monotonic() >= deadline:
                print(
                    f"hotfolder: the daemon did not answer within {args.wait:.0f} s; the "
                    "request stays queued and is carried out when it runs",
                    file=sys.stderr,
                )
                return int(ExitCode.UNAVAILABLE)
            time.sleep(0.1)
    finally:
        journal.close()
    answer = Answer.from_text(text)
    if not answer.ok:
        print(f"hotfolder: {args.command} {args.job_id}: {answer.message}", file=sys.stderr)
        return int(ExitCode.FAILURE)
    print(f"{args.job_id}: {answer.message} ({answer.state})")
    return int(ExitCode.OK)


def cleanup(args: argparse.Namespace) -> int:
    """Run the cleanup once, as the daemon's schedule would (stuck jobs need the daemon)."""
    from hotfolder.cleanup import Cleanup

    settings, path = _journal_path(args)
    if not path.exists():
        print(f"no journal yet at {path}: nothing to clean", file=sys.stderr)
        return int(ExitCode.OK)
    journal = Journal(path)
    try:
        folders = {folder.name: folder for folder in settings.folders}
        report = Cleanup(settings.cleanup, folders, journal).run(dry_run=args.dry_run)
    finally:
        journal.close()
    verb = "would remove" if args.dry_run else "removed"
    for line in report.lines():
        print(line)
    total = sum(report.counts().values())
    print(f"{verb} {total} item(s)" + (" (dry run: nothing changed)" if args.dry_run else ""))
    return int(ExitCode.OK)


def _pages(progress: tuple[int, int] | None) -> dict[str, int]:
    return {} if progress is None else {"pagesDone": progress[0], "pages": progress[1]}


def status(args: argparse.Namespace) -> int:
    """List jobs, or show one, from the journal (the daemon may or may not run)."""
    settings, path = _journal_path(args)
    state_dir = settings.daemon.state_dir
    up = running.daemon_running(state_dir)
    if not path.exists():
        print(f"no journal yet at {path}: the daemon has not run", file=sys.stderr)
        return int(ExitCode.OK if not args.job_id else ExitCode.FAILURE)
    journal = Journal(path, readonly=True)
    try:
        if args.job_id:
            record = journal.get(args.job_id)
            if record is None:
                print(f"hotfolder: no job {args.job_id}", file=sys.stderr)
                return int(ExitCode.FAILURE)
            document = _note_interrupted(record.document(), record, up)
            print(json.dumps(document, indent=2, ensure_ascii=False))
            return int(ExitCode.OK)
        records = journal.recent(folder=args.folder, state=args.state, limit=args.limit)
        if args.json:
            rows = [
                _note_interrupted(
                    {
                        "jobId": r.job_id,
                        "status": r.state,
                        "folder": r.folder,
                        "name": r.name,
                        "input": r.input_name,
                        "attempts": r.attempts,
                        "errorCode": r.error_code,
                        "message": r.message,
                        **_pages(r.pages_progress()),
                    },
                    r,
                    up,
                )
                for r in records
            ]
            print(json.dumps(rows, indent=2, ensure_ascii=False))
            return int(ExitCode.OK)
        counts = journal.counts()
        print("jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
        if not up:
            print("the daemon is not running: unfinished jobs run when it starts")
        for r in records:
            code = f" [{r.error_code}]" if r.error_code and r.state != "success" else ""
            state = "interrupted" if _interrupted(r, up) else r.state
            progress = r.pages_progress()
            pages = f" (page {progress[0]}/{progress[1]})" if progress else ""
            print(f"{r.job_id}  {state:<11} {r.folder:<12} {r.input_name}{code}{pages}")
            if r.state == JobState.PENDING.value and r.message:
                print(f"    {r.message}")  # what a waiting job waits for
        if up:
            _print_ignored(running.read_report(state_dir), args.folder)
            _print_workers(running.read_report(state_dir, running.STATUS_NAME))
    finally:
        journal.close()
    return int(ExitCode.OK)


def _print_workers(status: dict[str, Any]) -> None:
    """The workers the running daemon sees (its status report, refreshed every second)."""
    workers = status.get("workers") or []
    if not workers:
        return
    print(f"workers: {len(workers)} (lost since start: {status.get('workersLost', 0)})")
    now = time.time()
    for worker in workers:
        beat = worker.get("lastHeartbeat")
        heard = f"last heartbeat {now - beat:.0f} s ago" if beat else "no heartbeat yet"
        print(
            f"  {worker['name']}  {worker['state']:<5} host {worker['host']}, "
            f"{worker['processes']} process(es), {worker['jobs']} job(s), {heard}"
        )


_INTERRUPTED = (
    "Interrupted: the daemon stopped while this job was running. It runs again when "
    "hotfolder starts."
)


def _interrupted(record: Any, up: bool) -> bool:
    # "processing" in the journal of a daemon that is not running: it was stopped
    # (kill -9, or drain_timeout passed) and recovery runs it at the next start.
    return not up and bool(record.state == JobState.PROCESSING.value)


def _note_interrupted(document: dict[str, Any], record: Any, up: bool) -> dict[str, Any]:
    """Mark an interrupted job's document as such, with the message that explains it."""
    if _interrupted(record, up):
        document["interrupted"] = True
        document["message"] = _INTERRUPTED
    return document


def _print_ignored(report: dict[str, Any], only: str | None) -> None:
    for name, figures in sorted(report.get("folders", {}).items()):
        ignored = figures.get("ignored", [])
        if (only and name != only) or not ignored:
            continue
        print(f"folder {name}: {len(ignored)} file(s) left in the input by the folder's rules:")
        for item in ignored:
            print(f"  {item['name']}  ({item['rule']})")
