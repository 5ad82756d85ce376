"""The governor: pure rules deciding when an endpoint runs next.

Three entry points, one per moment a plan is needed:

* `plan_initial`: a new endpoint or an edit of its schedule (cron, interval, timezone,
  clamps). No catch-up run.
* `plan_after_run`: the scheduler, after a run, with the endpoint re-read so that hints and
  pauses set meanwhile count.
* `plan_on_change`: anything else out of band (hint set or cleared, pause, resume, job
  resume). Moves `next_run_at` either way, so changes take effect at once; if a baseline
  slot was missed (overdue, or slots passed during a pause) it plans ONE catch-up run now
  (source `misfire`), never one per missed slot.

Rules:

* No burst (the invariant, property-tested in tests/domain/test_domain_spacing.py): two
  consecutive scheduled runs of an interval endpoint are never closer than the interval in
  force (baseline or fresh hint) as clamped by min/max, whatever pauses, resumes, misfires,
  hints or restarts came between. One-shot runs ("run now") are the exception. A run counts
  from its due time, or from its start when it started a whole interval late (downtime).
* No drift. Interval schedules live on a grid anchored at `last_due_at` (which the caller
  stores from `RunDecision.last_due_at`): an on-time run's next due time is its due time
  plus the interval, never "finish + interval", however late (under one interval) it
  started. A slow run skips the slots it overlapped (next slot strictly after it finished),
  as cron does. Any other run re-anchors the grid at the instant it counts from: a catch-up
  (`misfire`), the run at a pause's end, a run after downtime (its start), a clamped run or
  one planned by a hint; the next run is one interval after it, not the old grid's next
  slot, which could be a fraction of a second away. A one-shot run at its own time is an
  extra run and keeps the grid (the slot at or before it); one overdue when it ran (delayed
  by a pause or downtime) stood in for missed slots and re-anchors like them.
* Misfires: after downtime, pauses and resumes an endpoint runs ONCE (not once per missed
  slot) and then as above. A pause that missed nothing adds no run: the plan already after
  its end stands. Otherwise the pause's end is the catch-up (source `paused`).
* Cron catch-ups never land in the second half of the cron's own gap before the next slot
  (the gap between that slot and the one before it): a catch-up there is skipped for the
  slot itself (resume, pause end), and when one already ran there (downtime) that slot is
  skipped instead. Runs on a slot are never affected.
* Backoff (x2 per consecutive failure, at most x32) stretches only the baseline interval,
  counts from the failed run's slot with the failure count INCLUDING that failure, and ends
  with the first success. Cron never backs off.
* Hints. A fresh interval hint (its own expiry) overrides the baseline, cron included; its
  slots count from the last run. A fresh one-shot (its own expiry) wins when it is not
  later than the other candidate. A one-shot at or before a run's start was consumed by
  that run: it is reported for clearing and not planned again. A one-shot that expires
  before a pause ends never runs.
* Clamps (min/max interval) are relative to `now` between runs; after a run the minimum
  counts from the instant the run counts from and the maximum from its start, so
  scheduling jitter never drifts the grid and a late run is not followed by an immediate
  one. Comparisons are strict. An explicit one-shot ("run now") is never held back by the
  minimum.
* Pause (`paused_until > now`) wins over everything: nothing is planned before its end.
* A plan is never earlier than `now`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cronicorn.domain.backoff import backoff_multiplier
from cronicorn.domain.constants import DEFAULT_INTERVAL_MS, DEFAULT_TIMEZONE, MIN_GAP_MS, Source
from cronicorn.domain.cron import cron_slot_after, next_cron_time, previous_cron_time
from cronicorn.domain.errors import ScheduleError

_TICK = timedelta(microseconds=1)
_INSTANTS = (
    "hint_interval_expires_at",
    "hint_oneshot_at",
    "hint_oneshot_expires_at",
    "paused_until",
    "last_due_at",
    "next_run_at",
)


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """The scheduling columns of one `endpoints` row (same names). Instants are aware UTC."""

    baseline_cron: str | None = None
    baseline_interval_ms: int | None = None
    timezone: str = DEFAULT_TIMEZONE
    min_interval_ms: int | None = None
    max_interval_ms: int | None = None
    hint_interval_ms: int | None = None
    hint_interval_expires_at: datetime | None = None
    hint_oneshot_at: datetime | None = None
    hint_oneshot_expires_at: datetime | None = None
    paused_until: datetime | None = None
    failure_count: int = 0
    last_due_at: datetime | None = None
    next_run_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in _INSTANTS:
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ScheduleError(f"{name} must be timezone-aware")
        if self.failure_count < 0:
            raise ScheduleError("failure_count cannot be negative")

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> ScheduleState:
        """Build from a DB row mapping; columns other than the schedule's are ignored."""
        names = [field.name for field in dataclasses.fields(cls)]
        return cls(**{name: row[name] for name in names if name in row})


