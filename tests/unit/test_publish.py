"""Naming, collision suffixes and idempotent, never-overwriting placement."""

from __future__ import annotations

import os
from pathlib import Path

from hotfolder.publish import NAME_MAX, fit_name, free_name, job_name_for, place, place_unique


def test_job_name_drops_only_the_last_extension() -> None:
    assert job_name_for("invoice.pdf") == "invoice"
    assert job_name_for("archive.tar.gz") == "archive.tar"
    assert job_name_for("README") == "README"
    assert job_name_for(".hidden") == ".hidden"


def test_free_name_skips_names_taken_by_any_output(tmp_path: Path) -> None:
    (tmp_path / "scan-p001.png").touch()
    assert free_name(tmp_path, "scan", ["-p001.png", ".status.json"]) == "scan_2"
    (tmp_path / "scan_2.status.json").touch()
    assert free_name(tmp_path, "scan", ["-p001.png", ".status.json"]) == "scan_3"


def test_place_never_overwrites(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("new")
    dst.write_text("old")
    assert place(src, dst) is False
    assert dst.read_text() == "old" and src.read_text() == "new"


def test_place_completes_after_a_crash_between_link_and_unlink(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("data")
    os.link(src, dst)  # the crash happened here
    assert place(src, dst) is True
    assert not src.exists() and dst.read_text() == "data"
    assert place(src, dst) is True  # and again: already done


def test_place_moves_symlinks_without_following_them(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("secret")
    link = tmp_path / "link"
    link.symlink_to(target)
    moved = tmp_path / "moved"
    assert place(link, moved)
    assert moved.is_symlink() and os.readlink(moved) == str(target)


def test_place_unique_picks_the_next_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_text("first")
    src = tmp_path / "work.pdf"
    src.write_text("second")
    out = place_unique(src, tmp_path, "a", ".pdf")
    assert out.name == "a_2.pdf" and out.read_text() == "second"


def test_names_are_shortened_to_fit_name_max(tmp_path: Path) -> None:
    # A 255-byte input is legal; "<its stem>.status.json" and "<stem>_2.pdf" would not be.
    stem = "x" * 251
    name = free_name(tmp_path, stem, [".pdf", ".status.json"])
    assert len(name) + len(".status.json") == NAME_MAX
    (tmp_path / f"{name}.status.json").touch()
    second = free_name(tmp_path, stem, [".pdf", ".status.json"])
    assert second.endswith("_2") and len(second) + len(".status.json") == NAME_MAX
    (tmp_path / f"{stem}.pdf").touch()
    src = tmp_path / "work.pdf"
    src.write_text("second")
    assert place_unique(src, tmp_path, stem, ".pdf").name == f"{stem[:-2]}_2.pdf"


def test_shortening_never_cuts_a_character(tmp_path: Path) -> None:
    stem = "ä" * 125  # 250 bytes in UTF-8
    fitted = fit_name(stem, [".status.json"])
    assert fitted == "ä" * 121  # 242 bytes; one more would need 244 > 255 - 12
    assert len(os.fsencode(fitted + ".status.json")) <= NAME_MAX
    raw = os.fsdecode(b"\xff" * 250)  # not UTF-8: each byte counts once
    assert len(os.fsencode(fit_name(raw, [".status.json"]))) == NAME_MAX - 12
