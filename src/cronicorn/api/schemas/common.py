"""Shared pieces of the schema layer: base models, time types, ids, the clock, error mapping."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from cronicorn.api.deps import Clock, get_clock
from cronicorn.api.errors import ApiError, envelope
from cronicorn.store.errors import Conflict, Invalid, NotFound, QuotaExceeded

MAX_INTERVAL_MS = 366 * 24 * 3600 * 1000  # a year: keeps every planned instant representable
MAX_TTL_MINUTES = 30 * 24 * 60


class In(BaseModel):
    """A request body: camelCase only, unknown fields rejected."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", populate_by_name=False)


class Out(BaseModel):
    """A response body: camelCase, every field present."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def iso_ms(value: datetime) -> str:
    # isoformat, not strftime: twice as fast (hot in every list response) and zero-pads years.
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


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


InDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A request timestamp: ISO-8601 (a date alone is midnight); without an offset it is UTC."""


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


_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def require_id(value: str, what: str) -> str:
    """Path ids that cannot exist are a 404 like any unknown id (not a 422 or a 500)."""
    if _ID.fullmatch(value) is None:
        raise ApiError(404, f"{what} not found")
    return value


def get_now(clock: Annotated[Clock, Depends(get_clock)]) -> datetime:
    """This request's "now", read once from the app's clock (`deps.set_clock` in tests)."""
    return clock()


NowDep = Annotated[datetime, Depends(get_now)]


def camel(field: str) -> str:
    """A snake_case field path as clients see it (`jobs.0.base_url` → `jobs.0.baseUrl`)."""
    return ".".join(to_camel(part) for part in field.split("."))


def install_error_mapping(app: FastAPI) -> None:
    """Map the store's typed errors to the one envelope (done once, for every router)."""

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return envelope(404, "not_found", f"{exc.what} not found")

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return envelope(409, "conflict", str(exc))

    @app.exception_handler(Invalid)
    async def _invalid(_: Request, exc: Invalid) -> JSONResponse:
        return invalid_response(exc.field, exc.message)

    @app.exception_handler(QuotaExceeded)
    async def _quota(_: Request, exc: QuotaExceeded) -> JSONResponse:
        details: dict[str, Any] = {"quota": exc.quota, "limit": exc.limit, "used": exc.used}
        if exc.resets_at is not None:
            details["resetsAt"] = iso_ms(exc.resets_at)
        return envelope(403, "quota_exceeded", exc.message, details)


def invalid_response(field: str, message: str, where: str = "body") -> JSONResponse:
    path = camel(field)
    details: list[dict[str, Any]] = [
        {"path": path, "in": where, "message": message, "type": "value_error"}
    ]
    return envelope(422, "validation_error", f"{message} at '{path}'", details)
