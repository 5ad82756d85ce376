"""The scheduler's clock, injected so tests can move time (clock jumps, drift) at will.

Every scheduling decision of one scheduler (is it due, when did the run start and finish,
what is the next plan) reads this one clock; sleeping uses the event loop's monotonic timer
and re-reads the clock on waking, so a run never starts before its due time by this clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)
