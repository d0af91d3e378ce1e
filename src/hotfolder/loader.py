"""Load and fully check a config: what `run`, `check-config` and a reload share.

Beyond the schema checks of :mod:`hotfolder.config` this resolves what only the
workflow registry knows (plugins, the config's own chains, each folder's
workflow, profile and options), so a config that loads here can run.
"""

from __future__ import annotations

from pathlib import Path

from hotfolder.config import Settings, config_path, read_settings
from hotfolder.errors import ConfigError
from hotfolder.paths import check_paths
from hotfolder.workflows.registry import check_folder, configure


def _position(problem: tuple[str, str]) -> tuple[int, int]:
    """Sort problems table by table, entry by entry, as the file reads."""
    head = problem[0].split(".", 1)[0]
    table, _, index = head.partition("[")
    tables = list(Settings.model_fields)
    order = tables.index(table) if table in tables else -1
    return order, int(index.split("]", 1)[0]) if index else -1


def load_checked(path: Path | str | None) -> Settings:
    """Return the settings at ``path`` or raise ConfigError listing every problem by key.

    Every check runs in one pass, on whatever validated: a config with a wrong type
    in one folder still has its other folders' workflows, profiles and options
    checked, so the operator sees all problems at once.
    """
    reading = read_settings(path)
    problems = list(reading.problems)
    settings = reading.settings
    if settings is not None:
        problems += check_paths(settings, reading.folder_keys)
        problems += configure(settings.daemon.plugins, settings.workflows, reading.workflow_keys)
        for key, folder in zip(reading.folder_keys, settings.folders, strict=True):
            for sub, message in check_folder(folder.workflow, folder.profile, folder.options):
                problems.append((f"{key}.{sub}", message))
    if problems or settings is None:
        problems.sort(key=_position)
        raise ConfigError(problems, str(config_path(path).absolute()))
    return settings
