"""The ``hotfolder`` command line: parse, load config, run, map errors to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hotfolder import __version__, running
from hotfolder.errors import ConfigError, ExitCode, HotfolderError, ToolMissing
from hotfolder.logs import configure as configure_logging
from hotfolder.models import JobState

log = logging.getLogger("hotfolder")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotfolder", description="Folders that convert documents dropped into them."
    )
    parser.add_argument("--version", action="version", version=f"hotfolder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config", "-c", help="config file (default: $HOTFOLDER_CONFIG, else ./hotfolder.toml)"
        )
        return p

    with_config(sub.add_parser("run", help="run the daemon in the foreground"))
    worker = with_config(
        sub.add_parser("worker", help="run a Celery worker for daemons with executor = celery")
    )
    worker.add_argument(
        "--concurrency", "-n", type=int, default=0, help="worker processes (default: CPUs)"
    )
    with_config(sub.add_parser("check-config", help="validate the config and print every error"))
    own_workflows = "also load plugins and [[workflows]] chains from this config file"
    wf = sub.add_parser("workflows", help="list workflows, profiles, options and tool versions")
    wf.add_argument("--json", action="store_true", help="machine-readable output")
    wf.add_argument("--config", "-c", help=own_workflows)
    conv = sub.add_parser("convert", help="convert files once, as the daemon would")
    conv.add_argument("--config", "-c", help=own_workflows)
    conv.add_argument("--workflow", "-w", required=True)
    conv.add_argument("--profile", "-p", default="default")
    conv.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="job option; repeat a name to give a list (e.g. several DOC.PASSWORD)",
    )
    conv.add_argument("--output", "-d", required=True, help="folder for outputs and status files")
    conv.add_argument("--timeout", type=float, default=600.0, help="seconds per job")
    conv.add_argument("--workers", type=int, default=0, help="worker processes (default: CPUs)")
    conv.add_argument("inputs", nargs="+", metavar="INPUT")
    for action, text in (
        ("cancel", "abort a pending or processing job; its inputs go to error/"),
        ("retry", "run a failed or aborted job again; its inputs come back from error/"),
    ):
        request = with_config(sub.add_parser(action, help=text))
        request.add_argument("job_id", metavar="JOBID")
        request.add_argument(
            "--wait", type=float, default=15.0, help="seconds to wait for the daemon's answer"
        )
    clean = with_config(
        sub.add_parser("cleanup", help="remove what the [cleanup] retentions expire")
    )
    clean.add_argument("--dry-run", action="store_true", help="only list what would go")
    status = with_config(sub.add_parser("status", help="show jobs from the journal"))
    status.add_argument("job_id", nargs="?", help="one job's status JSON")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--folder", help="only jobs of this folder")
    status.add_argument("--state", choices=[s.value for s in JobState], help="only jobs in state")
    status.add_argument("--limit", type=int, default=20)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hotfolder`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    level = os.environ.get("HOTFOLDER_LOG_LEVEL", "INFO").upper()
    json_logs = os.environ.get("HOTFOLDER_LOG_FORMAT", "").lower() == "json"
    configure_logging(level, "json" if json_logs else "text")
    handlers = {
        "run": _run,
        "worker": _worker,
        "check-config": _check_config,
        "workflows": _workflows,
        "convert": _convert,
        "status": _status,
        "cleanup": _cleanup,
        "cancel": _request,
        "retry": _request,
    }
    try:
        return handlers[args.command](args)
    except HotfolderError as exc:
        print(f"hotfolder: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.FAILURE)


def _load(args: argparse.Namespace) -> Any:
    from hotfolder.loader import load_checked

    return load_checked(args.config)


def _run(args: argparse.Namespace) -> int:
    from hotfolder.config import load_settings

    # Log in the configured format from the first line on (engines log at import).
    early = load_settings(args.config).daemon
    configure_logging(early.log_level, early.log_format)
    from hotfolder.daemon import Daemon

    Daemon(_load(args)).run()
    return int(ExitCode.OK)


def _worker(args: argparse.Namespace) -> int:
    from hotfolder.config import load_settings

    early = load_settings(args.config).daemon
    configure_logging(early.log_level, early.log_format)
    try:
        from hotfolder.worker import run_worker
    except ImportError as exc:
        raise ToolMissing(
            f"hotfolder worker needs Celery ({exc}); install hotfolder[celery]"
        ) from None
    settings = _load(args)
    return run_worker(settings, settings.celery, args.concurrency or None)


def _check_config(args: argparse.Namespace) -> int:
    settings = _load(args)
    print(f"{settings.config_file}: OK, {len(settings.folders)} folder(s)")
    for folder in settings.folders:
        print(f"  {folder.name}: {folder.input_dir} -> {folder.workflow}/{folder.profile}")
    return int(ExitCode.OK)


def _own_workflows(args: argparse.Namespace) -> tuple[list[str], list[Any]]:
    """Load the plugins and workflow chains of ``--config``, when one is given."""
    from hotfolder.config import load_settings
    from hotfolder.workflows.registry import configure

    if not args.config:
        return [], []
    settings = load_settings(args.config)
    problems = configure(settings.daemon.plugins, settings.workflows)
    if problems:
        raise ConfigError(problems, str(settings.config_file))
    return settings.daemon.plugins, settings.workflows


def _workflows(args: argparse.Namespace) -> int:
    from hotfolder.workflows.registry import tool_versions, workflows

    _own_workflows(args)

    data: dict[str, dict[str, Any]] = {
        name: {
            "description": wf.description,
            "steps": [step.name for step in wf.steps],
            "profiles": {
                p: {k: ("(hidden)" if wf.options[k].secret else v) for k, v in values.items()}
                for p, values in wf.profiles.items()
            },
            "options": {
                spec.name: {"default": spec.default, "help": spec.help}
                for spec in wf.options.values()
            },
        }
        for name, wf in sorted(workflows().items())
    }
    tools = tool_versions()
    if args.json:
        print(json.dumps({"workflows": data, "tools": tools}, indent=2, default=str))
        return int(ExitCode.OK)
    for name, info in data.items():
        print(f"{name}: {info['description']}")
        print(f"  steps:    {' -> '.join(info['steps'])}")
        for profile, values in info["profiles"].items():
            shown = ", ".join(f"{k}={v}" for k, v in values.items()) or "(defaults)"
            print(f"  profile {profile}: {shown}")
        for option, spec in info["options"].items():
            print(f"  option {option} (default {spec['default']!r}): {spec['help']}")
        print()
    print("tools: " + ", ".join(f"{k} {v}" for k, v in tools.items()))
    return int(ExitCode.OK)


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ConfigError([("--option", f"{pair!r} is not NAME=VALUE")])
        value: Any = raw
        with contextlib.suppress(ValueError):
            value = json.loads(raw)
        if name in options:
            previous = options[name]
            options[name] = [*previous, raw] if isinstance(previous, list) else [previous, raw]
        else:
            options[name] = value if not isinstance(value, dict) else raw
    return options


def _convert(args: argparse.Namespace) -> int:
    from hotfolder.claim import claim_copy
    from hotfolder.config import DaemonSettings, FolderSettings
    from hotfolder.dispatch import Dispatcher
    from hotfolder.executor import WorkerPool
    from hotfolder.journal import Journal
    from hotfolder.publish import Publisher
    from hotfolder.workflows.registry import check_folder, get_workflow

    plugins, definitions = _own_workflows(args)
    options = _parse_options(args.option)
    problems = check_folder(args.workflow, args.profile, options)
    if problems:
        raise ConfigError(problems)
    output = Path(args.output).absolute()
    output.mkdir(parents=True, exist_ok=True)
    inputs = [Path(p).absolute() for p in args.inputs]
    for path in inputs:
        if not os.path.lexists(path):
            raise ConfigError([("INPUT", f"{path} does not exist")])
    with tempfile.TemporaryDirectory(prefix="hotfolder-convert-") as temp:
        folder = FolderSettings(
            name="convert",
            path=Path(temp),
            output=output,
            error=output,
            archive=None,
            workflow=args.workflow,
            profile=args.profile,
            timeout=args.timeout,
            options=options,
        )
        # A merge takes every input into one job; other workflows make a job per input.
        batches = [inputs] if get_workflow(args.workflow).multi_input else [[p] for p in inputs]
        workers = args.workers or min(len(batches), os.cpu_count() or 1)
        daemon = DaemonSettings(workers=workers, retries=0)
        journal = Journal(Path(temp) / "journal.sqlite3")
        pool = WorkerPool(workers, plugins=plugins, workflows=definitions)
        pool.start()
        publisher = Publisher(journal, {"convert": folder}, keep_originals=True)
        dispatcher = Dispatcher(daemon, {"convert": folder}, journal, publisher, pool)
        records = [claim_copy(folder, batch, journal) for batch in batches]
        for record in records:
            dispatcher.enqueue(record)
        thread = threading.Thread(target=dispatcher.run, name="hotfolder-dispatch", daemon=True)
        thread.start()
        dispatcher.wait_finished(len(records), timeout=args.timeout * len(records) + 60)
        dispatcher.stop()
        thread.join()
        publisher.close()
        failed = 0
        for record in records:
            final = journal.get(record.job_id)
            status = final.status() if final else None
            if status is None:
                failed += 1
                print(f"{', '.join(record.input_names)}: not finished", file=sys.stderr)
                continue
            state = status["status"]
            failed += state != JobState.SUCCESS.value
            outputs = ", ".join(o["name"] for o in status["outputs"])
            where = f" -> {outputs}" if outputs else ""
            print(f"{', '.join(record.input_names)}: {state}{where}: {status['message']}")
        journal.close()
    return int(ExitCode.FAILURE if failed else ExitCode.OK)


def _journal_path(args: argparse.Namespace) -> tuple[Any, Path]:
    """The settings of ``--config`` and where their journal lives."""
    from hotfolder.config import load_settings
    from hotfolder.daemon import journal_path

    settings = load_settings(args.config)
    return settings, journal_path(settings)


def _request(args: argparse.Namespace) -> int:
    """Leave a cancel/retry request in the journal and wait for the daemon's answer."""
    from hotfolder.control import Answer
    from hotfolder.journal import Journal

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


