"""The next runs an endpoint would get if nothing changes and every run succeeds, each with
why it is due then (for people: the API's preview, the endpoint page, the form's live
preview), what happens at the slot beyond its time (retries, the overlap policy) and what
the endpoint's response rules would do after it if they fire (`domain.rules_preview`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cronicorn.domain.errors import RuleError
from cronicorn.domain.overlap import describe as describe_overlap
from cronicorn.domain.overlap import parse_overlap
from cronicorn.domain.retry import describe as describe_retry
from cronicorn.domain.retry import parse_retry
from cronicorn.domain.schedule import ScheduleState, plan_initial, preview

HINT_SOURCE_RULE = "rule"  # hints written by an endpoint's response rules
_HINT_PLANS = frozenset({"ai-interval", "ai-oneshot"})

REASONS = {
    "baseline-cron": "next slot of the cron schedule",
    "baseline-interval": "next slot of the baseline interval (with backoff after failures)",
    "ai-interval": "interval hint in force",
    "ai-oneshot": "one-shot hint (run once at this time)",
    "clamped-min": "held back to the minimum interval",
    "clamped-max": "brought forward to the maximum interval",
    "paused": "paused until this time",
    "misfire": "one catch-up run for missed slots",
    "quota": "deferred to next month: the monthly run quota is used up",
    "rule": "hint written by a response rule (clamped to min/max like any hint)",
}


def reason_of(source: str) -> str:
    """Why a run is due, in words (the source label itself when it has none)."""
    return REASONS.get(source, source)


@dataclass(frozen=True, slots=True)
class PlannedRun:
    at: datetime
    source: str
    reason: str
    notes: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()  # what each response rule would do if it fires


def next_runs(
    state: ScheduleState,
    now: datetime,
    count: int,
    *,
    next_source: str,
    hint_source: str | None,
    notes: tuple[str, ...] = (),
    rules: tuple[str, ...] = (),
) -> list[PlannedRun]:
    """The governor's next `count` plans; a hint a response rule wrote reads as `rule`."""
    by_rule = hint_source == HINT_SOURCE_RULE
    out = []
    for p in preview(state, now, count, next_source=next_source):
        source = "rule" if by_rule and p.source in _HINT_PLANS else p.source
        out.append(PlannedRun(p.at, source, reason_of(source), notes, rules))
    return out


def draft_runs(
    state: ScheduleState, now: datetime, count: int, *, rules: tuple[str, ...] = ()
) -> list[PlannedRun]:
    """The next runs of a schedule as if it were saved now (planned afresh, no catch-up)."""
    fresh = replace(state, next_run_at=None)
    first = plan_initial(fresh, now)
    plans = preview(replace(fresh, next_run_at=first.at), now, count, next_source=first.source)
    return [PlannedRun(p.at, p.source, reason_of(p.source), rules=rules) for p in plans]


def slot_notes(retry: Any, overlap: str | None, max_concurrent: int | None) -> tuple[str, ...]:
    """What happens at each planned slot beyond its time: retries within it, and what a
    slot that comes due while a run is still going does (the overlap policy)."""
    notes: list[str] = []
    try:
        described = describe_retry(parse_retry(retry))
        if described is not None:
            notes.append(described)
        notes.append(describe_overlap(parse_overlap(overlap, max_concurrent)))
    except RuleError:  # written around the API: the scheduler treats it as absent too
        pass
    return tuple(notes)
