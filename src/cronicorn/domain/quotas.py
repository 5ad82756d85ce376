"""Per-user quotas an operator may set (all off by default), and the calendar month they count in.

Quotas apply to every user alike, admins included: a self-hosted operator who wants more
raises the setting. A value of 0 means "no limit".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Quotas:
    max_endpoints: int = 0
    """Live endpoints per user (not archived, job not archived)."""
    min_interval_ms: int = 0
    """Floor for baseline intervals, interval hints and every endpoint's minimum interval."""
    runs_per_month: int = 0
    """Runs per user per calendar month (UTC), scheduled and manual alike."""

    def interval_floor(self, min_interval_ms: int | None) -> int | None:
        """An endpoint's effective minimum interval: its own, raised to the quota floor."""
        if self.min_interval_ms <= 0:
            return min_interval_ms
        return max(min_interval_ms or 0, self.min_interval_ms)


NO_QUOTAS = Quotas()


def month_start(now: datetime) -> datetime:
    """First instant of `now`'s calendar month in UTC (quota months are UTC months)."""
    now = now.astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    """First instant of the following UTC month: when a used-up run quota resets."""
    start = month_start(now)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)
