"""JSON objects written by PostgreSQL, for the API's hottest lists (issue 17).

Turning rows into Python values and those into JSON was about half of the API process's CPU
for `GET /api/jobs` and two thirds for a page of runs (`iso_ms` alone a quarter: three
timestamps a run). PostgreSQL writes the same text in C for a fraction of that, so these
lists select each item's JSON as one text column, built by `json_object` from a statement's
own columns: the statement still decides which rows, in which order, and the response
models keep deciding the shape (their tests compare the two byte for byte).

The text is what `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` writes:
`to_json` escapes strings as Python does (`\\"`, `\\\\`, `\\b\\f\\n\\r\\t`, other control
characters as `\\u00XX`, everything else as is), integers are their decimal text, times are
`toISOString()`'s (`schemas.common.iso_ms`: UTC, milliseconds truncated). An optional field
is left out when NULL, as the models' `Absent` fields are, never written as `null`.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Text, case, cast, func, literal_column, type_coerce
from sqlalchemy.sql.elements import ColumnElement

Kind = Literal["text", "int", "time"]
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
    parts: list[ColumnElement[str]] = []
    for i, field in enumerate(fields):
        if not _KEY.fullmatch(field.key):
            raise ValueError(f"not a plain JSON key: {field.key!r}")
        head = _literal(("{" if i == 0 else ",") + json.dumps(field.key) + ":")
        value = column(field.column)
        if field.optional:
            parts.append(case((value.is_(None), _literal("")), else_=head + _value(value, field)))
        else:  # a required field is never NULL; if it were, `null` keeps the JSON whole
            parts.append(head + func.coalesce(_value(value, field), _literal("null")))
    if not parts or fields[0].optional:
        raise ValueError("the first field must be required (it opens the object)")
    parts.append(_literal("}"))
    return functools.reduce(operator.add, parts)


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
