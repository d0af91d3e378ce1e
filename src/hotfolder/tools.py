"""The one wrapper every external program (Ghostscript, LibreOffice …) runs through.

It finds the program (``tool_missing`` when it is not installed), runs it in its
own process group with a scrubbed environment and a timeout that kills the whole
group (LibreOffice forks helpers that would otherwise outlive it), captures
stderr into the job's error message, and logs the command line. The program
inherits the worker's memory limit (``RLIMIT_AS``); when it runs out of memory
the job fails ``too_large``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from hotfolder.errors import JobTimeout, TooLarge, ToolFailed, ToolMissing
from hotfolder.memory import current_limit_mb, mentions_out_of_memory, needed_more_message

log = logging.getLogger("hotfolder.tools")

#: Variables an engine may inherit; everything else (credentials, proxies, the
#: daemon's NOTIFY_SOCKET) stays behind.
_KEPT_ENV = ("PATH", "TMPDIR", "TZ", "SOURCE_DATE_EPOCH")

#: How much of stderr goes into a job's message.
_STDERR_TAIL = 1500


def find(program: str, *, package: str) -> str:
    """Return the absolute path of ``program`` or raise ToolMissing naming ``package``."""
    found = shutil.which(program)
    if found is None:
        raise ToolMissing(
            f"{program} is not installed, so this workflow cannot run. Install the "
            f"Debian package {package!r} (apt-get install {package}) and restart hotfolder."
        )
    return found


def scrubbed_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for an engine: PATH, a UTF-8 C locale, and ``extra``."""
    env = {name: os.environ[name] for name in _KEPT_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["LANG"] = env["LC_ALL"] = "C.UTF-8"
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str | Path],
    *,
    timeout: float,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` and return it completed with exit status 0.

    ``what`` names the work for messages ("Ghostscript PDF/A conversion").
    Raises ToolMissing, JobTimeout (the process group is killed) or ToolFailed
    with the tail of stderr.
    """
    args = [str(a) for a in argv]
    log.debug("running %s", " ".join(args))
    try:
        process = subprocess.Popen(
            args,
            cwd=cwd,
            env=scrubbed_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ToolMissing(f"{args[0]} is not installed; {what} cannot run.") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise JobTimeout(
            f"{what} did not finish within {timeout:.0f} s and was stopped. "
            "Raise the folder's timeout if the file is simply large."
        ) from None
    finally:
        # Helpers the engine forked into its session must not outlive it.
        _kill_group(process)
    if process.returncode != 0:
        detail = _tail(stderr) or _tail(stdout) or "no error output"
        # The engine inherits the worker's address-space limit (or the service's
        # MemoryMax killed it): a failed allocation is the file's size, not a bug.
        if process.returncode == -signal.SIGKILL or mentions_out_of_memory(detail):
            raise TooLarge(f"{what}: {needed_more_message(current_limit_mb())}")
        raise ToolFailed(f"{what} failed (exit status {process.returncode}): {detail}")
    return subprocess.CompletedProcess(args, 0, stdout, stderr)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None:
        process.communicate()


def _tail(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text if len(text) <= _STDERR_TAIL else "…" + text[-_STDERR_TAIL:]


@functools.cache
def version(program: str, *args: str) -> str:
    """The first line ``program args`` prints (``gs --version``), or ``missing``."""
    path = shutil.which(program)
    if path is None:
        return "missing"
    try:
        done = subprocess.run(
            [path, *args], capture_output=True, timeout=60, env=scrubbed_env(), check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout or done.stderr).decode("utf-8", "replace").strip().splitlines()
    return lines[0].strip() if lines else "unknown"
