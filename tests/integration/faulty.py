"""A plugin workflow whose step misbehaves on request: the seam for fault tests.

The input file's first word says what the step does: ``ok`` (copies the input),
``segv`` (a real segmentation fault), ``exit`` (``os._exit``), ``hog`` (allocates
until the worker's memory limit stops it), ``reserve`` (the same with untouched
zero pages: it reaches a limit of gigabytes without using the machine's memory),
``hang`` (sleeps past any timeout), ``slow:N`` (takes N seconds, then ok),
``needs:PATH`` (fails unless PATH exists), ``flaky`` (an I/O error on the first
attempt only), ``broken`` (writes an output that fails its check), ``fill``
(writes its output until the disk is full, leaving the partial file behind) and
``fill:N`` (the same, but the "disk" is full after N bytes: an injected ENOSPC
where no small filesystem can be mounted), ``pages:N:PATH`` (reports page 1 of N
done, then waits until PATH exists, then ok: a job that is visibly mid-way).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from hotfolder.errors import IOFailure, ToolFailed
from hotfolder.workflows.base import OptionSpec, StepContext, StepResult, Workflow
from hotfolder.workflows.registry import register


class FaultyStep:
    name = "faulty"
    options: tuple[OptionSpec, ...] = ()

    def run(self, inputs: Sequence[Path], out_dir: Path, ctx: StepContext) -> StepResult:
        command = inputs[0].read_text().split()[0]
        if command == "segv":
            ctypes.string_at(0)
        elif command == "exit":
            os._exit(3)
        elif command == "hog":
            hoard = []
            while True:
                hoard.append(bytearray(64 * 1024 * 1024))
        elif command == "reserve":
            reserved = []
            while True:
                # bytes(n) comes from calloc: fresh mmap'd pages, never written.
                reserved.append(bytes(64 * 1024 * 1024))
        elif command == "hang":
            time.sleep(3600)
        elif command.startswith("slow:"):
            time.sleep(float(command.split(":")[1]))
        elif command.startswith("needs:"):
            flag = Path(command.split(":", 1)[1])
            if not flag.exists():
                raise ToolFailed(f"{flag.name} is missing (injected).")
        elif command.startswith("pages:"):
            _, total, gate = command.split(":", 2)
            ctx.report_progress(1, int(total))
            deadline = time.monotonic() + 60
            while not Path(gate).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        elif command == "flaky":
            marker = out_dir.parent / "attempted"
            if not marker.exists():
                marker.touch()
                raise IOFailure("The share went away for a moment (injected).")
        output = out_dir / f"{ctx.job_name}.txt"
        if command.startswith("fill"):
            room = int(command.split(":")[1]) if ":" in command else None
            with output.open("wb") as handle:
                while True:  # ENOSPC ends it, as it would end a real engine's write
                    if room is not None and handle.tell() >= room:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    handle.write(os.urandom(256 * 1024))
                    handle.flush()
        shutil.copyfile(inputs[0], output)
        return StepResult(outputs=[output], message=f"did {command}")

    def verify(self, inputs: Sequence[Path], result: StepResult, ctx: StepContext) -> None:
        if inputs[0].read_text().startswith("broken"):
            raise ToolFailed("The output failed its check (injected): not published.")


register(
    Workflow(
        name="test-faults",
        description="Misbehaves on request (tests only)",
        steps=(FaultyStep(),),
        profiles={"default": {}},
    )
)
