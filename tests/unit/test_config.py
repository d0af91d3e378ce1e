"""Configuration: TOML + environment, clear errors naming the key, path checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotfolder.config import load_settings
from hotfolder.errors import ConfigError, StartupError
from hotfolder.paths import check_paths, prepare_paths

GOOD = """
[daemon]
state_dir = "state"
workers = 2
[[folders]]
name = "invoices"
path = "hf/invoices"
workflow = "pdf-optimize"
settle = 1.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hotfolder.toml"
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir("/")
    settings = load_settings(write(tmp_path, GOOD))
    folder = settings.folders[0]
    assert settings.daemon.state_dir == tmp_path / "state"
    assert folder.input_dir == tmp_path / "hf/invoices/in"
    assert folder.archive_dir == tmp_path / "hf/invoices/archive"
    assert folder.settle == 1.5


def test_environment_overrides_one_nested_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOTFOLDER_DAEMON__WORKERS", "5")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.daemon.workers == 5
    assert settings.daemon.state_dir == tmp_path / "state"


def test_config_file_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOTFOLDER_CONFIG", str(write(tmp_path, GOOD)))
    assert load_settings(None).folders[0].name == "invoices"


def test_every_error_names_its_key(tmp_path: Path) -> None:
    text = GOOD.replace("workers = 2", "workers = 0\nworkerz = 1").replace(
        "settle = 1.5", 'settle = "soon"\ncolour = "red"'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    keys = {key for key, _ in info.value.problems}
    assert keys == {
        "daemon.workers",
        "daemon.workerz",
        "folders[0](invoices).settle",
        "folders[0](invoices).colour",
    }


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[daemon\n"))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_duplicate_folder_names_are_rejected(tmp_path: Path) -> None:
    text = GOOD + GOOD.split("[daemon]")[1].split("[[folders]]")[1].join(["[[folders]]", ""])
    with pytest.raises(ConfigError, match="used twice"):
        load_settings(write(tmp_path, text))


def test_output_inside_input_is_rejected(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD + 'output = "in/done"\n'))
    problems = check_paths(settings)
    assert problems and problems[0][0] == "folders[0](invoices).output"


def test_prepare_creates_folders(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    prepare_paths(settings)
    root = tmp_path / "hf/invoices"
    for sub in ("in", "out", "error", "archive", ".hotfolder"):
        assert (root / sub).is_dir()


def test_unwritable_state_dir_is_a_startup_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o500)
    settings = load_settings(write(tmp_path, GOOD))
    try:
        import os

        if os.geteuid() == 0:
            # root ignores permission bits; a file where the dir should be fails for anyone.
            state.chmod(0o700)
            state.rmdir()
            state.write_text("not a dir")
        with pytest.raises(StartupError):
            prepare_paths(settings)
    finally:
        if state.is_dir():
            state.chmod(0o700)


def test_one_pass_checks_what_validated_and_keys_entries_as_in_the_file(tmp_path: Path) -> None:
    """Schema errors do not hide the registry and path checks; left-out entries keep keys."""
    from hotfolder.loader import load_checked

    text = (
        '[daemon]\nworkers = "two"\n'
        '[[workflows]]\nname = "broken"\n'  # no steps: left out of the later checks
        '[[workflows]]\nname = "mine"\nsteps = ["pdf-optimize", "no-such-step"]\n'
        '[[folders]]\nname = "first"\npath = "f"\n'  # no workflow: left out
        '[[folders]]\nname = "second"\npath = "s"\nworkflow = "pdf-optimze"\nsettle = "x"\n'
        '[[folders]]\nname = "third"\npath = "t"\nworkflow = "pdf-optimize"\noutput = "in/x"\n'
        '[folders.options]\n"PDF.LINEARISE" = true\n'
    )
    with pytest.raises(ConfigError) as info:
        load_checked(write(tmp_path, text))
    problems = dict(info.value.problems)
    assert set(problems) == {
        "daemon.workers",
        "workflows[0](broken).steps",
        "workflows[1](mine)",
        "folders[0](first).workflow",
        "folders[1](second).settle",
        "folders[1](second).workflow",
        "folders[2](third).output",
        "folders[2](third).options.PDF.LINEARISE",
    }
    assert "did you mean pdf-optimize?" in problems["folders[1](second).workflow"]
    assert "did you mean PDF.LINEARIZE?" in problems["folders[2](third).options.PDF.LINEARISE"]
    assert [key.split(".")[0] for key, _ in info.value.problems][:1] == ["daemon"]


def test_a_bad_environment_value_is_reported_under_its_key(tmp_path: Path, monkeypatch) -> None:
    """HOTFOLDER_DAEMON__WORKERS=abc names daemon.workers, like the same mistake in the file."""
    monkeypatch.setenv("HOTFOLDER_DAEMON__WORKERS", "abc")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, GOOD))
    assert [key for key, _ in info.value.problems] == ["daemon.workers"]
