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
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hotfolder import __version__, journal_commands
from hotfolder.errors import ConfigError, ExitCode, HotfolderError, ToolMissing, UsageError
from hotfolder.logs import configure as configure_logging
from hotfolder.models import JobState

log = logging.getLogger("hotfolder")


class _Parser(argparse.ArgumentParser):
    """argparse, but a wrong command line exits 64 (EX_USAGE) like every usage error."""

    def error(self, message: str) -> typing.NoReturn:
        """Print the usage and the problem, then exit with ExitCode.USAGE."""
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        "status": journal_commands.status,
        "cleanup": journal_commands.cleanup,
        "cancel": journal_commands.request,
        "retry": journal_commands.request,
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


def _early_logging(args: argparse.Namespace) -> None:
    """Log in the configured format from the first line on (engines log at import).

    A config with problems is left to ``_load``, which reports all of them at once.
    """
    from hotfolder.config import read_settings

    settings = read_settings(args.config).settings
    if settings is not None:
        configure_logging(settings.daemon.log_level, settings.daemon.log_format)


def _run(args: argparse.Namespace) -> int:
    _early_logging(args)
    from hotfolder.daemon import Daemon

    Daemon(_load(args)).run()
    return int(ExitCode.OK)


def _worker(args: argparse.Namespace) -> int:
    _early_logging(args)
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
    daemon = settings.daemon
    if daemon.executor == "pool":
        from hotfolder.memory import memory_limit

        limit = memory_limit(daemon.worker_memory_limit, daemon.workers)
        print(f"  worker memory limit: {limit.describe()}")
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
            raise UsageError(f"--option {pair!r} is not NAME=VALUE")
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
        # The command line, not a config file, is wrong: a usage error (64), not 78.
        flags = {"workflow": "--workflow", "profile": "--profile", "options": "--option"}
        lines = []
        for key, message in problems:
            head, _, rest = key.partition(".")
            lines.append(f"{flags.get(head, head)} {rest}: {message}".replace(" :", ":"))
        raise UsageError("\n  ".join(["convert: wrong arguments:", *lines]))
    output = Path(args.output).absolute()
    output.mkdir(parents=True, exist_ok=True)
    inputs = [Path(p).absolute() for p in args.inputs]
    for path in inputs:
        if not os.path.lexists(path):
            raise UsageError(f"INPUT {path} does not exist")
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
