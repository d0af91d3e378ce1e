"""Path checks at start and reload: folders usable, nothing nested, state dir writable.

DESIGN.md §2.1: no output, error or archive folder may lie inside an input;
folders are created when missing; the work area must be on the input's
filesystem so that a claim is one atomic rename.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from hotfolder.config import Settings
from hotfolder.errors import StartupError


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


def check_paths(settings: Settings, keys: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Return layout problems: outputs inside inputs, shared inputs, no folders.

    ``keys`` name each folder as in the file (``folders[2](scans)``); by default
    they are counted from ``settings.folders``.
    """
    problems: list[tuple[str, str]] = []
    if keys is None:
        keys = [f"folders[{index}]({folder.name})" for index, folder in enumerate(settings.folders)]
    if not settings.folders:
        problems.append(("folders", "no [[folders]] configured; add at least one"))
    inputs: dict[Path, str] = {}
    for key, folder in zip(keys, settings.folders, strict=True):
        source = folder.input_dir.resolve()
        if source in inputs:
            problems.append(
                (f"{key}.input", f"same input folder as folder {inputs[source]!r}: {source}")
            )
        inputs[source] = folder.name
        targets = {
            "output": folder.output_dir,
            "error": folder.error_dir,
            "archive": folder.archive_dir,
            "path (work area .hotfolder)": folder.work_dir,
        }
        for what, target in targets.items():
            if target is not None and _inside(target, folder.input_dir):
                problems.append(
                    (
                        f"{key}.{what.split()[0]}",
                        f"{target} lies inside the input folder {folder.input_dir}; "
                        "results would be picked up again as new jobs",
                    )
                )
    for key, folder in zip(keys, settings.folders, strict=True):
        nested = [
            other.name
            for other in settings.folders
            if other is not folder
            and folder.recursive
            and folder.input_dir.resolve() in other.input_dir.resolve().parents
        ]
        if nested:
            problems.append(
                (
                    f"{key}.input",
                    f"is recursive and contains the input of folder(s) {', '.join(nested)}",
                )
            )
    return problems


def prepare_paths(settings: Settings) -> None:
    """Create missing folders and check the state dir is writable; raise StartupError."""
    dirs: list[Path] = [settings.daemon.state_dir]
    for folder in settings.folders:
        dirs += [folder.input_dir, folder.output_dir, folder.error_dir, folder.work_dir]
        if folder.archive_dir is not None:
            dirs.append(folder.archive_dir)
    for directory in dirs:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create folder {directory}: {exc.strerror}") from None
    for directory in [settings.daemon.state_dir] + [f.work_dir for f in settings.folders]:
        try:
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise StartupError(
                f"{directory} is not writable ({exc.strerror}); "
                "give the daemon's user write access to it"
            ) from None
    for folder in settings.folders:
        if folder.work_dir.stat().st_dev != folder.input_dir.stat().st_dev:
            raise StartupError(
                f"folder {folder.name!r}: the input {folder.input_dir} and the work area "
                f"{folder.work_dir} are on different filesystems, so files cannot be claimed "
                "by an atomic rename; put the input below the folder's path"
            )
