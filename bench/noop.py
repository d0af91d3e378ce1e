"""A plugin workflow that costs (almost) nothing: the daemon's own ceiling is what remains.

Loaded through the plugin seam (``[daemon] plugins = ["bench.noop"]``) by the
daemon and by every worker, for the scale-out benchmarks only. ``bench-noop``
copies its (tiny) input as its output; an input reading ``sleep:N`` sleeps N
seconds first, so that a worker holds a job long enough to be killed with it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from hotfolder.workflows.base import OptionSpec, StepContext, StepResult, Workflow
from hotfolder.workflows.registry import register


class NoopStep:
    """Copies the input; sleeps first when asked to."""

    name = "noop"
    options: tuple[OptionSpec, ...] = ()

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        """Copy ``inputs[0]`` to ``<job name>.txt``."""
        text = inputs[0].read_text()
        if text.startswith("sleep:"):
            time.sleep(float(text.split(":", 1)[1]))
        output = out_dir / f"{ctx.job_name}.txt"
        shutil.copyfile(inputs[0], output)
        return StepResult(outputs=[output], message="copied")

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        """Nothing to check: the benchmark measures the daemon, not an engine."""


register(
    Workflow(
        name="bench-noop",
        description="Copies its input (benchmarks only)",
        steps=(NoopStep(),),
        profiles={"default": {}},
    )
)
