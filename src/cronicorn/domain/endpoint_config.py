"""An endpoint's configuration as a whole: the fields a user sets and their defaults, how an
edit merges into them, and the rules only the whole row can check (one baseline, min ≤ max,
cron and time zone, overlap, the interval quota). Request models check each field alone;
the store applies these under the row lock, the web form before it saves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cronicorn.domain.constants import DEFAULT_TIMEZONE, MIN_GAP_MS
from cronicorn.domain.cron import validate_cron, validate_timezone
from cronicorn.domain.errors import ConfigError, CronError, RuleError, TimezoneError
from cronicorn.domain.overlap import parse_overlap
from cronicorn.domain.quotas import Quotas

# What a user configures (snake_case, as the columns). Everything else is state.
CONFIG_FIELDS = (
    "name",
    "description",
    "url",
    "method",
    "headers_json",
    "body_json",
    "timeout_ms",
    "max_execution_time_ms",
    "max_response_size_kb",
    "baseline_cron",
    "baseline_interval_ms",
    "timezone",
    "min_interval_ms",
    "max_interval_ms",
    "ai_mode",
    "assertions",
    "rules",
    "retry",
    "overlap",
    "max_concurrent",
)
# Config fields whose change moves `next_run_at`.
SCHEDULE_FIELDS = frozenset(
    {"baseline_cron", "baseline_interval_ms", "timezone", "min_interval_ms", "max_interval_ms"}
)
# Config fields that have a default instead of NULL when cleared.
DEFAULTS: dict[str, Any] = {
    "method": "GET",
    "timezone": "UTC",
    "ai_mode": "inherit",
    "overlap": "skip",
}
MIN_INTERVAL_MS = MIN_GAP_MS


def with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every config field: the given value, else its default (or None)."""
    return {name: config.get(name, DEFAULTS.get(name)) for name in CONFIG_FIELDS}


def merge_changes(before: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a PATCH: explicit nulls clear (or restore the default); setting one baseline
    kind clears the other unless the same request sets both (reference defect 13)."""
    values = dict(before)
    for key, value in changes.items():
        values[key] = DEFAULTS.get(key) if value is None and key in DEFAULTS else value
    if changes.get("baseline_cron") is not None and "baseline_interval_ms" not in changes:
        values["baseline_interval_ms"] = None
    if changes.get("baseline_interval_ms") is not None and "baseline_cron" not in changes:
        values["baseline_cron"] = None
    return values


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `after` whose value differs from `before`."""
    return {k: v for k, v in after.items() if v != before[k]}


def moves_schedule(diff: Mapping[str, Any]) -> bool:
    """Whether a change touches a field that moves `next_run_at`."""
    return bool(SCHEDULE_FIELDS & diff.keys())


def check_config(values: Mapping[str, Any]) -> None:
    """Whole-row rules; `ConfigError` names the first field that breaks one."""
    has_cron = values.get("baseline_cron") is not None
    has_interval = values.get("baseline_interval_ms") is not None
    if has_cron == has_interval:
        raise ConfigError(
            "baseline_cron", "exactly one of baselineCron or baselineIntervalMs must be set"
        )
    interval = values.get("baseline_interval_ms")
    if interval is not None and interval < MIN_INTERVAL_MS:
        raise ConfigError("baseline_interval_ms", f"must be at least {MIN_INTERVAL_MS} ms")
    low, high = values.get("min_interval_ms"), values.get("max_interval_ms")
    if low is not None and high is not None and low > high:
        raise ConfigError("min_interval_ms", "minIntervalMs must not exceed maxIntervalMs")
    check_schedule(values)
    try:
        parse_overlap(values.get("overlap"), values.get("max_concurrent"))
    except RuleError as exc:
        field = "max_concurrent" if str(exc).startswith("maxConcurrent") else "overlap"
        raise ConfigError(field, str(exc)) from None


def check_schedule(values: Mapping[str, Any]) -> None:
    """Cron syntax and IANA time zone, as the domain defines them."""
    try:
        validate_timezone(values.get("timezone") or DEFAULT_TIMEZONE)
    except TimezoneError as exc:
        raise ConfigError("timezone", str(exc)) from None
    cron = values.get("baseline_cron")
    if cron is not None:
        try:
            validate_cron(cron)
        except CronError as exc:
            raise ConfigError("baseline_cron", str(exc)) from None


def apply_interval_quota(values: Mapping[str, Any], quotas: Quotas) -> dict[str, Any]:
    """QUOTA_MIN_INTERVAL_MS on a schedule being set: a baseline interval or maximum below
    it is refused, the minimum interval is raised to it (so hints and cron slots keep to it)."""
    floor = quotas.min_interval_ms
    if floor <= 0:
        return dict(values)
    rule = f"this server's minimum interval is {floor} ms (QUOTA_MIN_INTERVAL_MS)"
    for name in ("baseline_interval_ms", "max_interval_ms"):
        value = values.get(name)
        if value is not None and value < floor:
            raise ConfigError(name, f"{value} ms is too short: {rule}")
    return {**values, "min_interval_ms": quotas.interval_floor(values.get("min_interval_ms"))}
