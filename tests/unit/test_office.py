"""office-to-pdf on real LibreOffice: pages and text of every format, and each failure.

LibreOffice runs cost about a second each, so this module starts it nine times:
four to make the legacy and PPTX samples, one for every format at once, two in
parallel, one on a damaged file and one that is stopped by its timeout.
"""

from __future__ import annotations

import http.server
import logging
import os
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pikepdf
import pypdfium2
import pytest

from hotfolder.errors import HotfolderError
from hotfolder.workflows.base import StepContext, StepResult
from hotfolder.workflows.office import OFFICE_TO_PDF, engine_versions, run_soffice
from tests.samples import (
    docx_bytes,
    odf_bytes,
    ole_bytes,
    pdf_bytes,
    png_bytes,
    rtf_bytes,
    xlsx_bytes,
)

ODT = ["Odt one", "Odt two"]
ODS = ["Ods one", "Ods two"]
ODP = ["Odp one", "Odp two", "Odp three"]


def convert(
    tmp_path: Path, files: dict[str, bytes], job_name: str = "report", **options: Any
) -> StepResult:
    """Run and verify the step on ``files`` written below ``tmp_path``."""
    sources = tmp_path / "in"
    sources.mkdir(exist_ok=True)
    inputs = []
    for name, data in files.items():
        (sources / name).write_bytes(data)
        inputs.append(sources / name)
    out = tmp_path / "out"
    out.mkdir()
    ctx = StepContext(
        "job", job_name, OFFICE_TO_PDF.resolve_options("default", options), logging.getLogger("t")
    )
    (step,) = OFFICE_TO_PDF.steps
    result = step.run(inputs, out, ctx)
    step.verify(inputs, result, ctx)
    return result


def failure(tmp_path: Path, files: dict[str, bytes], **options: Any) -> HotfolderError:
    with pytest.raises(HotfolderError) as caught:
        convert(tmp_path, files, **options)
    return caught.value


def page_texts(path: Path) -> list[str]:
    document = pypdfium2.PdfDocument(path)
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """DOC, XLS, PPT and PPTX files that LibreOffice itself saved from ODF samples."""
    base = tmp_path_factory.mktemp("legacy")
    sources = {
        "doc": ("text.odt", odf_bytes("text", ODT)),
        "xls": ("sheets.ods", odf_bytes("spreadsheet", ODS)),
        "ppt": ("slides.odp", odf_bytes("presentation", ODP)),
        "pptx": ("slides.odp", odf_bytes("presentation", ODP)),
    }
    made: dict[str, bytes] = {}
    for target, (name, data) in sources.items():
        source = base / name
        source.write_bytes(data)
        scratch = base / f"scratch-{target}"
        scratch.mkdir()
        run_soffice([source], target, base / "made", scratch, timeout=120)
        made[target] = (base / "made" / f"{source.stem}.{target}").read_bytes()
    return made


