"""The set-up scripts: each command in README sets up what it needs from a fresh clone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _recorder(path: Path, name: str, log: Path) -> None:
    """A stand-in program that appends its name, HOTFOLDER_EXTRAS and arguments to ``log``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{name} extras=${{HOTFOLDER_EXTRAS:-}} $*" >> "{log}"\n')
    path.chmod(0o755)


def test_bench_run_installs_the_bench_extra_before_running(tmp_path: Path) -> None:
    """bench/run.sh sets up the bench extra (matplotlib) and inotify-tools, then runs."""
    log = tmp_path / "calls.log"
    (tmp_path / "bench").mkdir()
    shutil.copy(ROOT / "bench" / "run.sh", tmp_path / "bench" / "run.sh")
    _recorder(tmp_path / "scripts" / "setup.sh", "setup", log)
    _recorder(tmp_path / ".venv" / "bin" / "python", "python", log)
    env = {k: v for k, v in os.environ.items() if k != "HOTFOLDER_EXTRAS"}
    result = subprocess.run(
        ["bash", str(tmp_path / "bench" / "run.sh"), "--only", "latency"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "setup extras=dev,bench inotify-tools",
        "python extras= -m bench --only latency",
    ]


def test_setup_installs_the_extras_it_is_asked_for(tmp_path: Path) -> None:
    """scripts/setup.sh installs hotfolder with HOTFOLDER_EXTRAS, else with dev only."""
    log = tmp_path / "calls.log"
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    # No Debian packages to check, and a virtualenv that only records what it is told.
    (tmp_path / "scripts" / "debian-packages.txt").write_text("# none\n")
    _recorder(tmp_path / ".venv" / "bin" / "python", "python", log)
    for extras in ("dev,bench", None):
        env = {k: v for k, v in os.environ.items() if k != "HOTFOLDER_EXTRAS"}
        if extras:
            env["HOTFOLDER_EXTRAS"] = extras
        result = subprocess.run(
            ["bash", str(tmp_path / "scripts" / "setup.sh")],
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    installs = [line for line in log.read_text().splitlines() if " install -q -e " in line]
    assert [line.rsplit(" ", 1)[1] for line in installs] == [".[dev,bench]", ".[dev]"]


def test_the_bench_extra_has_what_the_plot_imports() -> None:
    """matplotlib, the plot's one dependency outside hotfolder's own, is in the bench extra."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(spec.startswith("matplotlib") for spec in extras["bench"])
    assert "import matplotlib" in (ROOT / "bench" / "plot.py").read_text()
