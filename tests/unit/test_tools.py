"""The one subprocess wrapper: missing tools, failures, timeouts, scrubbed environment."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from hotfolder import tools
from hotfolder.errors import JobTimeout, TooLarge, ToolFailed, ToolMissing
from tests.helpers import wait_for


def test_output_and_scrubbed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine sees PATH and a UTF-8 locale, not the daemon's secrets."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    done = tools.run(
        [sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
        timeout=30,
        what="env dump",
        env={"HOME": "/nonexistent-home"},
    )
    seen = json.loads(done.stdout)
    assert "AWS_SECRET_ACCESS_KEY" not in seen and "NOTIFY_SOCKET" not in seen
    assert seen["LANG"] == "C.UTF-8" and seen["HOME"] == "/nonexistent-home"
    assert "PATH" in seen


def test_failure_carries_stderr() -> None:
    """A non-zero exit is ToolFailed with what the program said."""
    with pytest.raises(ToolFailed) as caught:
        tools.run(
            [sys.executable, "-c", "import sys; sys.stderr.write('bad font'); sys.exit(3)"],
            timeout=30,
            what="Test conversion",
        )
    assert "Test conversion failed (exit status 3): bad font" in caught.value.message


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A hung engine and the helper it forked are both gone after the timeout."""
    pid_file = tmp_path / "child.pid"
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    with pytest.raises(JobTimeout) as caught:
        tools.run([sys.executable, "-c", script], timeout=1.5, what="Hanging engine")
    assert time.monotonic() - started < 30
    assert "did not finish within 2 s" in caught.value.message
    child = int(pid_file.read_text())

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        # A zombie waiting for its (killed) parent's reaper counts as gone.
        return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"

    wait_for(gone, timeout=10, what="the forked helper to die")


def test_missing_program() -> None:
    """An absent program is ToolMissing with the package to install."""
    with pytest.raises(ToolMissing) as caught:
        tools.find("hotfolder-no-such-engine", package="no-such-package")
    assert "apt-get install no-such-package" in caught.value.message
    with pytest.raises(ToolMissing):
        tools.run(["hotfolder-no-such-engine"], timeout=5, what="x")


def test_version_probe() -> None:
    """version() returns the first line of output, or 'missing'."""
    assert tools.version(sys.executable, "--version").startswith("Python 3.")
    assert tools.version("hotfolder-no-such-engine", "--version") == "missing"


def test_an_engine_out_of_memory_fails_too_large() -> None:
    """An engine inherits the worker's limit; when it runs out, the file is too large."""
    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (200 << 20, 200 << 20)); "
        "b = bytearray(400 << 20)"
    )
    # (This test process has no limit of its own, so the message names none.)
    with pytest.raises(TooLarge, match=r"Python: The conversion ran out of memory"):
        tools.run([sys.executable, "-c", script], timeout=30, what="Python")
    # Ghostscript's word for it, on stderr.
    vmerror = "echo 'Error: /VMerror in --showpage--' >&2; exit 1"
    with pytest.raises(TooLarge):
        tools.run(["sh", "-c", vmerror], timeout=30, what="Ghostscript")
    with pytest.raises(ToolFailed):
        tools.run(["sh", "-c", "echo 'Error: /undefined' >&2; exit 1"], timeout=30, what="gs")
