"""The kernel's answer about open writers: real files, real leases."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from hotfolder.writers import WriterProbe, ignore_lease_breaks, open_for_writing
from tests.helpers import wait_for


def test_a_file_open_for_writing_is_reported_busy_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    with path.open("wb") as handle:
        handle.write(b"x")
        assert open_for_writing(path) is True
    assert open_for_writing(path) is False


def test_a_writer_in_another_process_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "b.pdf"
    path.write_bytes(b"x")
    # `tail -f`-like holder: a shell keeps the file open for appending.
    holder = subprocess.Popen(["sh", "-c", f"exec 3>>'{path}'; read _"], stdin=subprocess.PIPE)
    try:
        wait_for(lambda: open_for_writing(path) is True, what="the other process's open")
    finally:
        holder.communicate(b"\n", timeout=10)
    assert open_for_writing(path) is False


def test_readers_do_not_count_as_writers(tmp_path: Path) -> None:
    path = tmp_path / "c.pdf"
    path.write_bytes(b"x")
    with path.open("rb"):
        assert open_for_writing(path) is False


def test_where_the_kernel_cannot_answer_the_probe_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # leases exist for regular files only: the kernel refuses (EINVAL)
    probe = WriterProbe("scans", tmp_path)
    with caplog.at_level(logging.WARNING, logger="hotfolder.writers"):
        assert probe.busy(fifo) is None
        assert probe.busy(fifo) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "CAP_LEASE" in warnings[0] and "scans" in warnings[0]


def test_a_writer_opening_during_the_lease_neither_waits_long_nor_kills_us(
    tmp_path: Path,
) -> None:
    # The lease is held for microseconds and SIGIO is ignored: many probes racing a
    # writer's opens end with the writer done and this process alive.
    ignore_lease_breaks()
    path = tmp_path / "d.pdf"
    path.write_bytes(b"")
    writer = subprocess.Popen(
        ["sh", "-c", f"for i in $(seq 200); do echo $i >> '{path}'; done"],
    )
    while writer.poll() is None:
        open_for_writing(path)
    assert writer.wait(30) == 0
    assert len(path.read_text().split()) == 200
