"""What happens to a slot that comes due while a run of the same endpoint is still going.

* `skip` (the default): the slot does not run. It is recorded as a `skipped` run when the
  run that overlapped it ends, and the schedule moves on to the first slot after that run
  (the governor's "a slow run skips the slots it overlapped").
* `queue_one`: the LAST slot that came due during the run runs right after it ends (at
  most one pending run, however many slots passed); the earlier ones are skipped.
* `allow`: slots run concurrently, at most `max_concurrent` runs at once (default
  `DEFAULT_MAX_CONCURRENT`); a slot that comes due with the cap reached waits until a run
  ends (it is late, never doubled).

The slots a run overlapped are those of the schedule in force while it ran that came due
between its start and its end: the slots the governor would have planned had the run ended
the instant it started with the same outcome (`overlapped_slots`). Slots a late start missed
(a saturated scheduler, downtime) are lateness, handled by the governor as before, and not
recorded. Slots set by a one-shot or a pause are not grid slots and never count.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cronicorn.domain.constants import MIN_GAP_MS, Source
from cronicorn.domain.errors import RuleError
from cronicorn.domain.schedule import Plan, ScheduleState, apply_run, plan_after_run

SKIP = "skip"
QUEUE_ONE = "queue_one"
ALLOW = "allow"
MODES = (SKIP, QUEUE_ONE, ALLOW)
DEFAULT_MAX_CONCURRENT = 5
MAX_CONCURRENT = 100
MAX_SKIPPED = 100
"""At most this many skipped slots are recorded after one run (an hour-long run of a
one-second endpoint would otherwise write 3,600 rows); the skipped-slot counter counts them
the same way."""
MAX_WALK = 10_000
"""Slots looked at after one run (to find the last one for `queue_one`)."""

_GRID = frozenset(
    {
        Source.BASELINE_CRON,
        Source.BASELINE_INTERVAL,
        Source.AI_INTERVAL,
        Source.CLAMPED_MIN,
        Source.CLAMPED_MAX,
        Source.RULE,
    }
)
_NO_SLOT_BEFORE = timedelta(milliseconds=MIN_GAP_MS)


@dataclass(frozen=True, slots=True)
class Overlap:
    mode: str = SKIP
    max_concurrent: int | None = None  # `allow` only; None: DEFAULT_MAX_CONCURRENT

    @property
    def cap(self) -> int:
        """Runs of the endpoint that may be in flight at once."""
        if self.mode != ALLOW:
            return 1
        return self.max_concurrent or DEFAULT_MAX_CONCURRENT


NO_OVERLAP = Overlap()


def parse_overlap(mode: Any, max_concurrent: Any = None) -> Overlap:
    """`overlap` and `maxConcurrent` as written; errors name the field. A cap given with
    another mode is kept (switching back to `allow` finds it) and has no effect."""
    if mode is None:
        mode = SKIP
    if mode not in MODES:
        raise RuleError(f"overlap: expected one of {', '.join(MODES)}, got {mode!r}")
    if max_concurrent is None:
        return Overlap(mode)
    if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int):
        raise RuleError("maxConcurrent: expected an integer")
    if not 1 <= max_concurrent <= MAX_CONCURRENT:
        raise RuleError(f"maxConcurrent: expected 1 to {MAX_CONCURRENT}, got {max_concurrent}")
    return Overlap(mode, max_concurrent)  # kept, and only used, with `allow`


@dataclass(frozen=True, slots=True)
class AfterOverlap:
    """The slots a finished run overlapped: those to record as skipped, and the one to run
    right after it (`queue_one`), if any."""

    skipped: list[Plan]
    queued: Plan | None = None


NONE = AfterOverlap([])


def overlapped_slots(
    state: ScheduleState,
    *,
    due_at: datetime,
    started_at: datetime,
    until: datetime,
    succeeded: bool,
    limit: int = MAX_WALK,
) -> list[Plan]:
    """Grid slots that came due while the run was going: after its start (slots a late
    start missed are lateness, not overlap) and by `until` (its end), in the schedule as it
    stood meanwhile (`state`, re-read before the run's own rules apply), with this run's
    failure streak. At most `limit`."""
    since = max(due_at, started_at)
    if until - since < _NO_SLOT_BEFORE:  # the hot path: no slot is closer than 1 s
        return []
    slots: list[Plan] = []
    decision = plan_after_run(
        state,
        due_at=due_at,
        started_at=started_at,
        finished_at=started_at,
        succeeded=succeeded,
        now=started_at,
    )
    streak = decision.failure_count  # held: slots that did not run change nothing
    for _ in range(2 * limit):  # one-shots in between are stepped over, not counted
        plan = decision.plan
        if plan.at > until or len(slots) >= limit:
            break
        if plan.source in _GRID and plan.at > since:
            slots.append(plan)
        state = apply_run(state, decision)
        state = dataclasses.replace(state, failure_count=max(streak - 1, 0))
        at = plan.at
        decision = plan_after_run(
            state, due_at=at, started_at=at, finished_at=at, succeeded=streak == 0, now=at
        )
    return slots


def after_overlap(
    mode: str, slots: list[Plan], *, next_at: datetime, next_source: str, paused: bool
) -> AfterOverlap:
    """What to record and plan, given the plan the governor made (`next_at`): every
    overlapped slot before it is skipped, but `queue_one` runs the last of them at once (not
    while paused)."""
    missed = [s for s in slots if s.at < next_at]
    if not missed:
        return NONE
    if mode == QUEUE_ONE and not paused and next_source != Source.PAUSED:
        return AfterOverlap(missed[:-1][:MAX_SKIPPED], missed[-1])
    return AfterOverlap(missed[:MAX_SKIPPED])


def describe(overlap: Overlap) -> str:
    """One line for `preview`: what a slot that comes due during a run does."""
    if overlap.mode == QUEUE_ONE:
        return (
            "overlap queue_one: slots that come due while a run is still going wait; the last "
            "of them runs right after it, the others are recorded as skipped"
        )
    if overlap.mode == ALLOW:
        return (
            f"overlap allow: slots run even while earlier runs are going, at most "
            f"{overlap.cap} at once; beyond that a slot waits for a run to end"
        )
    return (
        "overlap skip: a slot that comes due while a run is still going does not run and is "
        "recorded as skipped; the schedule goes on after the run"
    )