@dataclass(frozen=True, slots=True)
class Plan:
    """When an endpoint is due next, and why (a `Source` label)."""

    at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class RunDecision:
    """What the caller writes after a run: the plan, counters, grid anchor and hint clears."""

    plan: Plan
    failure_count: int
    last_due_at: datetime
    clear_interval_hint: bool  # interval hint expired (or unusable): clear its columns
    clear_oneshot: bool  # one-shot consumed or expired: clear its columns
    oneshot_consumed: bool  # this run served the one-shot (for logs and run labels)


def plan_initial(state: ScheduleState, now: datetime) -> Plan:
    """First due time of a new endpoint, or after an edit of its schedule (no catch-up)."""
    return _plan_between_runs(state, now, catch_up=False)


def plan_on_change(state: ScheduleState, now: datetime) -> Plan:
    """Re-plan after an out-of-band change; one catch-up run if a baseline slot was missed."""
    return _plan_between_runs(state, now, catch_up=True)


def plan_after_run(
    state: ScheduleState,
    *,
    due_at: datetime,
    started_at: datetime,
    finished_at: datetime,
    succeeded: bool,
    now: datetime,
) -> RunDecision:
    """Next plan after a run that was due at `due_at`; `state` is re-read after the run."""
    _require_aware(due_at, started_at, finished_at, now)
    failures = 0 if succeeded else state.failure_count + 1
    consumed = state.hint_oneshot_at is not None and state.hint_oneshot_at <= started_at
    extra = consumed and _served_oneshot(state, due_at, started_at)
    hint_step = _hint_step(state, now)
    oneshot_at = None if consumed else _oneshot_at(state, _resumes(state, now))
    after = max(finished_at, now)
    run = _Run(due_at, started_at, after, failures, extra)
    baseline, ran_at, anchor = _baseline_after_run(state, run)
    interval_at = None
    if hint_step is not None:
        ran_at = anchor = _ran_at(due_at, started_at, hint_step)
        interval_at = _grid_after(ran_at, hint_step, after)
    chosen = _select(baseline, interval_at, oneshot_at)
    plan = _clamp(chosen, state, min_base=ran_at, max_base=started_at, floor=now)
    if _is_paused(state, now):
        plan = _paused(state, plan, _owed(state, anchor, failures, hint_step))
    return RunDecision(
        plan=plan,
        failure_count=failures,
        last_due_at=anchor,
        clear_interval_hint=_has_interval_hint(state) and hint_step is None,
        clear_oneshot=_has_oneshot(state) and (consumed or oneshot_at is None),
        oneshot_consumed=consumed,
    )


def apply_run(state: ScheduleState, decision: RunDecision) -> ScheduleState:
    """The state after writing `decision` (for in-memory callers, previews and tests)."""
    hint_interval: dict[str, Any] = {}
    if decision.clear_interval_hint:
        hint_interval = {"hint_interval_ms": None, "hint_interval_expires_at": None}
    oneshot: dict[str, Any] = {}
    if decision.clear_oneshot:
        oneshot = {"hint_oneshot_at": None, "hint_oneshot_expires_at": None}
    return dataclasses.replace(
        state,
        failure_count=decision.failure_count,
        last_due_at=decision.last_due_at,
        next_run_at=decision.plan.at,
        **hint_interval,
        **oneshot,
    )


