"""The floor: what any correct hot folder pays per job, with no conversion at all.

For each input: read it; write the "output" (its bytes unchanged) and a status
file of the daemon's usual size, each to a temporary name and fsynced; rename
both into out/; move the original into archive/; fsync out/ and archive/ so
that the renames survive a power cut. One process, one job after the other,
the way a single publisher thread works. No journal, no checks, no engine.

Run on its own: ``python -m bench.floor IN OUT ARCHIVE`` prints seconds per job.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

#: About the size of a real status file (inputs, outputs, hashes, timestamps).
_STATUS_PADDING = 600


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_one(source: Path, out: Path, archive: Path) -> None:
    """Do for one input what every correct hot folder must do, and nothing more."""
    data = source.read_bytes()
    stem = source.stem
    output_temp = out / f".{source.name}.tmp"
    _write_synced(output_temp, data)
    status = {"name": stem, "status": "success", "bytes": len(data), "pad": "x" * _STATUS_PADDING}
    status_temp = out / f".{stem}.status.json.tmp"
    _write_synced(status_temp, json.dumps(status).encode())
    output_temp.rename(out / source.name)
    status_temp.rename(out / f"{stem}.status.json")
    source.rename(archive / source.name)
    _fsync_dir(out)
    _fsync_dir(archive)


def run(inputs: list[Path], out: Path, archive: Path) -> float:
    """Publish every input; return the wall time in seconds."""
    out.mkdir(parents=True, exist_ok=True)
    archive.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for source in inputs:
        publish_one(source, out, archive)
    return time.perf_counter() - started


def main() -> None:
    """Command line: floor over every file of IN."""
    source, out, archive = (Path(arg) for arg in sys.argv[1:4])
    inputs = sorted(p for p in source.iterdir() if p.is_file())
    seconds = run(inputs, out, archive)
    print(f"{len(inputs)} jobs, {seconds / max(1, len(inputs)) * 1000:.3f} ms per job")


if __name__ == "__main__":
    main()
