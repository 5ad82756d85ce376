"""The "Notifications" part of the job and endpoint forms: which of the viewer's channels
hear about failures, recoveries, reminders and slow runs, read into the API's own
`NotifySettings` (so a page accepts exactly what `PUT /api/jobs/{id}/notify` accepts) and
saved through `notify.service.set_notify`, the function behind that route.

A job with no channel ticked has no subscription. An endpoint either inherits its job's
settings (stored as null) or has its own; its own settings with no channel ticked silence it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.notify import service
from cronicorn.schemas.notify import NotifySettings
from cronicorn.store import channels as channel_store
from cronicorn.store.errors import Invalid
from cronicorn.web.forms import Errors, FieldError, model_errors

CHANNEL_FIELD = "notify_channel"  # one checkbox per channel, repeated
# NotifySettings field -> the form field that shows its error
FORM_FIELD = {
    "channels": CHANNEL_FIELD,
    "on_failure_after": "notify_failure_after",
    "on_recovery": "notify_recovery",
    "reminder_hours": "notify_reminder_hours",
    "slower_than_ms": "notify_slower_than_ms",
}
MODES = (
    ("inherit", "Use the job's notifications"),
    ("own", "Use these settings for this endpoint"),
)
DEFAULTS = {
    "notify_mode": "inherit",
    "notify_failure_after": "1",
    "notify_recovery": "on",
    "notify_reminder_hours": "0",
    "notify_slower_than_ms": "",
}


def notify_values(stored: dict[str, Any] | None) -> dict[str, Any]:
    """The form's notification fields for stored settings (None: the defaults)."""
    if stored is None:
        return {**DEFAULTS, CHANNEL_FIELD: []}
    slower = stored.get("slowerThanMs")
    return {
        "notify_mode": "own",
        CHANNEL_FIELD: list(stored.get("channels", [])),
        "notify_failure_after": str(stored.get("onFailureAfter", 1)),
        "notify_recovery": "on" if stored.get("onRecovery", True) else "",
        "notify_reminder_hours": _number_text(stored.get("reminderHours", 0)),
        "notify_slower_than_ms": "" if slower is None else str(slower),
    }


def posted_values(form: dict[str, str], channels: list[str]) -> dict[str, Any]:
    """The notification fields as posted, to show the form again after an error."""
    values: dict[str, Any] = {k: form.get(k, "") for k in DEFAULTS}
    values["notify_mode"] = values["notify_mode"] or "inherit"
    values[CHANNEL_FIELD] = channels
    return values


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _number(form: dict[str, str], name: str, default: float | None) -> float | None:
    raw = form.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise FieldError(name, "must be a number") from None


def _whole(form: dict[str, str], name: str, default: int | None) -> int | None:
    value = _number(form, name, default)
    if value is None:
        return None
    if not float(value).is_integer():
        raise FieldError(name, "must be a whole number")
    return int(value)


def read_notify(
    form: dict[str, str], channels: list[str], *, endpoint: bool
) -> tuple[dict[str, Any] | None, Errors]:
    """(the settings to store, None to clear them; errors by form field)."""
    if endpoint and form.get("notify_mode", "inherit") != "own":
        return None, {}
    if not endpoint and not channels:
        return None, {}
    try:
        body = {
            "channels": channels,
            "onFailureAfter": _whole(form, "notify_failure_after", 1),
            "onRecovery": bool(form.get("notify_recovery")),
            "reminderHours": _number(form, "notify_reminder_hours", 0.0),
            "slowerThanMs": _whole(form, "notify_slower_than_ms", None),
        }
    except FieldError as exc:
        return None, {exc.field: exc.message}
    try:
        settings = NotifySettings.model_validate(body)
    except ValidationError as exc:
        errors = model_errors(exc, NotifySettings)
        return None, {FORM_FIELD.get(k, CHANNEL_FIELD): v for k, v in errors.items()}
    return settings.stored(), {}


async def save_notify(
    conn: AsyncConnection,
    user_id: str,
    settings: dict[str, Any] | None,
    now: datetime,
    *,
    job_id: str | None = None,
    endpoint_id: str | None = None,
) -> Errors:
    """Store through `notify.service.set_notify` (which checks every channel is the
    viewer's); its refusal comes back keyed by form field."""
    try:
        await service.set_notify(
            conn, user_id, job_id=job_id, endpoint_id=endpoint_id, settings=settings, now=now
        )
    except Invalid as exc:
        return {FORM_FIELD.get(exc.field, CHANNEL_FIELD): exc.message}
    return {}


async def channel_choices(conn: AsyncConnection, user_id: str) -> list[tuple[str, str]]:
    """(id, label) of the viewer's channels, for the checkboxes."""
    return [
        (c.id, f"{c.name} ({c.kind})" + (", failing" if c.failing else ""))
        for c in await channel_store.list_for(conn, user_id)
    ]
