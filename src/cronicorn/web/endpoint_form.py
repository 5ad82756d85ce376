"""The endpoint form: from posted text fields to the API's request model, errors keyed by
form field, and the preview of the next runs a draft would get.

Intervals are entered in seconds (the API takes milliseconds); headers one `Name: value` per
line; body, assertions, rules and retry as JSON. Validation is the API's: `EndpointCreate` /
`EndpointPatch` from `cronicorn.schemas`, then the store's whole-row checks on save.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from cronicorn.domain import DomainError, ScheduleState
from cronicorn.domain.endpoint_config import MIN_INTERVAL_MS, check_config, check_schedule
from cronicorn.domain.errors import ConfigError
from cronicorn.domain.next_runs import draft_runs
from cronicorn.domain.rules_preview import Bounds, rule_notes
from cronicorn.schemas.endpoints import EndpointCreate, EndpointPatch
from cronicorn.store.endpoints import EndpointRow, schedule_state
from cronicorn.store.errors import Invalid
from cronicorn.web.forms import Errors, FieldError, int_or_none, json_or_none, model_errors

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
AI_MODES = (
    ("inherit", "Inherit the job's setting"),
    ("auto", "Auto: apply its hints"),
    ("suggest", "Suggest: I apply or dismiss"),
    ("off", "Off"),
)
SECONDS = ("baseline_interval_ms", "min_interval_ms", "max_interval_ms")
# Model field -> the form field that shows its error (intervals are entered in seconds).
FORM_FIELD = {name: name.removesuffix("_ms") + "_s" for name in SECONDS}
JSON_FIELDS = ("body_json", "assertions", "rules", "retry")
TEXT_FIELDS = ("name", "url", "description", "timezone", "baseline_cron")
INT_FIELDS = ("timeout_ms", "max_execution_time_ms", "max_response_size_kb", "max_concurrent")
OVERLAPS = (
    ("skip", "Skip: a slot due while a run is going does not run"),
    ("queue_one", "Queue one: the last such slot runs right after"),
    ("allow", "Allow: run side by side (up to the maximum below)"),
)
PREVIEW_COUNT = 5


def form_values(row: EndpointRow | None) -> dict[str, Any]:
    """The form's fields for a stored endpoint (or the defaults of a new one)."""
    if row is None:
        return {
            "method": "GET",
            "timezone": "UTC",
            "ai_mode": "inherit",
            "kind": "interval",
            "overlap": "skip",
        }
    values: dict[str, Any] = {name: getattr(row, name) or "" for name in TEXT_FIELDS}
    values.update(method=row.method, ai_mode=row.ai_mode, overlap=row.overlap)
    values["kind"] = "cron" if row.baseline_cron else "interval"
    for name in SECONDS:
        ms = getattr(row, name)
        values[FORM_FIELD[name]] = "" if ms is None else _seconds_text(ms)
    for name in INT_FIELDS:
        values[name] = getattr(row, name)
    for name in JSON_FIELDS:
        value = getattr(row, name)
        values[name] = "" if value is None else json.dumps(value, indent=2)
    headers = row.headers_json or {}
    values["headers"] = "\n".join(f"{k}: {v}" for k, v in headers.items())
    return values


def _seconds_text(ms: int) -> str:
    return str(ms // 1000) if ms % 1000 == 0 else str(ms / 1000)


def parse_headers(raw: str) -> dict[str, str] | None:
    headers: dict[str, str] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise FieldError("headers", f"line {number}: write one header per line as Name: value")
        headers[name.strip()] = value.strip()
    return headers or None


def api_fields(form: dict[str, str]) -> dict[str, Any]:
    """The form as the API's camelCase JSON body (every field, so an edit sets them all).
    Raises `FieldError` for a value that cannot even be read."""
    cron = form.get("kind") == "cron"
    body: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "url": form.get("url", "").strip(),
        "description": form.get("description", "").strip() or None,
        "method": form.get("method", "GET"),
        "headersJson": parse_headers(form.get("headers", "")),
        "timezone": form.get("timezone", "").strip() or "UTC",
        "aiMode": form.get("ai_mode", "inherit"),
        "baselineCron": (form.get("baseline_cron", "").strip() or None) if cron else None,
        "baselineIntervalMs": None
        if cron
        else int_or_none(form, "baseline_interval_s", scale=1000),
        "minIntervalMs": int_or_none(form, "min_interval_s", scale=1000),
        "maxIntervalMs": int_or_none(form, "max_interval_s", scale=1000),
        "timeoutMs": int_or_none(form, "timeout_ms"),
        "maxExecutionTimeMs": int_or_none(form, "max_execution_time_ms"),
        "maxResponseSizeKb": int_or_none(form, "max_response_size_kb"),
        "overlap": form.get("overlap") or "skip",
        "maxConcurrent": int_or_none(form, "max_concurrent"),
        "bodyJson": json_or_none(form, "body_json"),
        "assertions": json_or_none(form, "assertions"),
        "rules": json_or_none(form, "rules"),
        "retry": json_or_none(form, "retry"),
    }
    return body


