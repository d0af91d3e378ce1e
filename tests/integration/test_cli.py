"""The command line: config errors, exit codes and one-shot conversions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pikepdf

from tests.samples import pdf_bytes


def hotfolder(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotfolder", *args], capture_output=True, text=True, cwd=cwd
    )


BAD = """
[daemon]
workers = "many"
[[folders]]
name = "a"
path = "a"
workflow = "pdf-optimise"
[[folders]]
name = "b"
path = "b"
workflow = "pdf-optimize"
profile = "fast"
output = "in/out"
[[folders]]
name = "c"
path = "c"
workflow = "image-convert"
settle = -1
[folders.options]
"IMAGE.QUALITY" = 500
"IMAGE.COLOUR" = "red"
"""


def test_check_config_prints_every_error_with_its_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(BAD)
    result = hotfolder("check-config", "--config", str(config))
    assert result.returncode == 78
    assert "daemon.workers" in result.stderr
    assert "folders[2](c).settle" in result.stderr
    config.write_text(BAD.replace('workers = "many"', "workers = 1").replace("settle = -1", ""))
    result = hotfolder("check-config", "--config", str(config))
    assert result.returncode == 78
    for key in [
        "folders[0](a).workflow",
        "folders[1](b).profile",
        "folders[1](b).output",
        "folders[2](c).options.IMAGE.QUALITY",
        "folders[2](c).options.IMAGE.COLOUR",
    ]:
        assert key in result.stderr, key
    assert "pdf-optimize" in result.stderr  # the known workflows are named


def test_check_config_accepts_the_bundled_example() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "hotfolder.toml"
    result = hotfolder("check-config", "--config", str(example))
    assert result.returncode == 0, result.stderr
    assert "9 folder(s)" in result.stdout


def test_unwritable_state_dir_stops_the_daemon_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a folder")
    config = tmp_path / "hf.toml"
    config.write_text(
        '[daemon]\nstate_dir = "state"\n[http]\nlisten = ""\n'
        '[[folders]]\nname = "a"\npath = "a"\nworkflow = "pdf-optimize"\n'
    )
    result = hotfolder("run", "--config", str(config))
    assert result.returncode == 73
    assert "state" in result.stderr


def test_workflows_lists_options_profiles_and_tools() -> None:
    result = hotfolder("workflows", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert {"pdf-optimize", "image-convert"} <= set(data["workflows"])
    assert "web" in data["workflows"]["pdf-optimize"]["profiles"]
    assert "DOC.PASSWORD" in data["workflows"]["pdf-optimize"]["options"]
    assert "pikepdf" in data["tools"]


def test_convert_writes_outputs_and_status_and_keeps_the_input(tmp_path: Path) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(pdf_bytes(pages=2))
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 nothing else")
    out = tmp_path / "out"
    result = hotfolder(
        "convert", "-w", "pdf-optimize", "-p", "web", "-d", str(out), str(source), str(broken)
    )
    assert result.returncode == 1, result.stderr
    assert source.exists() and broken.exists()
    status = json.loads((out / "in.status.json").read_text())
    assert status["status"] == "success" and status["profile"] == "web"
    with pikepdf.open(out / "in.pdf") as pdf:
        assert pdf.is_linearized and len(pdf.pages) == 2
    failed = json.loads((out / "broken.status.json").read_text())
    assert failed["error"]["code"] == "corrupt_input"
    assert sorted(p.name for p in out.iterdir()) == [
        "broken.status.json",
        "in.pdf",
        "in.status.json",
    ]