def preview(
    state: ScheduleState, now: datetime, count: int, *, next_source: str | None = None
) -> list[Plan]:
    """The next `count` due times assuming every run succeeds instantly.

    The first entry is the stored `next_run_at` when it is set, not past and not paused
    (labelled `next_source`, the stored `next_run_source`, if given); otherwise it is
    `plan_on_change(state, now)`. Later entries simulate runs with `plan_after_run`.
    """
    if count < 0:
        raise ScheduleError("preview count cannot be negative")
    if count == 0:
        return []
    first = plan_on_change(state, now)
    stored = state.next_run_at
    if stored is not None and stored >= now and first.source != Source.PAUSED:
        first = Plan(stored, next_source or first.source)
    plans = [first]
    while len(plans) < count:
        at = plans[-1].at
        decision = plan_after_run(
            state, due_at=at, started_at=at, finished_at=at, succeeded=True, now=at
        )
        state = apply_run(state, decision)
        plans.append(decision.plan)
    return plans


# --- between runs -------------------------------------------------------------------------


def _plan_between_runs(state: ScheduleState, now: datetime, *, catch_up: bool) -> Plan:
    _require_aware(now)
    baseline = _baseline_between_runs(state, now, catch_up=catch_up)
    step = _hint_step(state, now)
    interval_at = None
    if step is not None:
        anchor = state.last_due_at
        interval_at = now + step if anchor is None else _grid_after(anchor, step, now)
    chosen = _select(baseline, interval_at, _oneshot_at(state, _resumes(state, now)))
    plan = _clamp(chosen, state, min_base=now, max_base=now, floor=now)
    if _is_paused(state, now):
        return _paused(state, plan, _owed(state, state.last_due_at, state.failure_count, step))
    return plan


def _baseline_between_runs(state: ScheduleState, now: datetime, *, catch_up: bool) -> Plan:
    anchor = state.last_due_at
    first_due: datetime | None = None  # the first baseline slot owed after the last run
    if state.baseline_cron:
        source = Source.BASELINE_CRON
        expected = _cron_after(state, now, anchor)
        if catch_up and anchor is not None:
            first_due = _cron_after(state, anchor, anchor)
    else:
        source = Source.BASELINE_INTERVAL
        step = _baseline_step(state)
        times = backoff_multiplier(state.failure_count)
        if anchor is None:
            expected = now + times * step
        else:
            expected = _grid_after(anchor, step, now, min_slots=times)
            first_due = anchor + times * step
    if catch_up and _missed(state, now, expected, first_due):
        catch_up_at = _clamp(
            Plan(now, Source.MISFIRE), state, min_base=now, max_base=now, floor=now
        )
        if not (state.baseline_cron and _too_close(state, catch_up_at.at, expected)):
            return Plan(now, Source.MISFIRE)
    return Plan(expected, source)


def _missed(
    state: ScheduleState, now: datetime, expected: datetime, first_due: datetime | None
) -> bool:
    """A baseline slot owed since the last run has passed, and the stored plan is overdue
    or would skip the grid's next slot too.

    A slot can pass legitimately: a slow run skipped it, or a one-shot ran instead; the
    stored plan is then no later than the next grid slot. A stored plan beyond it (the end
    of a pause, a long hint) means slots were missed and one catch-up is owed. An overdue
    plan with no slot owed (a one-shot replaced, a hint slot) owes nothing: a catch-up
    then would come too soon after the last run. Never run: overdue is enough.
    """
    planned = state.next_run_at
    if first_due is None:
        return planned is not None and planned <= now
    if first_due > now:
        return False
    return planned is None or planned <= now or planned > expected


# --- after a run --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Run:
    due_at: datetime
    started_at: datetime
    after: datetime  # the plan is strictly after this (finish, or later `now`)
    failures: int  # including this run's failure
    extra: bool  # an extra run, for a one-shot at its own time (`_served_oneshot`)


