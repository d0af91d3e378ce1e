"""The worker memory limit's formula, and the early decoded-size check on real pikepdf."""

from __future__ import annotations

import io
import logging
import random
import resource
import subprocess
import sys
import zlib
from pathlib import Path

import pikepdf
import pytest

from hotfolder import memory
from hotfolder.config import DaemonSettings, load_settings
from hotfolder.errors import ConfigError, TooLarge
from hotfolder.memory import (
    MIN_AUTO_MB,
    cgroup_memory_max_mb,
    memory_limit,
    needed_more_message,
    oom_kills,
    out_of_memory,
    reached_limit,
)
from hotfolder.workflows.base import StepContext
from hotfolder.workflows.pdf import PDF_OPTIMIZE
from hotfolder.workflows.pdfbounds import (
    REMOVE_UNUSED_MAX_CONTENT_MB,
    check_decoded_sizes,
    image_pixels,
    inflated_size,
)
from tests import hostile


def test_the_default_is_auto_and_zero_still_turns_it_off() -> None:
    assert DaemonSettings().worker_memory_limit == "auto"
    assert DaemonSettings(worker_memory_limit=0).worker_memory_limit == 0
    assert memory_limit(0, 4).mb == 0
    assert memory_limit(2048, 4).mb == 2048


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("0", 0), ("1536", 1536)])
def test_the_setting_comes_from_toml_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: object
) -> None:
    config = tmp_path / "hotfolder.toml"
    config.write_text("[daemon]\nworker_memory_limit = 1024\n")
    assert load_settings(config).daemon.worker_memory_limit == 1024
    monkeypatch.setenv("HOTFOLDER_DAEMON__WORKER_MEMORY_LIMIT", value)
    assert load_settings(config).daemon.worker_memory_limit == expected


def test_a_wrong_setting_names_its_key(tmp_path: Path) -> None:
    config = tmp_path / "hotfolder.toml"
    config.write_text('[daemon]\nworker_memory_limit = "lots"\n')
    with pytest.raises(ConfigError, match=r"daemon\.worker_memory_limit"):
        load_settings(config)


def test_auto_is_half_the_memory_over_the_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "physical_memory_mb", lambda: 32768)
    monkeypatch.setattr(memory, "cgroup_memory_max_mb", lambda: None)
    assert memory_limit("auto", 4).mb == 4096
    assert "50% of 32768 MB / 4 process(es)" in memory_limit("auto", 4).describe()
    # Never below the floor, however many workers share a small machine.
    assert memory_limit("auto", 64).mb == MIN_AUTO_MB
    # A cgroup bound (systemd MemoryMax, a container) smaller than the machine wins.
    monkeypatch.setattr(memory, "cgroup_memory_max_mb", lambda: 8192)
    assert memory_limit("auto", 2).mb == 2048


