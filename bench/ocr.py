"""OCR benchmarks: accuracy on generated scans, born-digital PDFs through skip mode, speed.

``.venv/bin/python -m bench.ocr [--pages 40] [--workers 2]`` writes
``bench/results/ocr.json`` and exits 1 when a target is missed.

* **Accuracy**: scanned pages generated here with known text (English and
  German, DejaVu fonts, 300 and 150 dpi, paper grain, blur, skew up to ±3°, one
  page in six turned by 90° and one in six by 180°), each a one-page PDF, go
  through the real daemon's ``pdf-ocr`` (default profile: PDF/A-2b, deskew,
  rotation). The character error rate (edit distance over the reference length,
  whitespace runs folded to one space) is computed per page from the output's
  text layer as pdfium reads it, each reference line against its closest output
  line (the rate in reading order, where a line placed out of order counts twice
  its length, is recorded beside it). A turned page counts as upright when its error
  rate stays under 10 % (read sideways or upside down, it is near 100 %).
* **Born-digital**: reports with embedded fonts, photos and charts (from
  ``bench/corpus.py``) through ``pdf-ocr`` mode skip: the text of every page must
  be identical, the images per page unchanged (no page was rasterised), the
  output at most 1.1 times the input.
* **Speed**: the same scan PDFs through OCRmyPDF called directly (``ocrmypdf.ocr``
  in ``workers`` processes, one page thread each, the daemon's settings) and
  through the daemon with ``workers`` workers; wall time from the first file to
  the last result, and pages per minute.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import img2pdf
import numpy as np
import pikepdf
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from bench import corpus
from bench.context import drop, last_change
from bench.daemon import Daemon, wait_until

RESULTS = Path(__file__).resolve().parent / "results" / "ocr.json"
FONTS = "/usr/share/fonts/truetype/dejavu/"
TARGETS = {"cer_300": 0.02, "cer_150": 0.05, "size_ratio": 1.1, "speed_ratio": 1.05}

_EN = str.split(
    "the invoice for delivery of paper and toner was sent to the customer on monday "
    "please check the amount and pay within thirty days our bank details are printed "
    "below questions about this order can be sent to the office by mail or telephone "
    "quarterly report shows growth in every region while costs stayed within budget"
)
_DE = str.split(
    "die rechnung für die lieferung von papier und toner wurde am montag verschickt "
    "bitte prüfen sie den betrag und zahlen sie innerhalb von dreißig tagen unsere "
    "bankverbindung finden sie unten fragen zu diesem auftrag beantwortet gerne das "
    "büro größere mengen führen wir ab lager schöne grüße aus köln straße übermorgen"
)


def page_text(seed: int, lang: str, fits: Callable[[str], bool]) -> list[str]:
    """Sixteen lines of sentence-like text, each as long as ``fits`` allows (~900 chars)."""
    rng = random.Random(seed)
    words = _EN if lang == "eng" else _DE
    lines = []
    for _ in range(16):
        line = rng.choice(words).capitalize()
        while True:
            longer = f"{line} {rng.choice(words)}"
            if not fits(longer + "."):
                break
            line = longer
        lines.append(line + rng.choice([".", ",", ":", ""]))
    return lines


def scan_page(seed: int, lang: str, dpi: int) -> tuple[Image.Image, str, int]:
    """An A5 scan of :func:`page_text`: returns the image, its text and its rotation."""
    rng = random.Random(seed * 7919)
    width, height = int(5.83 * dpi), int(8.27 * dpi)
    font = ImageFont.truetype(FONTS + rng.choice(["DejaVuSerif.ttf", "DejaVuSans.ttf"]), dpi // 6)
    # Lines end 0.5 inch before the right edge: skew must not push text off the page.
    lines = page_text(seed, lang, lambda text: font.getlength(text) <= width - dpi)
    page = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(page)
    y = int(0.7 * dpi)
    for line in lines:
        draw.text((int(0.5 * dpi), y), line, fill=25, font=font)
        y += int(dpi * 0.42)
    page = page.rotate(rng.uniform(-3, 3), Image.Resampling.BICUBIC, fillcolor=250)
    if rng.random() < 0.5:
        page = page.filter(ImageFilter.GaussianBlur(dpi / 300 * 0.8))
    grain = np.random.default_rng(seed).normal(0, 14, (height, width))
    page = Image.fromarray(np.clip(np.asarray(page, dtype=float) + grain, 0, 255).astype("uint8"))
    turn = [0, 0, 0, 0, 90, 180][seed % 6]
    if turn:
        page = page.rotate(turn, expand=True)
    return page, "\n".join(lines), turn


def scan_pdf(path: Path, seed: int, lang: str, dpi: int) -> dict[str, Any]:
    image, text, turn = scan_page(seed, lang, dpi)
    png = path.with_suffix(".png")
    image.save(png, dpi=(dpi, dpi))
    path.write_bytes(img2pdf.convert(str(png)))
    png.unlink()
    return {"file": path.name, "lang": lang, "dpi": dpi, "turn": turn, "text": text}


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def distance(a: str, b: str) -> int:
    """Levenshtein distance: characters inserted, deleted or replaced."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(reference: str, found: str) -> float:
    """Character error rate in reading order: distance / reference length (spaces folded)."""
    a, b = _fold(reference), _fold(found)
    return distance(a, b) / max(1, len(a))


