"""The journal's commands stay light: no engine is imported to list or cancel jobs."""

from __future__ import annotations

import subprocess
import sys


def test_status_cancel_retry_and_cleanup_import_no_engine() -> None:
    probe = (
        "import sys, hotfolder.cli, hotfolder.journal_commands; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pikepdf', 'PIL', 'pypdfium2', 'ocrmypdf', 'celery', 'img2pdf'}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"
