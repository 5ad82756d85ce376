"""Shared pieces of the schema layer: base models, time and text types, field paths.

Face-neutral: the REST API, the web dashboard, the MCP tools and the CLI all use these models,
so nothing here knows about HTTP (the API's clock and error mapping live in `api/`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

MAX_INTERVAL_MS = 366 * 24 * 3600 * 1000  # a year: keeps every planned instant representable
MAX_TTL_MINUTES = 30 * 24 * 60


class In(BaseModel):
    """A request body: camelCase only, unknown fields rejected, strict types (`"1000"` and
    `true` are not integers, `1` is not a boolean)."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", populate_by_name=False, strict=True
    )


T = TypeVar("T")


def _is_none(value: object) -> bool:
    return value is None


Absent = Annotated[T | None, Field(exclude_if=_is_none)]
"""An optional response field that is left out while unset, never `null` (the reference's
clients validate such fields as "may be absent" and reject `null`). Declare it `= None`."""


def _document_absent(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """In the JSON schema, an `Absent` field is optional (not `required`) and not nullable."""
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    for name, field in model.model_fields.items():
        key = field.serialization_alias or field.alias or name
        prop = properties.get(key)
        if field.exclude_if is not _is_none or prop is None:
            continue
        prop.pop("default", None)
        branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
        if len(branches) == 1:
            del prop["anyOf"]
            prop.update(branches[0])
        if key in required:
            required.remove(key)


class Out(BaseModel):
    """A response body: camelCase. Every field is sent (`null` when unset and nullable),
    except `Absent` fields, which are left out while unset."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        json_schema_serialization_defaults_required=True,
        json_schema_extra=_document_absent,
    )


def iso_ms(value: datetime) -> str:
    # %-formatting of the fields: a third cheaper than `isoformat(timespec="milliseconds")`
    # (which is twice as fast as strftime and zero-pads years too); up to 300 a runs page.
    v = value.astimezone(UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        v.year,
        v.month,
        v.day,
        v.hour,
        v.minute,
        v.second,
        v.microsecond // 1000,
    )


UtcDatetime = Annotated[
    datetime,
    PlainSerializer(iso_ms, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
"""A response timestamp, as JavaScript's `toISOString()` writes it."""


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not 1970 <= value.year <= 9000:  # checked first: converting year 1 could underflow
        raise ValueError("must be between the years 1970 and 9000")
    return value.astimezone(UTC)


def _text_only(value: object) -> object:
    # datetime objects only come from Python callers (a YAML import document), never JSON.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO-8601 date-time string")
    return value


InDatetime = Annotated[
    datetime, Strict(False), BeforeValidator(_text_only), AfterValidator(_as_utc)
]
"""A request timestamp: an ISO-8601 string (a date alone is midnight); without an offset it
is UTC. Numbers are refused (strict bodies), strings parsed (JSON has no date type)."""


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""Any request string: PostgreSQL cannot store NUL characters or lone surrogates, so they
are a 422 here rather than a database error."""


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


NonBlank = Annotated[Text, AfterValidator(_not_blank)]
"""A name: at least one character that is not white space."""


def json_without_nul(value: Any) -> Any:
    """JSON values (keys and strings, at any depth) without NUL characters."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def camel(field: str) -> str:
    """A snake_case field path as clients see it (`jobs.0.base_url` → `jobs.0.baseUrl`)."""
    return ".".join(to_camel(part) for part in field.split("."))