def line_cer(reference: str, found: str) -> float:
    """Character error rate with each reference line matched to its closest output line.

    Recognition errors count; a line Tesseract's layout analysis put out of order does
    not (in reading order it counts twice its length). A line missing from the output
    matches some other line badly, so it still counts.
    """
    lines = [_fold(line) for line in found.splitlines() if line.strip()] or [""]
    wanted = [_fold(line) for line in reference.splitlines()]
    errors = sum(min(distance(line, out) for out in lines) for line in wanted)
    return errors / max(1, sum(len(line) for line in wanted))


def _texts(path: Path) -> list[str]:
    from hotfolder.workflows.pdfa import page_texts

    return page_texts(path)


def _warm(_: int) -> int:
    import ocrmypdf  # noqa: F401

    time.sleep(0.5)  # every pool process starts before the clock runs
    return os.getpid()


def _ocr_direct(job: tuple[str, str, str]) -> float:
    import ocrmypdf

    source, target, lang = job
    os.environ["OMP_THREAD_LIMIT"] = "1"
    started = time.monotonic()
    ocrmypdf.ocr(
        source, target, language=[lang], mode="skip", deskew=True, rotate_pages=True,
        rotate_pages_threshold=8.0,
        output_type="pdfa-2", rasterizer="pypdfium", pdfa_backend="internal", jobs=1,
        use_threads=True, progress_bar=False,
    )  # fmt: skip
    return time.monotonic() - started


def run_daemon(root: Path, scans: list[dict[str, Any]], staged: Path, workers: int) -> float:
    """All scans through the daemon (two folders, one per language); returns wall seconds."""
    folders = [
        {"name": f"ocr-{lang}", "path": f"ocr-{lang}", "workflow": "pdf-ocr", "settle": 0.5,
         "timeout": 900, "options": {"OCR.LANGUAGES": [lang]}}
        for lang in ("eng", "deu")
    ]  # fmt: skip
    daemon = Daemon(root, folders, workers=workers)
    daemon.start()
    try:
        first = time.time()
        for lang in ("eng", "deu"):
            mine = [staged / s["file"] for s in scans if s["lang"] == lang]
            first = min(first, drop(mine, daemon.folder(f"ocr-{lang}")))
        wait_until(lambda: daemon.finished_jobs() >= len(scans), 3600, "OCR jobs", 0.2)
        outs = [daemon.folder(f"ocr-{lang}", "out") for lang in ("eng", "deu")]
        return last_change(outs, "*.status.json") - first
    finally:
        daemon.stop()


