"""Form plumbing shared by the pages: validation errors keyed by form field, the short
confirmations shown after a redirect, and reading typed values from text fields.

Forms are validated with the API's own request models (`cronicorn.schemas`), so a page
accepts exactly what `/api` accepts; errors come back keyed by the model's field name
(snake_case), which is also the form field's name.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_snake

from cronicorn.store.errors import Invalid

Errors = dict[str, str]

# `?done=<code>` after a redirect: the page shows the text, never text from the URL.
FLASHES = {
    "created": "Created.",
    "saved": "Saved.",
    "paused": "Paused.",
    "resumed": "Resumed.",
    "archived": "Archived.",
    "reset": "Failure count reset.",
    "queued": "Run started: it will appear in the history below.",
    "ran": "Run finished: see the history below.",
    "none": "Nothing selected: tick the endpoints first.",
    "hinted": "Hint set: the next runs below follow it until it expires.",
    "cleared": "Hints cleared: the baseline schedule is in force.",
}


def flash_text(code: str | None) -> str | None:
    return FLASHES.get(code or "")


class FieldError(Exception):
    """One field's value cannot be read (not a number, not JSON)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def text_or_none(form: dict[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def int_or_none(form: dict[str, str], name: str, *, scale: int = 1) -> int | None:
    """A whole number (times `scale`: minutes to ms, …), or None when blank."""
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        number = float(raw)
    except ValueError:
        raise FieldError(name, "must be a number") from None
    value = number * scale
    if not math.isfinite(value):  # "inf", "nan", "1e999": int() would raise
        raise FieldError(name, "must be a number")
    if value != int(value):
        raise FieldError(name, "must be a whole number of milliseconds")
    return int(value)


def json_or_none(form: dict[str, str], name: str) -> Any:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FieldError(name, f"not valid JSON: {exc.msg} (line {exc.lineno})") from None


def model_errors(exc: ValidationError, model: type[BaseModel]) -> Errors:
    """Pydantic's errors keyed by snake_case field name; whole-model errors under `_`."""
    aliases = {(f.alias or name): name for name, f in model.model_fields.items()}
    out: Errors = {}
    for error in exc.errors():
        loc = error.get("loc") or ()
        key = str(loc[0]) if loc else "_"
        field = aliases.get(key, to_snake(key)) if loc else "_"
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        out.setdefault(field, message)
    return out


def invalid_errors(exc: Invalid) -> Errors:
    return {exc.field: exc.message}
