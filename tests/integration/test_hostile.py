"""Invariants 1, 6 and 7 against a corpus of hostile files (docs/hostile-inputs.md).

Over 60 files built by the test (tests/hostile.py): decompression bombs, truncated
and fuzzed PDFs and images, encryption without a password, thousands of pages,
nesting thousands deep, names with newlines, bytes that are not UTF-8, 255-byte
names, leading dashes, FIFOs, sockets, symlinks and hard links to files outside,
a folder named like a PDF. Each ends with exactly one status: the expected error
code in error/ (original kept), or success where the file is fine underneath.
The daemon stays up and converts the good files dropped last, and nothing
outside its folders is read (canaries' atime) or written (no new files).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from tests import hostile
from tests.helpers import job_dirs
from tests.samples import jpeg_bytes, pdf_bytes, png_bytes

FAILED_READING = {"corrupt_input", "unsupported_format"}


@dataclass
class Drop:
    """One hostile entry: where it goes and what its job must end with."""

    folder: str
    name: bytes  # raw bytes: names need not be UTF-8
    data: bytes | None  # None: made by ``make`` (links, FIFOs, sockets)
    expect: str | set[str]  # "success", an error code, or the codes allowed

    @property
    def display(self) -> str:
        """The name as status files show it (bytes that are not UTF-8 as \\xNN)."""
        return self.name.decode("utf-8", "backslashreplace")


def _photo() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((120, 90), 40).convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def corpus(outside: Path) -> list[Drop]:
    base = hostile.stable(pdf_bytes(pages=3, text="hostile"))
    photo, png = _photo(), png_bytes(64, 48)
    canary = os.fsencode(outside / "canary.pdf")
    drops = [
        Drop("pdfs", b"empty.pdf", b"", "corrupt_input"),
        Drop("pdfs", b"header-only.pdf", b"%PDF-1.7\n", "corrupt_input"),
        Drop("pdfs", b"garbage.pdf", random.Random(1).randbytes(5000), "unsupported_format"),
        Drop("pdfs", b"a-jpeg.pdf", jpeg_bytes(), "unsupported_format"),
        *[Drop("pdfs", b"cut-%d.pdf" % s, hostile.truncated(base, s), "corrupt_input")
          for s in range(1, 7)],
        *[Drop("pdfs", b"fuzz-%d.pdf" % s, hostile.fuzzed(base, s), FAILED_READING)
          for s in range(1, 9)],
        *[Drop("pdfs", b"encrypted-r%d.pdf" % r, hostile.encrypted(base, "u", r),
               "password_required") for r in (2, 3, 4, 6)],
        # Only an owner password: it opens without one; the output stays protected.
        Drop("pdfs", b"owner-only.pdf", hostile.encrypted(base, "", 6), "success"),
        Drop("pdfs", b"pages-5000.pdf", hostile.many_pages(5000), "success"),
        Drop("pdfs", b"deep-arrays.pdf", hostile.deep_arrays(5000), "corrupt_input"),
        Drop("pdfs", b"deep-dicts.pdf", hostile.deep_dicts(5000), "corrupt_input"),
        Drop("pdfs", b"deep-page-tree.pdf", hostile.deep_page_tree(3000), "corrupt_input"),
        Drop("pdfs", b"reference-chain.pdf", hostile.reference_chain(20000), "success"),
        # 400 MB of pixels and 200 MB of content in < 1 MB: recompressed as streams.
        Drop("pdfs", b"image-bomb.pdf", hostile.image_bomb(20000), "success"),
        Drop("pdfs", b"content-bomb.pdf", hostile.content_bomb(200), "success"),
        Drop("pdfs", b"external-stream.pdf", hostile.external_stream(canary), "success"),
        Drop("pdfs", b"--help.pdf", base, "success"),
        Drop("pdfs", b"-rf .pdf", base, "success"),
        Drop("pdfs", b"new\nline.pdf", base, "success"),
        Drop("pdfs", b"tab\tcarriage\rreturn.pdf", base, "success"),
        Drop("pdfs", b"latin1-M\xe4rz.pdf", base, "success"),
        Drop("pdfs", b"\xff\xfe\x80.pdf", base, "success"),
        Drop("pdfs", b"x" * 251 + b".pdf", base, "success"),
        Drop("pdfs", "ä".encode() * 125 + b"x.pdf", base, "success"),
        Drop("pdfs", b".pdf", base, "success"),
        Drop("pdfs", b"fifo.pdf", None, "not_regular_file"),
        Drop("pdfs", b"socket.pdf", None, "not_regular_file"),
        Drop("pdfs", b"link-to-outside.pdf", None, "not_regular_file"),
        Drop("pdfs", b"link-to-outside-dir.pdf", None, "not_regular_file"),
        Drop("pdfs", b"dangling.pdf", None, "not_regular_file"),
        Drop("pdfs", b"loop.pdf", None, "not_regular_file"),
        Drop("pdfs", b"hard-link.pdf", None, "not_regular_file"),
        Drop("images", b"bomb-header.png", hostile.png_bomb(100_000, 100_000, rows=10),
             "too_large"),
        Drop("images", b"bomb-zeros.png", hostile.png_bomb(20000, 20000), "too_large"),
        Drop("images", b"huge.gif", hostile.gif_huge(), "too_large"),
        Drop("images", b"huge.jpg", hostile.jpeg_huge(photo), "too_large"),
        Drop("images", b"huge.tif", hostile.tiff_huge(), "too_large"),
        Drop("images", b"cut.png", png[: len(png) // 2], "corrupt_input"),
        Drop("images", b"cut.jpg", photo[: len(photo) // 2], "corrupt_input"),
        Drop("images", b"empty.png", b"", "corrupt_input"),
        Drop("images", b"a-pdf.png", base, "unsupported_format"),
        # JPEG decoders are built to survive damaged data: some fuzzed photos decode.
        *[Drop("images", b"fuzz-%d.png" % s, hostile.fuzzed(png, s, keep=8),
               FAILED_READING | {"success"}) for s in range(1, 4)],
        *[Drop("images", b"fuzz-%d.jpg" % s, hostile.fuzzed(photo, s, keep=4),
               FAILED_READING | {"success"}) for s in range(1, 4)],
        Drop("images", b"image-link.png", None, "not_regular_file"),
        # pdf-to-image: a page of 30000 x 30000 pixels, and 2000 pages within 6 s.
        Drop("render", b"huge-page.pdf", hostile.huge_page(), "too_large"),
        Drop("render", b"pages-2000.pdf", hostile.many_pages(2000), "timeout"),
        Drop("render", b"render-bomb.pdf", hostile.image_bomb(20000), "success"),
    ]  # fmt: skip
    return drops


def make_special(drop: Drop, path: bytes, outside: Path, sockets: list[socket.socket]) -> None:
    """Create the entries that are not plain files."""
    kind = drop.name.decode()
    if kind == "fifo.pdf":
        os.mkfifo(path)
    elif kind == "socket.pdf":
        server = socket.socket(socket.AF_UNIX)
        sockets.append(server)
        here = os.getcwd()
        os.chdir(os.path.dirname(path))  # a socket path may be 107 bytes at most
        try:
            server.bind(os.path.basename(path))
        finally:
            os.chdir(here)
    elif kind in ("link-to-outside.pdf", "image-link.png"):
        os.symlink(outside / "canary.pdf", path)
    elif kind == "link-to-outside-dir.pdf":
        os.symlink(outside, path)
    elif kind == "dangling.pdf":
        os.symlink(outside / "nothing-here.pdf", path)
    elif kind == "loop.pdf":
        os.symlink(path, path)
    elif kind == "hard-link.pdf":
        os.link(outside / "canary.pdf", path)
    else:
        raise AssertionError(kind)


@dataclass(frozen=True)
class Canary:
    sha256: str
    mtime_ns: int
    atime_ns: int

    @classmethod
    def of(cls, path: Path) -> Canary:
        info = path.stat()
        # Read with O_NOATIME where allowed, so that checking does not touch it either.
        digest = hashlib.sha256(_read_noatime(path)).hexdigest()
        return cls(digest, info.st_mtime_ns, info.st_atime_ns)


def _read_noatime(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0))
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def _plant_canaries(outside: Path) -> dict[Path, Canary]:
    outside.mkdir()
    (outside / "canary.pdf").write_bytes(pdf_bytes(text="canary"))
    (outside / "canary.png").write_bytes(png_bytes())
    canaries = {}
    for path in outside.iterdir():
        # atime before mtime: with relatime (the usual mount option) any read updates it.
        info = path.stat()
        os.utime(path, ns=(info.st_mtime_ns - 10**10, info.st_mtime_ns))
        canaries[path] = Canary.of(path)
    return canaries


def _tree(root: Path, skip: set[str]) -> set[str]:
    found = set()
    for directory, dirs, files in os.walk(root):
        rel = os.path.relpath(directory, root)
        if rel == ".":
            dirs[:] = [d for d in dirs if d not in skip]
            files = [f for f in files if f not in skip]
        found.update(os.path.join(rel, name) for name in [*dirs, *files])
    return found


@pytest.fixture
def unix_sockets() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for server in sockets:
        server.close()


def test_hostile_corpus_each_ends_clearly_and_nothing_outside_is_touched(
    hotfolder, tmp_path: Path, unix_sockets: list[socket.socket]
) -> None:
    outside = tmp_path / "outside"
    canaries = _plant_canaries(outside)
    engine_tmp = tmp_path / "engine-tmp"
    engine_tmp.mkdir()
    daemon = hotfolder(
        [
            {"name": "pdfs", "workflow": "pdf-optimize", "timeout": 60},
            {"name": "images", "workflow": "image-convert", "timeout": 60},
            {"name": "render", "workflow": "pdf-to-image", "timeout": 6},
        ],
        retry_backoff=0.1,
    ).start(TMPDIR=str(engine_tmp))
    daemon_areas = {"pdfs", "images", "render", "state", "daemon.log", "hotfolder.toml"}
    before = _tree(tmp_path, daemon_areas | {"engine-tmp"})

    drops = corpus(outside)
    assert len(drops) >= 40
    for drop in drops:
        path = os.path.join(os.fsencode(daemon.dir(drop.folder)), drop.name)
        if drop.data is None:
            make_special(drop, path, outside, unix_sockets)
        else:
            with open(path, "wb") as handle:
                handle.write(drop.data)
    # A folder named like a file is not a job (the folder is not recursive).
    (daemon.dir("pdfs") / "folder.pdf").mkdir()
    (daemon.dir("pdfs") / "folder.pdf" / "inside.pdf").write_bytes(pdf_bytes())

    per_folder = {name: sum(d.folder == name for d in drops) for name in daemon_areas}
    for folder in ("pdfs", "images", "render"):
        daemon.wait_finished(folder, per_folder[folder], timeout=120)
    # Still up and converting: good files dropped after the corpus convert.
    (daemon.dir("pdfs") / "good.pdf").write_bytes(pdf_bytes(pages=2))
    (daemon.dir("images") / "good.png").write_bytes(png_bytes())
    daemon.wait_finished("pdfs", per_folder["pdfs"] + 1)
    daemon.wait_finished("images", per_folder["images"] + 1)
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0

    results = {}
    for folder in ("pdfs", "images", "render"):
        for sub in ("out", "error"):
            for status in daemon.statuses(folder, sub):
                key = (folder, status["inputs"][0]["name"])
                assert key not in results, f"two statuses for {key}"
                results[key] = (sub, status)
    assert len(results) == len(drops) + 2
    for drop in drops:
        sub, status = results[(drop.folder, drop.display)]
        outcome = status["error"]["code"] if status["error"] else "success"
        allowed = drop.expect if isinstance(drop.expect, set) else {drop.expect}
        assert outcome in allowed, (drop.display, status["message"])
        assert sub == ("out" if outcome == "success" else "error")
        # A message that says what happened, without the daemon's own paths in it.
        assert len(status["message"]) > 30 and str(tmp_path) not in status["message"]
        if outcome != "success":
            assert outcome not in ("internal", "worker_crashed"), status["message"]
    for folder, name in (("pdfs", "good.pdf"), ("images", "good.png")):
        assert results[(folder, name)][1]["status"] == "success"

    _check_originals_kept(daemon, drops, results)
    _check_special_outputs(daemon, results)
    # Nothing was left behind in the drop zones but the folder, untouched.
    assert os.listdir(daemon.dir("pdfs")) == ["folder.pdf"]
    assert os.listdir(daemon.dir("pdfs") / "folder.pdf") == ["inside.pdf"]
    assert b"folder 'folder.pdf'" in daemon.log.read_bytes()  # the operator is told
    assert os.listdir(daemon.dir("images")) == os.listdir(daemon.dir("render")) == []
    for folder in ("pdfs", "images", "render"):
        assert job_dirs(daemon.root / folder / ".hotfolder" / "jobs") == []

    # Nothing outside the configured folders was read or written.
    for path, canary in canaries.items():
        assert Canary.of(path) == canary, f"{path.name} was read or changed"
    assert _tree(tmp_path, daemon_areas | {"engine-tmp"}) == before
    assert sorted(p.name for p in engine_tmp.iterdir() if not p.name.startswith("pymp-")) == []


def _check_originals_kept(daemon, drops: list[Drop], results: dict) -> None:
    """Every original regular file is in archive/ (success) or error/, byte for byte."""
    for drop in drops:
        if drop.data is None:
            continue
        sub, status = results[(drop.folder, drop.display)]
        where = daemon.dir(drop.folder, "archive" if sub == "out" else "error")
        raw = os.fsencode(where)
        if sub == "out":
            kept = os.path.join(raw, drop.name)  # archived under its own name
        else:  # next to its status, under the status's (maybe shortened) name
            extension = drop.name[drop.name.rfind(b".") :] if b"." in drop.name[1:] else b""
            kept = os.path.join(raw, os.fsencode(status["name"]) + extension)
            if not os.path.lexists(kept):  # a name that was not UTF-8: match by content
                kept = next(
                    os.path.join(raw, n)
                    for n in os.listdir(raw)
                    if not n.endswith(b".status.json")
                    and Path(os.fsdecode(os.path.join(raw, n))).read_bytes() == drop.data
                )
        with open(kept, "rb") as handle:
            assert handle.read() == drop.data, drop.display


def _check_special_outputs(daemon, results: dict) -> None:
    """Spot checks of what the odd successes and rejections produced."""
    out, error = daemon.dir("pdfs", "out"), daemon.dir("pdfs", "error")
    # 255-byte names: the output keeps the job name, shortened so ".status.json" fits.
    long_status = results[("pdfs", "x" * 251 + ".pdf")][1]
    assert long_status["name"] == "x" * (255 - len(".status.json"))
    assert (out / f"{long_status['name']}.status.json").is_file()
    wide = results[("pdfs", "ä" * 125 + "x.pdf")][1]["name"]
    assert wide == "ä" * 121 and len(os.fsencode(wide + ".status.json")) <= 255
    # Names that are not UTF-8 keep their bytes on disk.
    assert os.path.exists(os.path.join(os.fsencode(out), b"latin1-M\xe4rz.pdf"))
    with pikepdf.open(out / "pages-5000.pdf") as pdf:
        assert len(pdf.pages) == 5000
    with pikepdf.open(out / "owner-only.pdf") as pdf:
        assert pdf.is_encrypted and len(pdf.pages) == 3
    # Links are moved as links, never followed; the hard link is the canary's inode.
    assert os.readlink(error / "link-to-outside.pdf").endswith("canary.pdf")
    assert (error / "loop.pdf").is_symlink()
    assert (error / "hard-link.pdf").stat().st_nlink == 2
    assert "hard link" in results[("pdfs", "hard-link.pdf")][1]["message"]
    assert "timeout of 6 s" in results[("render", "pages-2000.pdf")][1]["message"]