def _cleanup(args: argparse.Namespace) -> int:
    """Run the cleanup once, as the daemon's schedule would (stuck jobs need the daemon)."""
    from hotfolder.cleanup import Cleanup
    from hotfolder.journal import Journal

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


def _status(args: argparse.Namespace) -> int:
    from hotfolder.journal import Journal

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
            document = record.document()
            if not up and _interrupted(record):
                document["interrupted"] = True
                document["message"] = _INTERRUPTED
            print(json.dumps(document, indent=2, ensure_ascii=False))
            return int(ExitCode.OK)
        records = journal.recent(folder=args.folder, state=args.state, limit=args.limit)
        if args.json:
            rows = [
                {
                    "jobId": r.job_id,
                    "status": r.state,
                    "folder": r.folder,
                    "name": r.name,
                    "input": r.input_name,
                    "attempts": r.attempts,
                    "errorCode": r.error_code,
                    "message": _INTERRUPTED if not up and _interrupted(r) else r.message,
                    **({"interrupted": True} if not up and _interrupted(r) else {}),
                }
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
            state = "interrupted" if not up and _interrupted(r) else r.state
            print(f"{r.job_id}  {state:<11} {r.folder:<12} {r.input_name}{code}")
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


def _interrupted(record: Any) -> bool:
    # "processing" in the journal of a daemon that is not running: it was stopped
    # (kill -9, or drain_timeout passed) and recovery runs it at the next start.
    return bool(record.state == JobState.PROCESSING.value)


def _print_ignored(report: dict[str, Any], only: str | None) -> None:
    for name, figures in sorted(report.get("folders", {}).items()):
        ignored = figures.get("ignored", [])
        if (only and name != only) or not ignored:
            continue
        print(f"folder {name}: {len(ignored)} file(s) left in the input by the folder's rules:")
        for item in ignored:
            print(f"  {item['name']}  ({item['rule']})")
