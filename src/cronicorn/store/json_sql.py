"""JSON objects written by PostgreSQL, for the API's hottest lists (issue 17).

Turning rows into Python values and those into JSON was about half of the API process's CPU
for `GET /api/jobs` (a job's endpoints alike) and two thirds for a page of runs (`iso_ms`
alone a quarter: three timestamps a run). PostgreSQL writes the same text in C for a
fraction of that, so these lists select each item's JSON as one text column, built by
`json_object` from a statement's own columns: the statement still decides which rows, in
which order, and the response models keep deciding the shape (their tests compare the two
byte for byte).

The text is what `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` writes:
`to_json` escapes strings as Python does (`\\"`, `\\\\`, `\\b\\f\\n\\r\\t`, other control
characters as `\\u00XX`, everything else as is), integers are their decimal text, times are
`toISOString()`'s (`schemas.common.iso_ms`: UTC, milliseconds truncated). An optional field
is left out when NULL, as the models' `Absent` fields are, never written as `null`.
A `json` field (a JSONB column holding any JSON value) is the one thing PostgreSQL does not
write: its text spaces keys and values and spells numbers its own way, so `json_parts`
selects it as a value between the text pieces and `joined` splices in pydantic's JSON of it.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic_core import to_json
from sqlalchemy import Text, case, cast, func, literal_column, type_coerce
from sqlalchemy.sql.elements import ColumnElement

Kind = Literal["text", "int", "time", "json"]
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# toISOString(): `to_char`'s MS is the milliseconds truncated, as `iso_ms`'s `// 1000`.
_ISO_MS = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'


@dataclass(frozen=True)
class JsonField:
    key: str  # the JSON key, as the response model's alias spells it
    column: str  # the statement's column
    kind: Kind
    optional: bool = False  # left out when NULL


def json_object(
    fields: Sequence[JsonField], column: Callable[[str], ColumnElement[Any]]
) -> ColumnElement[str]:
    """One row's JSON object as text, from the columns `column` names (a statement's
    `selected_columns.__getitem__`, or `literal_column`s of a text statement)."""
    if any(field.kind == "json" for field in fields):
        raise ValueError("a json field is written by `joined`: use `json_parts`")
    return json_parts(fields, column)[0]


def json_parts(
    fields: Sequence[JsonField], column: Callable[[str], ColumnElement[Any]]
) -> list[ColumnElement[Any]]:
    """The columns of one row's JSON object: text written by PostgreSQL, and between its
    pieces each `json` field's own value, which `joined` serializes as pydantic does (the
    server's JSON text is spaced and writes numbers its own way)."""
    if not fields or fields[0].optional or fields[0].kind == "json":
        raise ValueError("the first field must be required and not json (it opens the object)")
    parts: list[ColumnElement[Any]] = []
    pending: list[ColumnElement[str]] = []
    for i, field in enumerate(fields):
        if not _KEY.fullmatch(field.key):
            raise ValueError(f"not a plain JSON key: {field.key!r}")
        value = column(field.column)
        if field.kind == "json":
            parts += [_joined_text(pending), value]
            pending = []
            continue
        head = _literal(("{" if i == 0 else ",") + json.dumps(field.key) + ":")
        if field.optional:
            pending.append(case((value.is_(None), _literal("")), else_=head + _value(value, field)))
        else:  # a required field is never NULL; if it were, `null` keeps the JSON whole
            pending.append(head + func.coalesce(_value(value, field), _literal("null")))
    parts.append(_joined_text([*pending, _literal("}")]))
    return parts


def joined(row: Sequence[Any], fields: tuple[JsonField, ...]) -> str:
    """The JSON object of one row of `json_parts`' columns."""
    out = [row[0]]
    for n, (head, optional) in enumerate(_json_heads(fields)):
        value = row[2 * n + 1]
        if value is not None or not optional:
            out += (head, to_json(value).decode())
        out.append(row[2 * n + 2])
    return "".join(out)


@functools.cache
def _json_heads(fields: tuple[JsonField, ...]) -> tuple[tuple[str, bool], ...]:
    """Each `json` field's `,"key":` and whether it is optional (once per field list)."""
    return tuple((f",{json.dumps(f.key)}:", f.optional) for f in fields if f.kind == "json")


def _joined_text(pieces: list[ColumnElement[str]]) -> ColumnElement[str]:
    return functools.reduce(operator.add, pieces) if pieces else _literal("")


def _value(value: ColumnElement[Any], field: JsonField) -> ColumnElement[str]:
    if field.kind == "text":
        return cast(func.to_json(value), Text)
    if field.kind == "int":
        return cast(value, Text)
    utc = func.timezone(_literal("UTC"), value)
    return _literal('"') + func.to_char(utc, _literal(_ISO_MS)) + _literal('"')


def _literal(text: str) -> ColumnElement[str]:
    """A string constant written into the SQL (no bound parameter; never user input)."""
    return type_coerce(literal_column("'" + text.replace("'", "''") + "'"), Text)
