"""What one execution produced (`dispatch.calls.HttpOutcome`, shared with run now), and the
run row the scheduler's batch writer stores from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from cronicorn.dispatch.calls import HttpOutcome, clean_text
from cronicorn.store.claims import Claimed
from cronicorn.store.run_writes import RunOutcome

__all__ = ["Execute", "HttpOutcome", "clean_text", "run_of"]


def run_of(
    outcome: HttpOutcome, run_id: str, started_at: datetime, finished_at: datetime
) -> RunOutcome:
    return RunOutcome(
        run_id=run_id,
        status=outcome.status,
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=outcome.duration_ms,
        status_code=outcome.status_code,
        body_json=outcome.body_json,
        body_text=outcome.body_text,
        size=outcome.size,
        truncated=outcome.truncated,
        error=outcome.error,
        attempts=outcome.attempts,
    )


Execute = Callable[[Claimed, list[bytes]], Awaitable[HttpOutcome]]
"""Performs one claimed call with the user's signing keys; never raises for HTTP problems."""