def _error_key(field: str) -> str:
    return FORM_FIELD.get(field, field)


def validate(form: dict[str, str], *, editing: bool) -> tuple[dict[str, Any] | None, Errors]:
    """(snake_case config, {}) or (None, errors by form field)."""
    try:
        body = api_fields(form)
    except FieldError as exc:
        return None, {exc.field: exc.message}
    model = EndpointPatch if editing else EndpointCreate
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        errors = {_error_key(k): v for k, v in model_errors(exc, model).items()}
        return None, errors
    config = parsed.model_dump()
    try:
        check_config({**config, "timezone": config.get("timezone") or "UTC"})
    except ConfigError as exc:
        return None, {_error_key(exc.field): exc.message}
    return config, {}


def invalid_errors(exc: Invalid) -> Errors:
    return {_error_key(exc.field): exc.message}


def draft_rules(form: dict[str, str]) -> Any:
    """The form's rules as JSON, None when absent or not (yet) valid JSON."""
    try:
        return json_or_none(form, "rules")
    except FieldError:
        return None


def schedule_preview(
    form: dict[str, str],
    row: EndpointRow | None,
    now: datetime,
    siblings: Mapping[str, Bounds] | None = None,
) -> tuple[list[dict[str, Any]], Errors]:
    """The next runs the form's schedule would get if saved now (the stored endpoint's
    hints, pause and failures still apply), or the errors that stop it. Only the schedule
    fields (and the rules, described when valid; `siblings` names their targets) are read:
    a half-filled form still previews."""
    cron = form.get("kind") == "cron"
    try:
        interval = None if cron else int_or_none(form, "baseline_interval_s", scale=1000)
        cron_text = (form.get("baseline_cron", "").strip() or None) if cron else None
        timezone = form.get("timezone", "").strip() or "UTC"
        schedule: dict[str, Any] = {
            "baseline_cron": cron_text,
            "baseline_interval_ms": interval,
            "timezone": timezone,
            "min_interval_ms": int_or_none(form, "min_interval_s", scale=1000),
            "max_interval_ms": int_or_none(form, "max_interval_s", scale=1000),
        }
    except FieldError as exc:
        return [], {exc.field: exc.message}
    if cron and cron_text is None:
        return [], {"baseline_cron": "enter a cron expression"}
    if not cron and (interval is None or interval < MIN_INTERVAL_MS):
        return [], {"baseline_interval_s": "enter an interval of at least 1 second"}
    own = Bounds(None, schedule["min_interval_ms"], schedule["max_interval_ms"])
    rules = rule_notes(
        draft_rules(form), own, siblings or {}, endpoint_id=row.id if row is not None else None
    )
    try:
        check_schedule(schedule)
        return _plans(schedule, row, now, rules), {}
    except ConfigError as exc:
        return [], {_error_key(exc.field): exc.message}
    except DomainError as exc:  # a schedule the governor cannot plan
        return [], {"baseline_cron" if cron else "baseline_interval_s": str(exc)}


def _plans(
    schedule: dict[str, Any], row: EndpointRow | None, now: datetime, rules: tuple[str, ...]
) -> list[dict[str, Any]]:
    base = schedule_state(row) if row is not None else ScheduleState()
    plans = draft_runs(replace(base, **schedule), now, PREVIEW_COUNT, rules=rules)
    return [asdict(p) for p in plans]