@pytest.fixture
def web_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server; yields its base URL and the paths requested from it."""
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            self.send_error(404)

        do_OPTIONS = do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_every_format_in_one_run(
    tmp_path: Path, legacy: dict[str, bytes], web_server: tuple[str, list[str]]
) -> None:
    """Each supported format becomes a PDF with its pages and text, named after its file.

    The DOCX links a picture on a web server: LibreOffice must not fetch it.
    """
    url, requested = web_server
    files = {
        "letter.docx": docx_bytes(["Docx one", "Docx two"], image_url=f"{url}/tracker.png"),
        "text.odt": odf_bytes("text", ODT),
        "old letter.doc": legacy["doc"],
        "notes.rtf": rtf_bytes(["Rtf one", "Rtf two"]),
        "readme.txt": "Plain one\fPlain two ünïcödé\n".encode(),
        "sales.xlsx": xlsx_bytes(["Xlsx one", "Xlsx two"]),
        "sales.ods": odf_bytes("spreadsheet", ODS),
        "old sales.xls": legacy["xls"],
        "deck.pptx": legacy["pptx"],
        "deck.odp": odf_bytes("presentation", ODP),
        "old deck.ppt": legacy["ppt"],
    }
    result = convert(tmp_path, files)
    expected = {
        "letter.pdf": ["Docx one", "Docx two"],
        "text.pdf": ODT,
        "old letter.pdf": ODT,
        "notes.pdf": ["Rtf one", "Rtf two"],
        "readme.pdf": ["Plain one", "Plain two ünïcödé"],
        "sales.pdf": ["Xlsx one", "Xlsx two"],
        # Two inputs share the stem "sales"; the second output gets a suffix.
        "sales-2.pdf": ODS,
        "old sales.pdf": ODS,
        "deck.pdf": ODP,
        "deck-2.pdf": ODP,
        "old deck.pdf": ODP,
    }
    assert [path.name for path in result.outputs] == list(expected)
    for path, want in zip(result.outputs, expected.values(), strict=True):
        texts = page_texts(path)
        assert len(texts) == len(want), path.name
        for text, line in zip(texts, want, strict=True):
            assert line in text, (path.name, texts)
    assert result.facts["pages"] == [len(want) for want in expected.values()]
    assert "11 documents" in result.message
    assert requested == []
    # Nothing but the PDFs is left: profile, HOME and staged inputs are gone.
    assert sorted(p.name for p in result.outputs[0].parent.iterdir()) == sorted(expected)


def test_parallel_runs_odd_name_and_page_range(tmp_path: Path) -> None:
    """Two conversions at once each use their own profile; odd names and ranges work."""
    odd = "-draft ünï café"

    def first() -> StepResult:
        return convert(tmp_path / "a", {f"{odd}.docx": docx_bytes(["Only page"])}, job_name=odd)

    def second() -> StepResult:
        return convert(
            tmp_path / "b",
            {"slides.odp": odf_bytes("presentation", ODP)},
            **{"OFFICE.PAGE_RANGE": "2-"},
        )

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.submit(first), pool.submit(second)
        named, ranged = a.result(), b.result()
    (output,) = named.outputs
    assert output.name == f"{odd}.pdf"
    assert page_texts(output) == ["Only page"]
    assert "Word document (DOCX)" in named.message and "1 page(s)" in named.message
    assert page_texts(ranged.outputs[0]) == ["Odp two", "Odp three"]


def test_damaged_document_is_corrupt_input(tmp_path: Path) -> None:
    """A DOCX whose body is garbage: LibreOffice cannot load it, the job says why."""
    broken = docx_bytes([], body=os.urandom(2000).hex())
    error = failure(tmp_path, {"broken.docx": broken})
    assert error.code == "corrupt_input"
    assert "'broken.docx'" in error.message and "damaged" in error.message


def test_timeout_stops_libreoffice(tmp_path: Path) -> None:
    """OFFICE.TIMEOUT stops the run and leaves no LibreOffice process behind."""
    error = failure(tmp_path, {"a.docx": docx_bytes(["x"])}, **{"OFFICE.TIMEOUT": 0.01})
    assert error.code == "timeout"
    assert "OFFICE.TIMEOUT" in error.message
    marker = str(tmp_path).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            assert marker not in cmdline, cmdline


def _word_fib(flags: int) -> bytes:
    # FibBase: wIdent, nFib, unused, lid, pnNext, then the flag word.
    return struct.pack("<HHHHHH", 0xA5EC, 0xC1, 0, 0x409, 0, flags)


_BOF = struct.pack("<HH", 0x0809, 16) + bytes(16)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "corrupt_input"),
        (png_bytes(), "unsupported_format"),
        (pdf_bytes(), "unsupported_format"),
        (b"\x00\x01binary\x00data", "unsupported_format"),
        ("café in Latin-1".encode("latin-1"), "unsupported_format"),
        (odf_bytes("graphics", ["a drawing"]), "unsupported_format"),
        (ole_bytes({"__substg1.0_0037001F": b"an Outlook message"}), "unsupported_format"),
        (docx_bytes(["x"])[:300], "corrupt_input"),
        (bytes.fromhex("D0CF11E0A1B11AE1") + os.urandom(3000), "corrupt_input"),
        (ole_bytes({"EncryptionInfo": b"\x04\x00", "EncryptedPackage": b"x"}), "password_required"),
        (odf_bytes("text", ["secret"], encrypted=True), "password_required"),
        (ole_bytes({"WordDocument": _word_fib(0x0100), "1Table": b""}), "password_required"),
        (
            ole_bytes({"Workbook": _BOF + struct.pack("<HH", 0x2F, 4) + bytes(4)}),
            "password_required",
        ),
        (
            ole_bytes(
                {
                    "PowerPoint Document": b"x",
                    "Current User": struct.pack("<HHIII", 0, 0x0FF6, 20, 20, 0xF3D1C4DF),
                }
            ),
            "password_required",
        ),
    ],
)
def test_detection_failures(tmp_path: Path, data: bytes, code: str) -> None:
    """Inputs refused before LibreOffice runs, each with its own code and a hint."""
    error = failure(tmp_path, {"input.docx": data})
    assert error.code == code
    assert "'input.docx'" in error.message
    if code == "password_required":
        assert "password" in error.message


def test_soffice_missing_is_tool_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without soffice on PATH the job fails with tool_missing naming the package."""
    monkeypatch.setenv("PATH", str(tmp_path))
    error = failure(tmp_path, {"a.docx": docx_bytes(["x"])})
    assert error.code == "tool_missing"
    assert "libreoffice-writer-nogui" in error.message


