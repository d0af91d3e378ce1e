"""Where a pending manifest's inputs are, and which are not ready yet.

A manifest names its inputs; the folder holds them under names that may be
spelt in another Unicode normalisation (macOS clients write NFD names to SMB
shares, people type NFC). Each input must be a regular file that has stayed
unchanged for ``settle`` seconds with no writer holding it before the job is
claimed. A folder, a link or a device named as an input ends the job; a
folder is never moved.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from hotfolder.errors import ManifestInvalid, NotRegularFile
from hotfolder.intake import Signature, same_name
from hotfolder.writers import WriterProbe

log = logging.getLogger("hotfolder.pending")

#: Folder listings by normalised name, made only when a name is not found as spelt
#: and shared by every pending job of one round.
Listings = dict[Path, dict[str, Path]]


class InputsSeen:
    """What one pending job has seen of its inputs."""

    def __init__(self, base: Path, settle: float) -> None:
        self.base = base
        self.settle = settle
        #: Input path -> (signature, since when unchanged).
        self._seen: dict[Path, tuple[Signature, float]] = {}
        #: Manifest input name -> the entry holding it under another normalisation.
        self._found: dict[str, Path] = {}

    def paths(self, names: Sequence[str]) -> list[Path]:
        """Where each named input is (or would be, under the manifest's spelling)."""
        return [self._found.get(name, self.base / name) for name in names]

    def look(
        self,
        names: Sequence[str],
        now: float,
        writers: WriterProbe | None,
        listings: Listings,
    ) -> tuple[list[str], list[str]]:
        """The names not there yet and those still settling; raises for a bad input."""
        missing: list[str] = []
        settling: list[str] = []
        for name in names:
            path = self._found.get(name, self.base / name)
            info = _lstat(path)
            if info is None:
                # Not under the manifest's spelling: perhaps under another normalisation.
                if self.base not in listings:
                    listings[self.base] = _listing(self.base)
                twin = listings[self.base].get(same_name(Path(name)))
                info = _lstat(twin) if twin is not None else None
                if twin is not None and info is not None:
                    path = self._found[name] = twin
            if info is None:
                missing.append(name)
                self._seen.pop(path, None)
                continue
            _check_is_file(name, info)
            current = Signature.of(info)
            known = self._seen.get(path)
            if known is None or known[0] != current:
                self._seen[path] = (current, now)
                settling.append(name)
            elif now - known[1] < self.settle or (
                writers is not None and writers.busy(path) is True
            ):
                settling.append(name)
        return missing, settling


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.debug("cannot stat %s: %s", path, exc.strerror)
        return None


def _listing(directory: Path) -> dict[str, Path]:
    try:
        with os.scandir(directory) as entries:
            return {same_name(Path(entry.name)): Path(entry.path) for entry in entries}
    except OSError:
        return {}


def _check_is_file(name: str, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ManifestInvalid(
            f"The manifest names {name!r}, which is a folder; a manifest names files. The "
            "folder was left where it is. Name the files inside it instead."
        )
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(
            f"The manifest names {name!r}, which is a symbolic link or special file; "
            "hotfolder never follows links. Drop the file itself."
        )
