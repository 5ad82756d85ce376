"""Hints from the endpoint page: an interval for a while, or one extra run, read into the
API's own `IntervalHintIn` / `OneshotHintIn` and set through `services.hints` (the functions
behind `POST /api/endpoints/{id}/hints/…`), so the bounds and rules are the API's. Errors come
back keyed by the page's form fields. Intervals are entered in seconds, delays and TTLs in
minutes (the API takes milliseconds and minutes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain import Quotas
from cronicorn.schemas.endpoints import IntervalHintIn, OneshotHintIn
from cronicorn.services import hints
from cronicorn.store.errors import Invalid
from cronicorn.web.forms import Errors, FieldError, int_or_none, model_errors, text_or_none

INTERVAL_FIELDS = ("hint_interval_s", "hint_ttl_min", "hint_reason")
ONESHOT_FIELDS = ("oneshot_in_min", "oneshot_ttl_min", "oneshot_reason")
# API field -> the page's form field, per form
INTERVAL_FORM = {
    "interval_ms": "hint_interval_s",
    "ttl_minutes": "hint_ttl_min",
    "reason": "hint_reason",
}
ONESHOT_FORM = {
    "next_run_in_ms": "oneshot_in_min",
    "next_run_at": "oneshot_in_min",
    "ttl_minutes": "oneshot_ttl_min",
    "reason": "oneshot_reason",
}


def _minutes(form: dict[str, str], name: str) -> int | None:
    """A TTL in whole minutes, or None when blank."""
    try:
        return int_or_none(form, name)
    except FieldError as exc:
        if exc.message.startswith("must be a whole"):
            raise FieldError(name, "must be a whole number of minutes") from None
        raise


def _errors(exc: ValidationError, model: type[BaseModel], fields: dict[str, str]) -> Errors:
    first = next(iter(fields.values()))
    return {fields.get(k, first): v for k, v in model_errors(exc, model).items()}


def _read(
    body: dict[str, Any], model: type[BaseModel], fields: dict[str, str]
) -> tuple[Any, Errors]:
    try:
        return model.model_validate(body), {}
    except ValidationError as exc:
        return None, _errors(exc, model, fields)


def read_interval(form: dict[str, str]) -> tuple[IntervalHintIn | None, Errors]:
    try:
        ttl = _minutes(form, "hint_ttl_min")
        body: dict[str, Any] = {
            "intervalMs": int_or_none(form, "hint_interval_s", scale=1000),
            "ttlMinutes": 60 if ttl is None else ttl,
            "reason": text_or_none(form, "hint_reason"),
        }
    except FieldError as exc:
        return None, {exc.field: exc.message}
    if body["intervalMs"] is None:
        return None, {"hint_interval_s": "enter an interval in seconds"}
    parsed, errors = _read(body, IntervalHintIn, INTERVAL_FORM)
    return parsed, errors


def read_oneshot(form: dict[str, str]) -> tuple[OneshotHintIn | None, Errors]:
    try:
        body: dict[str, Any] = {
            "nextRunInMs": int_or_none(form, "oneshot_in_min", scale=60_000),
            "ttlMinutes": _minutes(form, "oneshot_ttl_min"),
            "reason": text_or_none(form, "oneshot_reason"),
        }
    except FieldError as exc:
        return None, {exc.field: exc.message}
    if body["nextRunInMs"] is None:
        return None, {"oneshot_in_min": "enter how many minutes from now it should run"}
    parsed, errors = _read(body, OneshotHintIn, ONESHOT_FORM)
    return parsed, errors


async def set_interval(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    body: IntervalHintIn,
    now: datetime,
    *,
    quotas: Quotas,
) -> Errors:
    """Set it; the endpoint's bounds (min/max, the interval quota) refused by field."""
    try:
        await hints.interval_hint(conn, user_id, endpoint_id, body, now, quotas=quotas)
    except Invalid as exc:
        return {INTERVAL_FORM.get(exc.field, "hint_interval_s"): exc.message}
    return {}


async def set_oneshot(
    conn: AsyncConnection, user_id: str, endpoint_id: str, body: OneshotHintIn, now: datetime
) -> Errors:
    try:
        await hints.oneshot_hint(conn, user_id, endpoint_id, body, now)
    except Invalid as exc:
        return {ONESHOT_FORM.get(exc.field, "oneshot_in_min"): exc.message}
    return {}


HintKind = Literal["interval", "oneshot"]


async def submit(
    kind: HintKind,
    form: dict[str, str],
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    now: datetime,
    *,
    quotas: Quotas,
) -> tuple[Errors, dict[str, str]]:
    """Read and set one of the page's two hint forms; on errors, also the values to show
    again (the interval form beside a failed one-shot keeps its default TTL of 60 minutes)."""
    if kind == "interval":
        interval, errors = read_interval(form)
        if interval is not None:
            errors = await set_interval(conn, user_id, endpoint_id, interval, now, quotas=quotas)
        return errors, {k: form.get(k, "") for k in INTERVAL_FIELDS}
    oneshot, errors = read_oneshot(form)
    if oneshot is not None:
        errors = await set_oneshot(conn, user_id, endpoint_id, oneshot, now)
    values = {k: form.get(k, "") for k in ONESHOT_FIELDS}
    values.setdefault("hint_ttl_min", "60")
    return errors, values
