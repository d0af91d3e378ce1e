"""An OCRmyPDF plugin that reports OCR progress per page to the running job.

OCRmyPDF shows progress through a progress-bar class that a plugin may supply
(hook ``get_progressbar_class``). This one draws nothing: it hands the pages
done so far to :func:`reporting`'s callback, which the pdf-ocr step points at
the job's progress channel. OCRmyPDF updates the bar in the thread that called
``ocrmypdf.ocr`` (threads, not processes, run its pages here), so one
module-level callback per worker process is enough: a worker runs one job at a
time, and OCRmyPDF itself runs one ``ocr`` call per process at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ocrmypdf import hookimpl

#: The stage OCRmyPDF names "OCR": one unit per page (its other stages, such as
#: "Scanning contents" or "Checking output", are not the pages a user waits for).
_OCR_STAGE = "OCR"

Report = Callable[[int, int], None]

_report: Report | None = None


@contextmanager
def reporting(report: Report) -> Iterator[None]:
    """Send ``report(pages_done, pages)`` whenever a page finishes, while in the block."""
    global _report
    _report = report
    try:
        yield
    finally:
        _report = None


class PageProgress:
    """A silent progress bar that counts OCRmyPDF's finished pages."""

    def __init__(
        self,
        *,
        total: float | None = None,
        desc: str | None = None,
        unit: str | None = None,
        disable: bool = False,
        **_: Any,
    ) -> None:
        self._pages = int(total or 0) if desc == _OCR_STAGE else 0
        self._done = 0.0
        self._reported = -1

    def __enter__(self) -> PageProgress:
        self._send()
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def update(self, n: float = 1, *, completed: float | None = None) -> None:
        """Advance by ``n`` units (OCRmyPDF reports half pages) or to ``completed``."""
        self._done = completed if completed is not None else self._done + n
        self._send()

    def _send(self) -> None:
        # Whole pages only: a half-grafted page is not done, and fewer messages
        # cross to the daemon.
        done = min(self._pages, math.floor(self._done + 1e-9))
        if self._pages and done != self._reported and _report is not None:
            self._reported = done
            _report(done, self._pages)


@hookimpl
def get_progressbar_class() -> type[PageProgress]:
    """OCRmyPDF hook: the progress-bar class to use (plugins registered later win)."""
    return PageProgress
