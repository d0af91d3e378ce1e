"""Decode a PDF's JBIG2 page images with jbig2dec before OCR trusts them.

pdfium draws a JBIG2 image it cannot decode as an empty page, without an
error; OCR of that page finds no text and the job would "succeed" with a blank
page where the scan was. Scanners write bilevel pages as JBIG2, so every such
image is decoded once with jbig2dec (through :func:`hotfolder.tools.run`), and
one that does not decode makes the input ``corrupt_input``.
"""

from __future__ import annotations

from pathlib import Path

import pikepdf

from hotfolder import tools
from hotfolder.errors import CorruptInput, ToolFailed

PROGRAM = "jbig2dec"
PACKAGE = "jbig2dec"
_FILTER = pikepdf.Name("/JBIG2Decode")


def _jbig2_images(pdf: pikepdf.Pdf) -> list[tuple[int, pikepdf.Stream]]:
    """(page number, image) for each distinct JBIG2 image the pages draw directly."""
    found: list[tuple[int, pikepdf.Stream]] = []
    seen: set[tuple[int, int]] = set()
    for number, page in enumerate(pdf.pages, start=1):
        for image in page.get_images().values():
            filters = image.get("/Filter")
            if filters != _FILTER or image.objgen in seen:
                continue  # a JBIG2 stream behind another filter is left to the renderer
            seen.add(image.objgen)
            if isinstance(image, pikepdf.Stream):
                found.append((number, image))
    return found


def check_jbig2(pdf: pikepdf.Pdf, source: Path, work_dir: Path, timeout: float) -> int:
    """Decode every JBIG2 image of ``pdf``; return how many; raise CorruptInput on one that fails.

    Raises ToolMissing when the file has JBIG2 images and jbig2dec is not installed.
    """
    images = _jbig2_images(pdf)
    if not images:
        return 0
    program = tools.find(PROGRAM, package=PACKAGE)
    for index, (number, image) in enumerate(images):
        data = work_dir / f"jbig2-{index}"
        data.write_bytes(image.read_raw_bytes())
        argv = [program, "--embedded", "--format", "pbm", "--output", str(data) + ".pbm"]
        params = image.get("/DecodeParms")
        if isinstance(params, pikepdf.Dictionary) and "/JBIG2Globals" in params:
            globals_file = work_dir / f"jbig2-{index}.globals"
            globals_file.write_bytes(params.JBIG2Globals.read_bytes())
            argv.append(str(globals_file))
        argv.append(str(data))
        try:
            tools.run(argv, timeout=timeout, what="JBIG2 decoding")
        except ToolFailed as exc:
            # "JBIG2 decoding failed (exit status 1): jbig2dec FATAL ERROR ...": the first
            # of jbig2dec's lines says why.
            reason = exc.message.split(": ", 1)[-1].splitlines()[0]
            raise CorruptInput(
                f"The JBIG2 image on page {number} of {source.name!r} is damaged and cannot "
                f"be decoded ({reason}). Scan the page again."
            ) from None
        finally:
            data.unlink(missing_ok=True)
        Path(str(data) + ".pbm").unlink(missing_ok=True)
    return len(images)