def test_missing_calc_module_is_tool_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LibreOffice with Writer but without Calc: a spreadsheet names the package to install."""
    program = tmp_path / "program"
    program.mkdir()
    fake = program / "soffice"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    (program / "libswlo.so").write_bytes(b"")
    monkeypatch.setenv("PATH", str(program))
    error = failure(tmp_path, {"a.xlsx": xlsx_bytes(["x"])})
    assert error.code == "tool_missing"
    assert "libreoffice-calc-nogui" in error.message


def test_verify_refuses_pdf_without_the_text(tmp_path: Path) -> None:
    """An input with text whose PDF has none is not published (tool_failed)."""
    blank = tmp_path / "blank.pdf"
    with pikepdf.new() as pdf:
        pdf.add_blank_page()
        pdf.save(blank)
    ctx = StepContext(
        "job", "report", OFFICE_TO_PDF.resolve_options("default", {}), logging.getLogger("t")
    )
    (step,) = OFFICE_TO_PDF.steps
    result = StepResult([blank], "", {"pages": [1], "expect_text": [True]})
    with pytest.raises(HotfolderError) as caught:
        step.verify([tmp_path / "a.docx"], result, ctx)
    assert caught.value.code == "tool_failed"
    step.verify(
        [tmp_path / "a.docx"], StepResult([blank], "", {"pages": [1], "expect_text": [False]}), ctx
    )
    with pytest.raises(HotfolderError):
        step.verify([], StepResult([blank], "", {"pages": [2], "expect_text": [False]}), ctx)


@pytest.mark.parametrize(
    ("options", "valid"),
    [
        ({"OFFICE.PAGE_RANGE": "1-3, 7"}, True),
        ({"OFFICE.PAGE_RANGE": "2-"}, True),
        ({"OFFICE.PAGE_RANGE": "first"}, False),
        ({"OFFICE.PAGE_RANGE": "1;2"}, False),
        ({"OFFICE.TIMEOUT": 0}, False),
        ({"OFFICE.TIMEOUT": "soon"}, False),
    ],
)
def test_option_validation(options: dict[str, Any], valid: bool) -> None:
    """Option values are checked when the folder is configured."""
    if valid:
        OFFICE_TO_PDF.resolve_options("default", options)
    else:
        with pytest.raises(HotfolderError) as caught:
            OFFICE_TO_PDF.resolve_options("default", options)
        assert caught.value.code == "option_invalid"


def test_engine_versions() -> None:
    """The LibreOffice version comes from soffice --version."""
    assert engine_versions()["libreoffice"].startswith("LibreOffice ")
