"""What a reload (SIGHUP) changes: a pure comparison of the running and the new config.

The daemon applies the plan on its intake thread: removed folders stop being
watched (their jobs in flight finish and publish as configured before),
added folders start, changed folders are watched again with their new
settings. Settings bound at start (workers, state dir, HTTP listener) are
reported as needing a restart instead of being half applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hotfolder.config import Settings

#: [daemon] keys that only take effect at the next start.
RESTART_KEYS = (
    "state_dir",
    "executor",
    "workers",
    "max_jobs_per_worker",
    "worker_memory_limit",
    "log_format",
)


@dataclass(frozen=True)
class ReloadPlan:
    """Folder names added, removed and changed, and what still needs a restart."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    #: Plugins or [[workflows]] changed: workers restart with them when idle.
    workers_setup_changed: bool = False
    restart_needed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One log line."""
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if names
        ]
        if self.workers_setup_changed:
            parts.append("workflows/plugins changed (workers restart when idle)")
        return "; ".join(parts) or "no folder changes"


def plan_reload(old: Settings, new: Settings) -> ReloadPlan:
    """Compare two validated configs."""
    before = {folder.name: folder for folder in old.folders}
    after = {folder.name: folder for folder in new.folders}
    restart = [
        f"daemon.{key}"
        for key in RESTART_KEYS
        if getattr(old.daemon, key) != getattr(new.daemon, key)
    ]
    if old.http != new.http:
        restart.append("http")
    if old.celery != new.celery:
        restart.append("celery")
    return ReloadPlan(
        added=[name for name in after if name not in before],
        removed=[name for name in before if name not in after],
        changed=[name for name in after if name in before and after[name] != before[name]],
        workers_setup_changed=(
            old.daemon.plugins != new.daemon.plugins or old.workflows != new.workflows
        ),
        restart_needed=restart,
    )
