"""Ghostscript's PDF/A conversion: the command line, the definition file, the ICC profile.

Ghostscript re-renders a document (fonts embedded or substituted, colours
converted), which pikepdf's lossless path cannot do. It runs only through
:func:`hotfolder.tools.run`. Its PDF/A mode needs a PostScript "definition"
file that installs an ICC OutputIntent; without one Ghostscript still labels
the output PDF/A while it is not, and it exits 0 in that case as in several
other failure modes. Callers must therefore validate what it wrote.

Ghostscript 10.0.0 up to 10.02.0 (Debian 12 ships 10.0.0) corrupt existing
text in some files; :func:`is_text_corrupting` names those releases so that
callers compare the text before and after.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Sequence
from pathlib import Path

from hotfolder import tools
from hotfolder.errors import ToolFailed

PROGRAM = "gs"
PACKAGE = "ghostscript"

#: Where distributions install Ghostscript's ICC profiles: Debian and Ubuntu
#: move them to a shared colour directory; others keep them below the
#: versioned (or unversioned) share directory.
_PROFILE_DIRS = ("color/icc/ghostscript", "ghostscript/*/iccprofiles", "ghostscript/iccprofiles")
_SHARE_ROOTS = (Path("/usr/share"), Path("/usr/local/share"))

#: Ghostscript says these when PDF/A processing went wrong, yet exits 0.
_ABORTED = ("PDF/A processing aborted", "Failed to open the supplied ICCProfile")

#: Text-corrupting releases, inclusive (OCRmyPDF refuses them for the same reason).
_BAD_TEXT_RELEASES = ((10, 0, 0), (10, 2, 0))

_MAX_WARNINGS = 5

#: Ghostscript 10.0 says "Text string detected in DOCINFO cannot be represented in XMP
#: for PDF/A1, discarding DOCINFO" whatever the PDF/A part, and drops only the entries
#: whose text it cannot copy into the XMP metadata: callers say which ones went.
DOCINFO_DROPPED = "Text string detected in DOCINFO"

_PART_1 = re.compile(r"PDF/A-?1(?![0-9])")


def _about_part(message: str, part: int) -> bool:
    """False for a message about PDF/A-1 only (another part's rules) on a part 2 or 3 job."""
    return part == 1 or DOCINFO_DROPPED in message or not _PART_1.search(message)


def version() -> str:
    """The installed Ghostscript's version (``10.00.0``), ``missing`` or ``unknown``."""
    return tools.version(PROGRAM, "--version")


def parse_version(text: str) -> tuple[int, ...] | None:
    """``"10.02.1"`` -> ``(10, 2, 1)``; None when ``text`` is not a version."""
    if not re.fullmatch(r"\d+(\.\d+)*", text.strip()):
        return None
    return tuple(int(part) for part in text.strip().split("."))


def is_text_corrupting(text: str) -> bool:
    """True for the Ghostscript releases known to corrupt existing text (10.0.0-10.02.0)."""
    parsed = parse_version(text)
    if parsed is None:
        return False
    padded = (*parsed, 0, 0, 0)[:3]
    low, high = _BAD_TEXT_RELEASES
    return low <= padded <= high


def _version_key(path: Path) -> tuple[int, ...]:
    # .../ghostscript/10.02.1/iccprofiles/srgb.icc: prefer the newest version directory.
    for part in reversed(path.parts):
        parsed = parse_version(part)
        if parsed is not None:
            return parsed
    return ()


def find_srgb_profile(gs_path: str | None = None, roots: Sequence[Path] = _SHARE_ROOTS) -> Path:
    """Return an sRGB ICC profile (version 2, fit for PDF/A-1 to 3) for the OutputIntent.

    Ghostscript's own ``srgb.icc`` is preferred, looked up below the share
    directory next to ``gs_path`` and below ``roots`` in every layout that
    distributions use; pikepdf's bundled sRGB profile is the fallback.
    """
    search = list(roots)
    if gs_path:
        share = Path(gs_path).resolve().parent.parent / "share"
        if share not in search:
            search.insert(0, share)
    for root in search:
        for pattern in _PROFILE_DIRS:
            found = sorted(root.glob(f"{pattern}/srgb.icc"), key=_version_key, reverse=True)
            for candidate in found:
                if candidate.is_file():
                    return candidate.resolve()
    bundled = importlib.resources.files("pikepdf.pdfa") / "data" / "sRGB.icc"
    return Path(str(bundled)).resolve()


def _ps_string(text: str) -> str:
    # A PostScript literal string: backslash and parentheses must be escaped.
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"({escaped})"


def write_definition(path: Path, profile: Path) -> Path:
    """Write the PostScript file that gives Ghostscript's PDF/A output its OutputIntent.

    It embeds ``profile`` (an RGB profile, hence ``/N 3``) as the document's
    sRGB OutputIntent. The file must be passed by absolute path: a relative
    name is looked up on Ghostscript's library path first and would load the
    stock sample, which points at a relative ``srgb.icc``.
    """
    lines = [
        "%!",
        "% hotfolder: PDF/A OutputIntent definition for Ghostscript's pdfwrite.",
        f"/HotfolderICC {_ps_string(str(profile))} def",
        "[/_objdef {hotfolder_icc} /type /stream /OBJ pdfmark",
        "[{hotfolder_icc} << /N 3 >> /PUT pdfmark",
        "[{hotfolder_icc} HotfolderICC (r) file /PUT pdfmark",
        "[/_objdef {hotfolder_intent} /type /dict /OBJ pdfmark",
        "[{hotfolder_intent} <<",
        "  /Type /OutputIntent",
        "  /S /GTS_PDFA1",
        "  /DestOutputProfile {hotfolder_icc}",
        "  /OutputConditionIdentifier (sRGB)",
        "  /Info (sRGB IEC61966-2.1)",
        ">> /PUT pdfmark",
        "[{Catalog} << /OutputIntents [ {hotfolder_intent} ] >> /PUT pdfmark",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path.resolve()


def pdfa_argv(
    gs: str, part: int, profile: Path, definition: Path, source: Path, target: Path
) -> list[str]:
    """The Ghostscript command line that writes ``target`` as PDF/A-``part``."""
    return [
        gs,
        "-q",
        "-dSAFER",
        "-dBATCH",
        "-dNOPAUSE",
        # Fail on damaged content instead of writing a page with parts missing.
        "-dPDFSTOPONERROR",
        "-sDEVICE=pdfwrite",
        f"-dPDFA={part}",
        # 1 = drop what PDF/A forbids (with a warning) and stay PDF/A; 0 would keep
        # it and write a file that only claims to be PDF/A.
        "-dPDFACompatibilityPolicy=1",
        "-sColorConversionStrategy=RGB",
        # Keep page orientation as it is; pdfwrite otherwise guesses it from the text.
        "-dAutoRotatePages=/None",
        # -dSAFER forbids reading the profile unless it is named here.
        f"--permit-file-read={profile}",
        f"-sOutputFile={target}",
        str(definition),
        str(source),
    ]


def _messages(output: str) -> list[str]:
    """Ghostscript's warnings, one per message (continuation lines joined)."""
    joined: list[str] = []
    for line in output.splitlines():
        if line[:1].isspace() and joined:
            joined[-1] += " " + line.strip()
        elif line.strip():
            joined.append(line.strip())
    messages = []
    for message in joined:
        text = re.sub(r"^GPL Ghostscript [\d.]+:\s*", "", message)
        text = re.sub(r"^\*+\s*", "", text)
        if text and text not in messages:
            messages.append(text)
    return messages


def convert_to_pdfa(
    source: Path, target: Path, part: int, *, work_dir: Path, timeout: float
) -> list[str]:
    """Run Ghostscript to write ``target`` (PDF/A-``part``) from an unencrypted ``source``.

    The definition file goes into ``work_dir``. Returns Ghostscript's warnings
    (features PDF/A forbids and that were dropped). Raises ToolMissing,
    JobTimeout or ToolFailed. The output is not validated here.
    """
    gs = tools.find(PROGRAM, package=PACKAGE)
    profile = find_srgb_profile(gs)
    definition = write_definition(work_dir / "hotfolder_pdfa_def.ps", profile)
    done = tools.run(
        pdfa_argv(gs, part, profile, definition, source.resolve(), target.resolve()),
        timeout=timeout,
        what="Ghostscript PDF/A conversion",
    )
    output = (done.stdout + b"\n" + done.stderr).decode("utf-8", "replace")
    messages = _messages(output)
    if any(marker in output for marker in _ABORTED):
        raise ToolFailed(
            f"Ghostscript could not read the ICC profile {profile.name!r} and aborted PDF/A "
            "processing; the file was not published. Check that Ghostscript's ICC "
            f"profiles are installed and readable ({messages[0] if messages else 'no detail'})."
        )
    if not target.is_file() or target.stat().st_size == 0:
        detail = "; ".join(messages[:2]) or "no error output"
        raise ToolFailed(f"Ghostscript wrote no PDF/A file ({detail}).")
    messages = [message for message in messages if _about_part(message, part)]
    if len(messages) > _MAX_WARNINGS:
        extra = len(messages) - _MAX_WARNINGS
        messages = [*messages[:_MAX_WARNINGS], f"... and {extra} more Ghostscript warning(s)"]
    return [f"Ghostscript: {message}" for message in messages]
