"""From a finished run to the endpoint's next plan, with the domain governor.

The governor can only fail on a broken stored schedule (bad cron or time zone, written
around the API's validation). Such an endpoint must not stall the batch or spin: it gets a
fallback plan (its baseline interval, or one minute, stretched by backoff) and its run an
explicit error, while every other endpoint of the batch is planned normally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cronicorn.domain import (
    DEFAULT_INTERVAL_MS,
    MIN_GAP_MS,
    DomainError,
    ScheduleState,
    Source,
    backoff_ms,
    plan_after_run,
    validate_cron,
    validate_timezone,
)
from cronicorn.store.run_writes import EndpointUpdate


@dataclass(frozen=True, slots=True)
class Planned:
    update: EndpointUpdate
    error: str | None = None  # the schedule could not be planned: why (recorded on the run)


def schedule_problem(baseline_cron: str | None, timezone: str) -> str | None:
    """Why a claimed endpoint's stored schedule is unusable (checked before calling it)."""
    try:
        validate_timezone(timezone)
        if baseline_cron:
            validate_cron(baseline_cron)
    except DomainError as exc:
        return f"invalid schedule: {exc}"
    return None


def plan_after(
    endpoint_id: str,
    lease: str,
    state: ScheduleState,
    *,
    due_at: datetime,
    started_at: datetime,
    finished_at: datetime,
    succeeded: bool,
    now: datetime,
) -> Planned:
    """The endpoint's update after a run (success resets failures, failure backs off)."""
    try:
        decision = plan_after_run(
            state,
            due_at=due_at,
            started_at=started_at,
            finished_at=finished_at,
            succeeded=succeeded,
            now=now,
        )
    except Exception as exc:  # a stored schedule the governor cannot use
        return _fallback(endpoint_id, lease, state, started_at=started_at, now=now, exc=exc)
    return Planned(
        EndpointUpdate(
            endpoint_id=endpoint_id,
            lease=lease,
            next_run_at=decision.plan.at,
            source=decision.plan.source,
            failure_count=decision.failure_count,
            last_due_at=decision.last_due_at,
            last_run_at=started_at,
            clear_interval=decision.clear_interval_hint,
            clear_oneshot=decision.clear_oneshot,
        )
    )


def _fallback(
    endpoint_id: str,
    lease: str,
    state: ScheduleState,
    *,
    started_at: datetime,
    now: datetime,
    exc: Exception,
) -> Planned:
    failures = state.failure_count + 1
    base = max(state.baseline_interval_ms or DEFAULT_INTERVAL_MS, MIN_GAP_MS)
    at = max(now, started_at) + timedelta(milliseconds=backoff_ms(base, failures))
    source = Source.BASELINE_CRON if state.baseline_cron else Source.BASELINE_INTERVAL
    reason = str(exc) if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
    return Planned(
        EndpointUpdate(
            endpoint_id=endpoint_id,
            lease=lease,
            next_run_at=at,
            source=source,
            failure_count=failures,
            last_run_at=started_at,
        ),
        error=f"invalid schedule: {reason}",
    )
