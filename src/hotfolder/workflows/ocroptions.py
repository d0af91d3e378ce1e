"""The options of pdf-ocr and scan-archive, and which Tesseract languages are installed.

An uninstalled language is an option error, so ``hotfolder check-config`` and
the daemon's start name it (with the installed ones and the package to add)
before any scan waits in a folder for a language that will never come.
"""

from __future__ import annotations

import functools
import re
import shutil
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from hotfolder import tools
from hotfolder.workflows.base import OptionSpec
from hotfolder.workflows.image import MAX_PIXELS
from hotfolder.workflows.pdf import PASSWORD, as_list
from hotfolder.workflows.repair import REPAIR_CHECKED

PROGRAM = "tesseract"
PACKAGE = "tesseract-ocr"
#: Tesseract's orientation and script model: installed as a language, not one.
_NOT_LANGUAGES = ("osd", "equ")
_LANGUAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@functools.cache
def installed_languages() -> tuple[str, ...] | None:
    """The languages Tesseract has data for, or None when Tesseract is not installed."""
    program = shutil.which(PROGRAM)
    if program is None:
        return None
    done = tools.run([program, "--list-langs"], timeout=60, what="Tesseract language list")
    lines = (done.stdout or done.stderr).decode("utf-8", "replace").splitlines()
    # The first line is a heading ("List of available languages in ...").
    found = {line.strip() for line in lines[1:] if _LANGUAGE.match(line.strip())}
    return tuple(sorted(found - set(_NOT_LANGUAGES)))


def _split_languages(value: Any) -> Any:
    # "eng+deu" is how Tesseract and OCRmyPDF's command line write several languages.
    value = as_list(value)
    if isinstance(value, list):
        return [part.strip() for item in value for part in str(item).split("+") if part.strip()]
    return value


def _check_languages(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("name at least one language, e.g. ['eng']")
    bad = [name for name in value if not _LANGUAGE.match(name)]
    if bad:
        raise ValueError(f"{', '.join(map(repr, bad))} is not a Tesseract language name")
    installed = installed_languages()
    if installed is None:
        return value  # the job fails tool_missing, which names the package to install
    missing = [name for name in value if name not in installed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{name.replace('_', '-').lower()}" for name in missing)
        raise ValueError(
            f"Tesseract has no data for {', '.join(missing)}; installed: "
            f"{', '.join(installed) or 'none'}. Install the language pack "
            f"(apt-get install {packages}) or choose an installed language"
        )
    return list(dict.fromkeys(value))


LANGUAGES = OptionSpec(
    "OCR.LANGUAGES",
    Annotated[list[str], BeforeValidator(_split_languages), AfterValidator(_check_languages)],
    ["eng"],
    "Tesseract languages of the text, most frequent first (a list, or 'eng+deu').",
)
MODE = OptionSpec(
    "OCR.MODE",
    Literal["skip", "redo", "force"],
    "skip",
    "skip: pages with text keep it and are not rasterised; redo: replace earlier OCR "
    "text, keep other text; force: rasterise every page and OCR it (text becomes image).",
)
DESKEW = OptionSpec("OCR.DESKEW", bool, True, "Straighten skewed scans (not in mode redo).")
ROTATE = OptionSpec("OCR.ROTATE", bool, True, "Turn pages upright by their detected orientation.")
ROTATE_CONFIDENCE = OptionSpec(
    "OCR.ROTATE_CONFIDENCE",
    Annotated[float, Field(ge=0, le=100)],
    8.0,
    "How sure Tesseract's orientation detection must be before a page is turned "
    "(OCRmyPDF's default is 14, which leaves many 150-dpi pages sideways); raise it if "
    "pages with little text get turned wrongly.",
)
CLEAN = OptionSpec(
    "OCR.CLEAN",
    bool,
    False,
    "Clean the image Tesseract reads with unpaper (speckles, borders); the page keeps "
    "its original image.",
)
OUTPUT = OptionSpec(
    "OCR.OUTPUT",
    Literal["pdfa-1b", "pdfa-2b", "pdfa-3b", "pdf"],
    "pdfa-2b",
    "PDF/A-1b, 2b or 3b (validated) or a plain PDF.",
)
SIDECAR = OptionSpec(
    "OCR.SIDECAR", bool, False, "Also write the recognised text as <name>.txt next to the PDF."
)
MAX_PAGES = OptionSpec(
    "OCR.MAX_PAGES",
    Annotated[int, Field(ge=1)],
    1000,
    "Refuse PDFs with more pages than this (too_large) instead of occupying a worker "
    "for hours; split larger scans first.",
)
OPTIONS: tuple[OptionSpec, ...] = (
    LANGUAGES,
    MODE,
    DESKEW,
    ROTATE,
    ROTATE_CONFIDENCE,
    CLEAN,
    OUTPUT,
    SIDECAR,
    MAX_PAGES,
    MAX_PIXELS,
    PASSWORD,
    REPAIR_CHECKED,
)