def test_cgroup_files_are_read_from_this_process_s_cgroup(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("0::/system.slice/hotfolder.service\n")
    group = tmp_path / "sys/fs/cgroup/system.slice/hotfolder.service"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("max\n")
    (group / "memory.events").write_text("low 0\nhigh 3\nmax 2\noom 1\noom_kill 1\n")
    assert cgroup_memory_max_mb(tmp_path) is None
    assert oom_kills(tmp_path) == 1
    (group / "memory.max").write_text(f"{6 * 2**30}\n")
    assert cgroup_memory_max_mb(tmp_path) == 6144
    assert cgroup_memory_max_mb(tmp_path / "nowhere") is None


def test_engine_messages_about_memory_become_too_large() -> None:
    found = out_of_memory("in.pdf (offset 283): error decoding stream data: std::bad_alloc")
    assert isinstance(found, TooLarge)
    assert "(worker_memory_limit)" in found.message or "ran out of memory" in found.message
    assert out_of_memory("Unable to parse content stream: unexpected EOF") is None
    assert "needed more than 700 MB (worker_memory_limit)" in needed_more_message(700)


def test_a_worker_that_died_near_its_limit_reached_it() -> None:
    assert reached_limit(950 * 2**20, 1024)
    assert not reached_limit(300 * 2**20, 1024)
    assert not reached_limit(950 * 2**20, 0)  # no limit: nothing to reach


def test_the_limit_set_in_a_process_is_inherited_by_its_engines() -> None:
    """Ghostscript and LibreOffice run as children of the worker: they get its limit."""
    script = (
        "from hotfolder.memory import set_address_space_limit as s; s(900);"
        "import subprocess; subprocess.run(['sh', '-c', 'ulimit -v'], check=True)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == str(900 * 1024), done.stderr
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY


def _pdf(data: bytes) -> pikepdf.Pdf:
    return pikepdf.open(io.BytesIO(data))


def test_inflated_size_counts_only_up_to_the_cap() -> None:
    data = zlib.compress(b" " * (8 << 20))
    assert inflated_size(data, 64 << 20) == 8 << 20
    assert (1 << 20) < inflated_size(data, 1 << 20) < (6 << 20)
    assert inflated_size(b"not deflate", 1 << 20) == 0


def test_a_content_bomb_fails_naming_the_option() -> None:
    pdf = _pdf(hostile.spaces_pdf(0.1))
    assert check_decoded_sizes(pdf, "ok.pdf", 200).page_content == [round(0.1 * 1024) << 20]
    with pytest.raises(TooLarge, match=r"PDF.MAX_DECODED_MB = 64 MB"):
        check_decoded_sizes(pdf, "bomb.pdf", 64)


def test_an_image_bomb_fails_from_its_dictionary_alone() -> None:
    """Its data is not inflated (engines decode images row by row); its size counts."""
    pdf = _pdf(hostile.spaces_pdf(0.01, image_side=60000))
    assert image_pixels(pdf.get_object(5, 0)) == 60000 * 60000
    expected = r"60000 x 60000 image \(3,600,000,000 pixels\), more than PDF.MAX_IMAGE_PIXELS"
    with pytest.raises(TooLarge, match=expected):
        check_decoded_sizes(pdf, "bomb.pdf", 512)
    assert check_decoded_sizes(pdf, "trusted.pdf", 1, max_pixels=4 * 10**9).page_content


def test_the_worker_limit_caps_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream past the worker's whole limit fails as the limit's, whatever the option."""
    monkeypatch.setattr("hotfolder.workflows.pdfbounds.current_limit_mb", lambda: 50)
    pdf = _pdf(hostile.spaces_pdf(0.1))
    with pytest.raises(TooLarge, match=r"needed more than 50 MB \(worker_memory_limit\)"):
        check_decoded_sizes(pdf, "bomb.pdf", 100_000)


def test_optimize_skips_the_unused_resource_pass_for_huge_content(tmp_path: Path) -> None:
    size_gib = (REMOVE_UNUSED_MAX_CONTENT_MB + 16) / 1024
    source = tmp_path / "in.pdf"
    source.write_bytes(hostile.spaces_pdf(size_gib))
    out = tmp_path / "out"
    out.mkdir()
    options = PDF_OPTIMIZE.resolve_options("default", {"PDF.RECOMPRESS": False})
    ctx = StepContext("job", "big", options, logging.getLogger("t"))
    (step,) = PDF_OPTIMIZE.steps
    result = step.run([source], out, ctx)
    step.verify([source], result, ctx)
    assert any("Unused resources were kept" in warning for warning in ctx.warnings)


def test_many_short_content_streams_are_counted_not_guessed() -> None:
    """Upper bounds of 200 short streams exceed 64 MB; what they hold is 200 KB."""
    pdf = pikepdf.new()
    pdf.add_blank_page()
    rng = random.Random(12)
    streams = []
    for _ in range(200):
        text = bytes(rng.choice(b"0123456789 mlSf") for _ in range(1024))
        stream = pikepdf.Stream(pdf, zlib.compress(text))
        stream.Filter = pikepdf.Name.FlateDecode
        streams.append(pdf.make_indirect(stream))
    pdf.pages[0].Contents = pikepdf.Array(streams)
    assert check_decoded_sizes(pdf, "many.pdf", 64).page_content == [200 * 1024]