def _baseline_after_run(state: ScheduleState, run: _Run) -> tuple[Plan, datetime, datetime]:
    """The baseline candidate, the instant the run counts from, and the new grid anchor."""
    if state.baseline_cron:
        return _cron_after_run(state, state.baseline_cron, run)
    step = _baseline_step(state)
    slots = backoff_multiplier(run.failures)
    previous = state.last_due_at
    if run.extra:  # the one-shot does not move the grid: the slot at or before it
        anchor = run.due_at
        if previous is not None:
            anchor = previous + ((run.due_at - previous) // step) * step
        at = _grid_after(anchor, step, run.after, min_slots=slots)
        return Plan(at, Source.BASELINE_INTERVAL), run.due_at, anchor
    ran_at = _ran_at(run.due_at, run.started_at, step)
    at = _grid_after(ran_at, step, run.after, min_slots=slots)
    return Plan(at, Source.BASELINE_INTERVAL), ran_at, ran_at


def _cron_after_run(state: ScheduleState, cron: str, run: _Run) -> tuple[Plan, datetime, datetime]:
    on_slot, first = cron_slot_after(cron, state.timezone, run.due_at)
    late = first <= run.started_at  # a slot passed before it started: a catch-up
    ran_at = run.started_at if late else run.due_at
    at = first if first > run.after else next_cron_time(cron, state.timezone, run.after)
    if run.extra:  # the one-shot does not count as the schedule's run: the anchor stays
        anchor = state.last_due_at
        if anchor is None:
            anchor = previous_cron_time(cron, state.timezone, run.due_at + _TICK)
        elif _too_close(state, anchor, at):
            at = next_cron_time(cron, state.timezone, at)
        return Plan(at, Source.BASELINE_CRON), run.due_at, anchor
    if (late or not on_slot) and _too_close(state, ran_at, at):
        at = next_cron_time(cron, state.timezone, at)
    return Plan(at, Source.BASELINE_CRON), ran_at, ran_at


def _ran_at(due_at: datetime, started_at: datetime, step: timedelta) -> datetime:
    """The instant a run counts from: its due time (so lateness never drifts the grid), or
    its start when it started a whole step late (downtime: a catch-up, re-anchored)."""
    return started_at if started_at >= due_at + step else due_at


def _served_oneshot(state: ScheduleState, due_at: datetime, started_at: datetime) -> bool:
    """Was this an extra run, for the one-shot alone? Planned at its time and started before
    the next slot could have come. A one-shot overdue when it ran (at a pause's end, as a
    catch-up, after downtime) stood in for the missed slots too and counts like them."""
    if state.hint_oneshot_at != due_at:
        return False
    step = _hint_step(state, due_at) or _baseline_step(state)
    return started_at < due_at + step


# --- cron catch-ups -----------------------------------------------------------------------


def _cron_after(state: ScheduleState, after: datetime, last: datetime | None) -> datetime:
    """The first cron slot strictly after `after`, unless the last run lies too close to it."""
    assert state.baseline_cron is not None
    at = next_cron_time(state.baseline_cron, state.timezone, after)
    if last is not None and _too_close(state, last, at):
        at = next_cron_time(state.baseline_cron, state.timezone, at)
    return at


def _too_close(state: ScheduleState, run_at: datetime, slot: datetime) -> bool:
    """A run at `run_at` falls in the second half of the cron gap that ends at `slot`.

    A catch-up there is pointless (the slot is near) and would be a burst: it is skipped for
    the slot; a run that already happened there (downtime) makes the slot itself skipped.
    """
    assert state.baseline_cron is not None
    if run_at >= slot:
        return False
    gap = slot - previous_cron_time(state.baseline_cron, state.timezone, slot)
    return (slot - run_at) * 2 < gap


def _owed(
    state: ScheduleState, anchor: datetime | None, failures: int, hint_step: timedelta | None
) -> datetime | None:
    """The first run owed after the last one (grid anchor `anchor`), whatever `now` is;
    never sooner than the minimum interval after it."""
    if anchor is None:
        return None
    if hint_step is not None:
        at = anchor + hint_step
    elif state.baseline_cron:
        at = _cron_after(state, anchor, anchor)
    else:
        at = anchor + backoff_multiplier(failures) * _baseline_step(state)
    low = _positive(state.min_interval_ms)
    return at if low is None else max(at, anchor + _ms(low))


def _paused(state: ScheduleState, plan: Plan, owed: datetime | None) -> Plan:
    """Nothing runs before `paused_until`. A plan after it stands when the pause missed
    nothing (no run was owed before its end); otherwise the endpoint runs once at the end
    (the catch-up), except that a cron endpoint takes its next slot instead when that slot
    is too close (`_too_close`). Either is labelled `paused` and, like any pause, ignores the
    clamps."""
    until = state.paused_until
    assert until is not None
    if plan.at >= until and (owed is None or owed >= until):
        return plan
    cron = state.baseline_cron
    if cron and _hint_step(state, until) is None and _oneshot_at(state, until) is None:
        slot = next_cron_time(cron, state.timezone, until)
        if _too_close(state, until, slot):
            return Plan(slot, Source.PAUSED)  # set by the pause, like its end: unclamped
    return Plan(until, Source.PAUSED)


# --- shared rules -------------------------------------------------------------------------


def _select(baseline: Plan, interval_at: datetime | None, oneshot_at: datetime | None) -> Plan:
    """Fresh interval hint replaces the baseline; a one-shot wins unless later (ties too).

    Ties go to the one-shot (the reference gave them to the other candidate) so that an
    explicit run is never labelled, and clamped, as something else.
    """
    chosen = baseline if interval_at is None else Plan(interval_at, Source.AI_INTERVAL)
    if oneshot_at is not None and oneshot_at <= chosen.at:
        return Plan(oneshot_at, Source.AI_ONESHOT)
    return chosen


def _clamp(
    plan: Plan, state: ScheduleState, *, min_base: datetime, max_base: datetime, floor: datetime
) -> Plan:
    at, source = plan.at, plan.source
    low, high = _positive(state.min_interval_ms), _positive(state.max_interval_ms)
    if low is not None and source != Source.AI_ONESHOT and at < min_base + _ms(low):
        at, source = min_base + _ms(low), Source.CLAMPED_MIN
    if high is not None and at > max_base + _ms(high):
        at, source = max_base + _ms(high), Source.CLAMPED_MAX
    return Plan(max(at, floor), source)


def _grid_after(
    anchor: datetime, step: timedelta, after: datetime, *, min_slots: int = 1
) -> datetime:
    """The first slot `anchor + k*step` strictly after `after`, with k >= min_slots."""
    slots = max(min_slots, (after - anchor) // step + 1)
    return anchor + slots * step


def _baseline_step(state: ScheduleState) -> timedelta:
    interval = _positive(state.baseline_interval_ms) or DEFAULT_INTERVAL_MS
    return _ms(max(interval, MIN_GAP_MS))


def _hint_step(state: ScheduleState, now: datetime) -> timedelta | None:
    """The fresh interval hint's step, or None (absent, expired or not positive)."""
    interval = _positive(state.hint_interval_ms)
    if interval is None or not _fresh(state.hint_interval_expires_at, now):
        return None
    return _ms(max(interval, MIN_GAP_MS))


def _oneshot_at(state: ScheduleState, now: datetime) -> datetime | None:
    """A fresh one-shot's time, floored to `now` (an overdue one-shot runs at once)."""
    at = state.hint_oneshot_at
    if at is None or not _fresh(state.hint_oneshot_expires_at, now):
        return None
    return max(at, now)


def _has_interval_hint(state: ScheduleState) -> bool:
    return state.hint_interval_ms is not None or state.hint_interval_expires_at is not None


def _has_oneshot(state: ScheduleState) -> bool:
    return state.hint_oneshot_at is not None or state.hint_oneshot_expires_at is not None


def _resumes(state: ScheduleState, now: datetime) -> datetime:
    """When the endpoint can run next: a one-shot that expires before then never runs."""
    until = state.paused_until
    return until if until is not None and until > now else now


def _is_paused(state: ScheduleState, now: datetime) -> bool:
    return state.paused_until is not None and state.paused_until > now


def _fresh(expires_at: datetime | None, now: datetime) -> bool:
    """A hint without an expiry, or whose expiry is not after `now`, is ignored."""
    return expires_at is not None and expires_at > now


def _positive(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def _ms(milliseconds: int) -> timedelta:
    return timedelta(milliseconds=milliseconds)


def _require_aware(*instants: datetime) -> None:
    if any(instant.tzinfo is None for instant in instants):
        raise ScheduleError("scheduling needs timezone-aware datetimes")
