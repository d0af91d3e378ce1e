"""What the benchmarks of one run share: the scratch folder, worker count and corpus.

Inputs are generated once per run and copied into each benchmark's own
folders, so that every benchmark starts from files nobody has touched.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import corpus


@dataclass
class Context:
    """Scratch space and shared inputs of one benchmark run."""

    workdir: Path
    workers: int
    _letters: list[bytes] = field(default_factory=list)

    def fresh(self, name: str) -> Path:
        """An empty folder for one benchmark (emptied if a previous run left it)."""
        path = self.workdir / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def letters(self, count: int) -> list[bytes]:
        """Distinct one-page letters, kept in memory (a few KB each)."""
        while len(self._letters) < count:
            self._letters.append(corpus.letter_pdf(len(self._letters)))
        return self._letters[:count]

    def stage_letters(self, directory: Path, count: int, distinct: int = 1000) -> list[Path]:
        """Write ``count`` one-page PDFs into ``directory``; contents repeat after ``distinct``."""
        directory.mkdir(parents=True, exist_ok=True)
        pool = self.letters(min(count, distinct))
        paths = []
        for index in range(count):
            path = directory / f"letter-{index:06d}.pdf"
            path.write_bytes(pool[index % len(pool)])
            paths.append(path)
        return paths

    def documents(self, count: int) -> list[Path]:
        """Multi-page PDFs (reports, scans, legacy files), generated once per run."""
        return self._generated("documents", count, ".pdf", _make_document)

    def photos(self, count: int) -> list[Path]:
        """12 MP camera JPEGs, generated once per run."""
        return self._generated("photos", count, ".jpg", _make_photo)

    def _generated(
        self, kind: str, count: int, suffix: str, make: Callable[[Path, int], Path]
    ) -> list[Path]:
        directory = self.workdir / "corpus" / kind
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / f"{kind[:-1]}-{seed:04d}{suffix}" for seed in range(count)]
        missing = [(path, seed) for seed, path in enumerate(paths) if not path.exists()]
        if missing:
            # Building 200 photos takes a minute on one core; use them all.
            with ProcessPoolExecutor(self.workers) as pool:
                list(pool.map(make, *zip(*missing, strict=True)))
        return paths


def _make_document(path: Path, seed: int) -> Path:
    temp = path.with_suffix(".partial")
    corpus.document_pdf(temp, seed)
    temp.rename(path)  # a run interrupted mid-file must not leave a truncated input
    return path


def _make_photo(path: Path, seed: int) -> Path:
    temp = path.with_suffix(".partial")
    corpus.write_photo(temp, seed)
    temp.rename(path)
    return path


def copy_into(sources: Sequence[Path], directory: Path) -> list[Path]:
    """Copy ``sources`` into ``directory`` (same names); returns the copies."""
    directory.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in sources:
        target = directory / source.name
        shutil.copyfile(source, target)
        copies.append(target)
    return copies


def drop(paths: Sequence[Path], into: Path) -> float:
    """Rename staged files into an input folder; returns the time of the first rename.

    A rename is how careful writers deliver (and what a hot folder sees as one
    event), so the clock starts at a well-defined moment.
    """
    first = 0.0
    for path in paths:
        now = time.time()
        path.rename(into / path.name)
        first = first or now
    return first


def last_change(directories: Sequence[Path], pattern: str = "*") -> float:
    """The latest ctime of the matching files: when the last one was placed.

    Placing a file by link or rename changes its ctime, so this is the moment
    the last output, status or archived original appeared, to the nanosecond.
    """
    latest = 0.0
    for directory in directories:
        for path in directory.glob(pattern):
            latest = max(latest, path.lstat().st_ctime_ns / 1e9)
    return latest
