"""Every problem of a config file in one pass, each under its key, with suggestions.

pydantic reports all schema errors at once, but everything that needs valid settings
(unique names, path layout, the workflow registry) used to run only once the schema
passed, so an operator fixed a config in rounds. This leaf turns pydantic's errors
into ``(key, message)`` problems and salvages what did validate: a bad value is
dropped (its default stands in) and an entry that lacks a required key is left out,
so that the later checks still see every other value.
"""

from __future__ import annotations

import copy
import difflib
import typing
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

Problem = tuple[str, str]
Loc = tuple[int | str, ...]

#: Top-level arrays of tables whose entries are named in keys: ``folders[2](scans)``.
LISTS: tuple[str, ...] = ("folders", "workflows")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the known name closest to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def entry_key(table: str, index: int, name: object) -> str:
    """The key of one entry of an array of tables: ``folders[2](scans)``."""
    return f"{table}[{index}]({name})" if isinstance(name, str) and name else f"{table}[{index}]"


def key_of(loc: Loc, data: dict[str, Any]) -> str:
    """The dotted key of a pydantic error location, entries named as in the file."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int) and parts:
            name = None
            entries = data.get(str(loc[0]))
            if len(parts) == 1 and isinstance(entries, list) and item < len(entries):
                entry = entries[item]
                name = entry.get("name") if isinstance(entry, dict) else None
            parts[-1] = entry_key(parts[-1], item, name)
        else:
            parts.append(str(item))
    return ".".join(parts)


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _table_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model of the table at ``loc`` (list indices skipped), if there is one."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field is not None else None
    return model


def _message(error: ErrorDetails, root: type[BaseModel], hidden: Collection[str]) -> str:
    if error["type"] != "extra_forbidden":
        return error["msg"]
    table = _table_at(root, error["loc"][:-1])
    known = [name for name in (table.model_fields if table else ()) if name not in hidden]
    hint = did_you_mean(str(error["loc"][-1]), known)
    if hint or not known:
        return "unknown key" + hint
    return "unknown key; known keys here: " + ", ".join(known)


def schema_problems(
    errors: Sequence[ErrorDetails],
    data: dict[str, Any],
    root: type[BaseModel],
    hidden: Collection[str] = (),
) -> list[Problem]:
    """Key and explain each pydantic error; ``hidden`` fields are never suggested."""
    return [(key_of(err["loc"], data), _message(err, root, hidden)) for err in errors]


def _delete(data: dict[str, Any], loc: Loc) -> None:
    node: Any = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict):
        node.pop(loc[-1], None)


def salvage(
    data: dict[str, Any], errors: Sequence[ErrorDetails]
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """A copy of ``data`` without what failed, and each list's surviving entry indices.

    A value that failed is removed, so its default stands in. An entry of
    ``[[folders]]`` or ``[[workflows]]`` that lacks a required key (or is no table) is
    left out whole; the indices let later checks still key problems as in the file.
    """
    pruned = copy.deepcopy(data)
    dropped: dict[str, set[int]] = {table: set() for table in LISTS}
    for error in errors:
        loc = error["loc"]
        if not loc:
            continue
        if loc[0] in dropped and len(loc) >= 2 and isinstance(loc[1], int):
            if len(loc) == 2 or error["type"] == "missing":
                dropped[str(loc[0])].add(loc[1])
            else:
                _delete(pruned, loc[:3])
        else:
            _delete(pruned, loc[:2])
    kept: dict[str, list[int]] = {}
    for table in LISTS:
        entries = pruned.get(table)
        count = len(entries) if isinstance(entries, list) else 0
        kept[table] = [index for index in range(count) if index not in dropped[table]]
        if isinstance(entries, list):
            pruned[table] = [entries[index] for index in kept[table]]
    return pruned, kept
