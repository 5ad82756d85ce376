"""Pure scheduling rules: plans, cron in time zones, backoff, ids. No I/O, no other imports."""

from cronicorn.domain.backoff import backoff_ms, backoff_multiplier
from cronicorn.domain.constants import (
    BACKOFF_CAP,
    DEFAULT_INTERVAL_MS,
    DEFAULT_TIMEZONE,
    MIN_GAP_MS,
    SOURCES,
    Source,
)
from cronicorn.domain.cron import next_cron_time, validate_cron, validate_timezone
from cronicorn.domain.errors import (
    CronError,
    DomainError,
    RuleError,
    ScheduleError,
    TimezoneError,
)
from cronicorn.domain.ids import id_time, new_id
from cronicorn.domain.quotas import NO_QUOTAS, Quotas, month_start, next_month_start
from cronicorn.domain.schedule import (
    Plan,
    RunDecision,
    ScheduleState,
    apply_run,
    plan_after_run,
    plan_initial,
    plan_on_change,
    preview,
)

__all__ = [
    "BACKOFF_CAP",
    "DEFAULT_INTERVAL_MS",
    "DEFAULT_TIMEZONE",
    "MIN_GAP_MS",
    "NO_QUOTAS",
    "SOURCES",
    "CronError",
    "DomainError",
    "Plan",
    "Quotas",
    "RuleError",
    "RunDecision",
    "ScheduleError",
    "ScheduleState",
    "Source",
    "TimezoneError",
    "apply_run",
    "backoff_ms",
    "backoff_multiplier",
    "id_time",
    "month_start",
    "new_id",
    "next_cron_time",
    "next_month_start",
    "plan_after_run",
    "plan_initial",
    "plan_on_change",
    "preview",
    "validate_cron",
    "validate_timezone",
]
