"""Load and fully check a config: what `run`, `check-config` and a reload share.

Beyond the schema checks of :mod:`hotfolder.config` this resolves what only the
workflow registry knows (plugins, the config's own chains, each folder's
workflow, profile and options), so a config that loads here can run.
"""

from __future__ import annotations

from pathlib import Path

from hotfolder.config import Settings, load_settings
from hotfolder.errors import ConfigError
from hotfolder.paths import check_paths
from hotfolder.workflows.registry import check_folder, configure


def load_checked(path: Path | str | None) -> Settings:
    """Return the settings at ``path`` or raise ConfigError listing every problem by key."""
    settings = load_settings(path)
    problems = check_paths(settings)
    problems += configure(settings.daemon.plugins, settings.workflows)
    for index, folder in enumerate(settings.folders):
        for key, message in check_folder(folder.workflow, folder.profile, folder.options):
            problems.append((f"folders[{index}]({folder.name}).{key}", message))
    if problems:
        raise ConfigError(problems, str(settings.config_file))
    return settings
