"""Page-range options shared by the steps that pick pages (render, split).

A range text lists pages and ranges separated by commas: ``"1-3,7"``, ``"2, 5-"``
(``5-`` runs to the last page). The empty text means every page. Pages are
counted from 1, as every PDF viewer shows them.
"""

from __future__ import annotations

import re

from hotfolder.errors import OptionInvalid

_PART = re.compile(r"^(\d+)(?:\s*(-)\s*(\d*))?$")


def parse_page_ranges(
    text: str, page_count: int, *, option: str = "The page range"
) -> list[tuple[int, int]]:
    """Return the ranges of ``text`` as 1-based inclusive ``(first, last)`` pairs, in order.

    ``""`` (or only blanks) gives ``[(1, page_count)]``. Raises OptionInvalid, naming
    ``option`` and the document's page count, for a malformed part, a page below 1 or
    beyond ``page_count``, or a range that runs backwards.
    """
    if not text.strip():
        return [(1, page_count)]
    ranges: list[tuple[int, int]] = []
    for raw in text.split(","):
        part = raw.strip()
        match = _PART.match(part)
        if match is None:
            raise OptionInvalid(
                f"{option} {text!r} has a part {part!r} that is not a page or a range; "
                'write pages and ranges separated by commas, like "1-3,7" or "5-".'
            )
        first = int(match.group(1))
        if match.group(2) is None:
            last = first
        else:
            last = int(match.group(3)) if match.group(3) else page_count
        if first < 1 or last > page_count or first > page_count:
            raise OptionInvalid(
                f"{option} {text!r} asks for page(s) {part} but the document has "
                f"{page_count} page(s); use pages 1 to {page_count}."
            )
        if last < first:
            raise OptionInvalid(
                f"{option} {text!r} has a backwards range {part!r}; write the lower page first."
            )
        ranges.append((first, last))
    return ranges


def page_numbers(ranges: list[tuple[int, int]]) -> list[int]:
    """Every page the ranges name, in the order given, each page once."""
    seen: dict[int, None] = {}
    for first, last in ranges:
        for number in range(first, last + 1):
            seen.setdefault(number, None)
    return list(seen)