def born_digital(root: Path, count: int, workers: int) -> dict[str, Any]:
    """Reports through pdf-ocr mode skip: text identical, images unchanged, size ratio."""
    staged = root / "staged"
    staged.mkdir(parents=True)
    inputs = [corpus.report_pdf(staged / f"report-{i}.pdf", i, 3) for i in range(count)]
    keep = {p.name: (p.read_bytes(), _texts(p)) for p in inputs}
    folder = {"name": "digital", "path": "digital", "workflow": "pdf-ocr", "settle": 0.5}
    daemon = Daemon(root / "daemon", [folder], workers=workers)
    daemon.start()
    try:
        drop(inputs, daemon.folder("digital"))
        wait_until(lambda: daemon.finished_jobs() >= count, 900, "born-digital jobs", 0.2)
    finally:
        daemon.stop()
    rows = []
    for name, (data, before) in keep.items():
        output = daemon.folder("digital", "out") / name
        if not output.exists():
            rows.append({"file": name, "ok": False})
            continue
        with pikepdf.open(output) as out:
            images_after = [len(page.get_images()) for page in out.pages]
        with pikepdf.open(io.BytesIO(data)) as original:
            images_before = [len(page.get_images()) for page in original.pages]
        after = _texts(output)
        rows.append({
            "file": name, "ok": True,
            "text_identical": [_fold(t) for t in before] == [_fold(t) for t in after],
            "images_unchanged": images_before == images_after,
            "size_ratio": round(output.stat().st_size / len(data), 4),
        })  # fmt: skip
    return {"files": rows}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ocr", description=__doc__)
    parser.add_argument("--pages", type=int, default=48, help="scanned pages (a multiple of 4)")
    parser.add_argument("--reports", type=int, default=4, help="born-digital reports")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hotfolder-bench-ocr-"))
    try:
        staged = work / "scans"
        staged.mkdir()
        plan = [(s, ("eng", "deu")[s % 2], (300, 150)[(s // 2) % 2]) for s in range(args.pages)]
        scans = [scan_pdf(staged / f"scan-{s:03d}.pdf", s, lang, dpi) for s, lang, dpi in plan]
        pages = len(scans)
        # Direct first, on copies; then the daemon takes the staged files themselves.
        direct_dir = work / "direct"
        direct_dir.mkdir()
        jobs = [(str(staged / s["file"]), str(direct_dir / s["file"]), s["lang"]) for s in scans]
        with ProcessPoolExecutor(args.workers) as pool:
            # Warm, like the daemon's workers: OCRmyPDF imported before the clock runs.
            list(pool.map(_warm, range(args.workers)))
            started = time.monotonic()
            list(pool.map(_ocr_direct, jobs))
            direct = time.monotonic() - started
        daemon = run_daemon(work / "daemon", scans, staged, args.workers)
        for scan in scans:
            output = work / "daemon" / f"ocr-{scan['lang']}" / "out" / scan["file"]
            found = "\n".join(_texts(output)) if output.exists() else ""
            text = scan.pop("text")
            scan["cer"] = round(line_cer(text, found), 5)
            scan["cer_reading_order"] = round(cer(text, found), 5)
        digital = born_digital(work / "digital", args.reports, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = _report(scans, digital, direct, daemon, pages, args.workers)
    args.results.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "pages"}, indent=2))
    return 0 if all(report["met"].values()) else 1


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 5) if values else 0.0


def _report(
    scans: list[dict[str, Any]],
    digital: dict[str, Any],
    direct: float,
    daemon: float,
    pages: int,
    workers: int,
) -> dict[str, Any]:
    import ocrmypdf

    from hotfolder.workflows.ocr import tesseract_version

    accuracy = {}
    for dpi in (300, 150):
        for lang in ("eng", "deu"):
            rates = [s["cer"] for s in scans if s["dpi"] == dpi and s["lang"] == lang]
            accuracy[f"{dpi}dpi-{lang}"] = {"pages": len(rates), "mean": _mean(rates),
                                            "max": max(rates, default=0.0)}  # fmt: skip
    turned = [s for s in scans if s["turn"]]
    upright = sum(1 for s in turned if s["cer"] < 0.10)
    files = digital["files"]
    order = {dpi: _mean([s["cer_reading_order"] for s in scans if s["dpi"] == dpi])
             for dpi in (300, 150)}  # fmt: skip
    mean300 = _mean([s["cer"] for s in scans if s["dpi"] == 300])
    mean150 = _mean([s["cer"] for s in scans if s["dpi"] == 150])
    size = max((f["size_ratio"] for f in files if f["ok"]), default=99.0)
    ratio = round(daemon / direct, 4)
    met = {
        "cer_300": mean300 <= TARGETS["cer_300"],
        "cer_150": mean150 <= TARGETS["cer_150"],
        "rotated_upright": upright == len(turned),
        "born_digital_text_identical": all(f.get("text_identical") for f in files),
        "born_digital_not_rasterised": all(f.get("images_unchanged") for f in files),
        "born_digital_size": size <= TARGETS["size_ratio"],
        "speed": ratio <= TARGETS["speed_ratio"],
    }
    return {
        "environment": {
            "cpus": os.cpu_count(),
            "workers": workers,
            "python": platform.python_version(),
            "ocrmypdf": ocrmypdf.__version__,
            "tesseract": tesseract_version(),
            "machine": platform.machine(),
        },
        "targets": TARGETS,
        "accuracy": accuracy,
        "cer_mean": {"300dpi": mean300, "150dpi": mean150},
        "cer_mean_reading_order": {f"{dpi}dpi": value for dpi, value in order.items()},
        "rotated": {"pages": len(turned), "upright": upright},
        "born_digital": {"files": len(files), "max_size_ratio": size, "rows": files},
        "speed": {
            "pages": pages,
            "direct_seconds": round(direct, 2),
            "daemon_seconds": round(daemon, 2),
            "ratio": ratio,
            "pages_per_minute_direct": round(pages * 60 / direct, 1),
            "pages_per_minute_daemon": round(pages * 60 / daemon, 1),
        },
        "met": met,
        "pages": scans,
    }


if __name__ == "__main__":
    sys.exit(main())
