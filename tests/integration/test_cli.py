"""The command line: config errors, exit codes and one-shot conversions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pikepdf

from tests.samples import pdf_bytes, png_bytes


def hotfolder(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotfolder", *args], capture_output=True, text=True, cwd=cwd
    )


#: Seven different kinds of mistake, spread so that schema errors and the checks that
#: need valid settings (workflow, profile, options, paths, unique names) share folders.
BAD = """
[daemon]
pol_interval = 3
workers = "many"
[http]
listn = "127.0.0.1:9"
[[folders]]
name = "a"
path = "a"
workflow = "pdf-optimise"
setle = 2
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
"IMAGE.QUALTY" = 80
[[folders]]
name = "c"
path = "d"
workflow = "image-convert"
"""


def test_check_config_prints_every_error_with_its_key_in_one_pass(tmp_path: Path) -> None:
    """Seven kinds of mistake come out of one run, each under its key, typos with a hint."""
    config = tmp_path / "bad.toml"
    config.write_text(BAD)
    result = hotfolder("check-config", "--config", str(config))
    assert result.returncode == 78
    lines = result.stderr.splitlines()
    assert "11 configuration error(s)" in lines[0]
    expected = {
        "daemon.pol_interval": "unknown key; did you mean poll_interval?",
        "daemon.workers": "valid integer",
        "http.listn": "unknown key; did you mean listen?",
        "folders[0](a).setle": "unknown key; did you mean settle?",
        "folders[0](a).workflow": "unknown workflow 'pdf-optimise'; did you mean pdf-optimize?",
        "folders[1](b).profile": "no profile 'fast'",
        "folders[1](b).output": "lies inside the input folder",
        "folders[2](c).settle": "greater than or equal to 0",
        "folders[2](c).options.IMAGE.QUALITY": "500 is invalid",
        "folders[2](c).options.IMAGE.QUALTY": "unknown option; did you mean IMAGE.QUALITY?",
        "folders[3](c).name": "'c' is used twice (also by folders[2](c))",
    }
    for key, words in expected.items():
        assert any(line.strip().startswith(f"{key}: ") and words in line for line in lines), key
    fixed = (
        BAD.replace("pol_interval", "poll_interval")
        .replace('workers = "many"', "workers = 1")
        .replace("listn", "listen")
        .replace("pdf-optimise", "pdf-optimize")
        .replace("setle", "settle")
        .replace('profile = "fast"', 'profile = "web"')
        .replace('output = "in/out"', 'output = "done"')
        .replace("settle = -1", "settle = 1")
        .replace("= 500", "= 50")
        .replace('"IMAGE.QUALTY" = 80', "")
        .replace('name = "c"\npath = "d"', 'name = "d"\npath = "d"')
    )
    config.write_text(fixed)
    result = hotfolder("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "4 folder(s)" in result.stdout


def test_a_folder_with_a_missing_key_still_lets_the_others_be_checked(tmp_path: Path) -> None:
    """An entry without its required keys is reported; its neighbours' keys keep their index."""
    config = tmp_path / "bad.toml"
    config.write_text(
        '[[folders]]\nname = "a"\npath = "a"\n'
        '[[folders]]\nname = "b"\npath = "b"\nworkflow = "pdf-optimize"\nprofile = "wbe"\n'
    )
    result = hotfolder("check-config", "--config", str(config))
    assert result.returncode == 78
    assert "folders[0](a).workflow: Field required" in result.stderr
    assert "folders[1](b).profile: workflow pdf-optimize has no profile 'wbe'" in result.stderr
    assert "did you mean web?" in result.stderr
    # hotfolder run reports the same problems, all of them, before it starts anything.
    run = hotfolder("run", "--config", str(config))
    assert run.returncode == 78
    assert run.stderr == result.stderr


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


def test_convert_with_a_bad_option_is_a_usage_error(tmp_path: Path) -> None:
    """Wrong arguments to convert exit 64 (usage), not 78: no config file is involved."""
    source = tmp_path / "in.png"
    source.write_bytes(png_bytes())
    out = tmp_path / "out"
    for args, words in [
        (["-w", "image-convert", "-o", "IMAGE.QUALITY=500"], "--option IMAGE.QUALITY: "),
        (["-w", "image-convert", "-o", "IMAGE.QUALTY=5"], "did you mean IMAGE.QUALITY?"),
        (["-w", "image-convert", "-o", "IMAGE.QUALITY"], "is not NAME=VALUE"),
        (["-w", "image-convert", "-p", "fastest"], "--profile: "),
        (["-w", "image-convrt"], "did you mean image-convert?"),
    ]:
        result = hotfolder("convert", *args, "-d", str(out), str(source))
        assert result.returncode == 64, (args, result.stderr)
        assert words in result.stderr, (args, result.stderr)
    missing = hotfolder("convert", "-w", "image-convert", "-d", str(out), str(tmp_path / "no.png"))
    assert missing.returncode == 64
    assert "does not exist" in missing.stderr
    assert not out.exists() or not any(out.iterdir())


def test_argparse_errors_exit_with_the_usage_code(tmp_path: Path) -> None:
    """A wrong command line exits 64 as README's table says (argparse's own default is 2)."""
    for args in (
        ["convert"],
        ["frobnicate"],
        ["status", "--limit", "many"],
        ["check-config", "--no-such-flag"],
        [],
    ):
        result = hotfolder(*args, cwd=tmp_path)
        assert result.returncode == 64, (args, result.stderr)
        assert "usage: hotfolder" in result.stderr
    assert hotfolder("--help").returncode == 0
    assert hotfolder("--version").returncode == 0
