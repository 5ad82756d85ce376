"""Scheduling constants, in one place so the API, scheduler and tests agree on them."""

from __future__ import annotations

from typing import Final

DEFAULT_INTERVAL_MS: Final = 60_000
"""Baseline interval used when an endpoint has neither a cron nor a usable interval."""

MIN_GAP_MS: Final = 1_000
"""Shortest step any interval (baseline or hint) may take: a 0 or 5 ms interval would spin."""

BACKOFF_FACTOR: Final = 2
BACKOFF_CAP: Final = 5
"""Backoff multiplies the baseline interval by BACKOFF_FACTOR ** min(failures, BACKOFF_CAP)."""

MAX_BACKOFF_MULTIPLIER: Final = BACKOFF_FACTOR**BACKOFF_CAP

DEFAULT_TIMEZONE: Final = "UTC"

CRON_SEARCH_LIMIT: Final = 10_000
"""Most cron slots examined for one answer (a repeated DST hour of a per-second cron is 3600)."""


class Source:
    """Labels stored with a planned time (`next_run_source`) and on run rows (`runs.source`)."""

    BASELINE_CRON: Final = "baseline-cron"
    BASELINE_INTERVAL: Final = "baseline-interval"
    AI_INTERVAL: Final = "ai-interval"  # any interval hint: AI planner, rule or user
    AI_ONESHOT: Final = "ai-oneshot"  # any one-shot hint, including "run now"
    CLAMPED_MIN: Final = "clamped-min"
    CLAMPED_MAX: Final = "clamped-max"
    PAUSED: Final = "paused"
    MISFIRE: Final = "misfire"  # one catch-up run after missed slots (resume, job resume)
    TEST: Final = "test"  # manual test runs; never produced by the planner
    QUOTA: Final = "quota"  # deferred to the next month: the monthly run quota is used up
    RULE: Final = "rule"  # a hint written by the endpoint's response rules (domain/rules.py)


SOURCES: Final = frozenset(
    {
        Source.BASELINE_CRON,
        Source.BASELINE_INTERVAL,
        Source.AI_INTERVAL,
        Source.AI_ONESHOT,
        Source.CLAMPED_MIN,
        Source.CLAMPED_MAX,
        Source.PAUSED,
        Source.MISFIRE,
        Source.TEST,
        Source.QUOTA,
        Source.RULE,
    }
)
