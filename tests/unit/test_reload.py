"""What a reload changes: folders added, removed, changed; what needs a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hotfolder.config import Settings, WorkflowSettings
from hotfolder.reload import plan_reload


def settings(*folders: dict[str, Any], **daemon: Any) -> Settings:
    base = {"workflow": "pdf-optimize"}
    return Settings.model_validate(
        {
            "daemon": {"workers": 2, **daemon},
            "folders": [{"path": Path("/srv") / f["name"], **base, **f} for f in folders],
        }
    )


def test_added_removed_and_changed_folders() -> None:
    """Each folder lands in exactly one list; unchanged ones in none."""
    old = settings({"name": "keep"}, {"name": "gone"}, {"name": "tweak", "settle": 2})
    new = settings({"name": "keep"}, {"name": "tweak", "settle": 5}, {"name": "new"})
    plan = plan_reload(old, new)
    assert (plan.added, plan.removed, plan.changed) == (["new"], ["gone"], ["tweak"])
    assert plan.restart_needed == [] and not plan.workers_setup_changed
    assert "added: new" in plan.summary() and "removed: gone" in plan.summary()


def test_start_bound_settings_are_reported_not_applied() -> None:
    """Worker count, state dir and the HTTP listener need a restart; chains do not."""
    old = settings({"name": "a"})
    new = settings({"name": "a"}, workers=4, state_dir="elsewhere")
    new = new.model_copy(
        update={
            "http": new.http.model_copy(update={"listen": "127.0.0.1:1"}),
            "workflows": [WorkflowSettings(name="mine", steps=["pdf-optimize"])],
        }
    )
    plan = plan_reload(old, new)
    assert plan.restart_needed == ["daemon.state_dir", "daemon.workers", "http"]
    assert plan.workers_setup_changed
    assert plan.summary() == "workflows/plugins changed (workers restart when idle)"
