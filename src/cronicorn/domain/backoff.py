"""Exponential backoff of the baseline interval after consecutive failures."""

from __future__ import annotations

from cronicorn.domain.constants import BACKOFF_CAP, BACKOFF_FACTOR


def backoff_multiplier(failures: int) -> int:
    """1 with no failures, then 2, 4, ... capped at 2**BACKOFF_CAP (32)."""
    return int(BACKOFF_FACTOR ** min(max(failures, 0), BACKOFF_CAP))


def backoff_ms(base_ms: int, failures: int) -> int:
    """The baseline interval stretched for `failures` consecutive failures (never > 32x)."""
    return base_ms * backoff_multiplier(failures)
