"""Hypothesis properties of the governor over arbitrary endpoint states."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as hs

from cronicorn.domain import (
    ScheduleState,
    Source,
    apply_run,
    backoff_ms,
    plan_after_run,
    plan_initial,
    plan_on_change,
    preview,
)

# Local settings (not a global profile: other suites may use hypothesis too).
DOMAIN = settings(deadline=None, max_examples=150)

CRONS = [
    "* * * * *",
    "*/5 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "15 1 * * 1-5",
    "0 0 1 * *",
    "*/20 * * * * *",
    "0 30 2 * * *",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
INTERVALS = hs.one_of(
    hs.sampled_from([1_000, 5_000, 60_000, 3_600_000, 86_400_000]), hs.integers(1, 10**8)
)

nows = hs.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2035, 1, 1),
    timezones=hs.just(UTC),
)
offsets = hs.integers(-10 * 86_400_000, 10 * 86_400_000).map(lambda ms: timedelta(milliseconds=ms))
maybe_offsets = hs.none() | offsets


@hs.composite
def states(draw: hs.DrawFn, now: datetime) -> ScheduleState:
    def at(offset: timedelta | None) -> datetime | None:
        return None if offset is None else now + offset

    low = draw(hs.none() | hs.integers(1, 10**7))
    high = draw(hs.none() | hs.integers(low or 1, 10**9))
    cron = draw(hs.none() | hs.sampled_from(CRONS))
    last_due = draw(hs.none() | hs.integers(0, 10 * 86_400_000))
    return ScheduleState(
        baseline_cron=cron,
        baseline_interval_ms=draw(hs.none() | INTERVALS),
        timezone=draw(hs.sampled_from(ZONES)),
        min_interval_ms=low,
        max_interval_ms=high,
        hint_interval_ms=draw(hs.none() | hs.integers(-5, 10**8)),
        hint_interval_expires_at=at(draw(maybe_offsets)),
        hint_oneshot_at=at(draw(maybe_offsets)),
        hint_oneshot_expires_at=at(draw(maybe_offsets)),
        paused_until=at(draw(maybe_offsets)),
        failure_count=draw(hs.integers(0, 40)),
        last_due_at=None if last_due is None else now - timedelta(milliseconds=last_due),
        next_run_at=at(draw(maybe_offsets)),
    )


@hs.composite
def situations(draw: hs.DrawFn) -> tuple[ScheduleState, datetime]:
    now = draw(nows)
    return draw(states(now)), now


def _within_clamps(state: ScheduleState, at: datetime, base: datetime) -> bool:
    if state.min_interval_ms and at < base + timedelta(milliseconds=state.min_interval_ms):
        return False
    return not (state.max_interval_ms and at > base + timedelta(milliseconds=state.max_interval_ms))


@DOMAIN
@given(situations())
def test_between_runs_never_before_now_and_within_clamps(
    case: tuple[ScheduleState, datetime],
) -> None:
    state, now = case
    for plan in (plan_initial(state, now), plan_on_change(state, now)):
        assert plan.at >= now
        assert plan.source in {s for s in vars(Source).values() if isinstance(s, str)}
        if plan.source not in (Source.PAUSED, Source.AI_ONESHOT):
            assert _within_clamps(state, plan.at, now), plan
        if plan.source == Source.AI_ONESHOT and state.max_interval_ms:
            assert plan.at <= now + timedelta(milliseconds=state.max_interval_ms)


@DOMAIN
@given(situations(), hs.integers(0, 3_600_000), hs.integers(0, 3_600_000), hs.booleans())
def test_after_run_never_before_now(
    case: tuple[ScheduleState, datetime], late_ms: int, took_ms: int, ok: bool
) -> None:
    state, due = case
    started = due + timedelta(milliseconds=late_ms)
    finished = started + timedelta(milliseconds=took_ms)
    decision = plan_after_run(
        state, due_at=due, started_at=started, finished_at=finished, succeeded=ok, now=finished
    )
    plan = decision.plan
    assert plan.at >= finished
    assert decision.failure_count == (0 if ok else state.failure_count + 1)
    assert decision.last_due_at <= started  # the due time, or the start of a catch-up
    if plan.source in (Source.BASELINE_CRON, Source.BASELINE_INTERVAL, Source.AI_INTERVAL):
        assert plan.at > finished  # grid candidates: strictly after the finish
    if plan.source not in (Source.PAUSED, Source.AI_ONESHOT) and state.min_interval_ms:
        assert plan.at >= due + timedelta(milliseconds=state.min_interval_ms)
    if decision.oneshot_consumed:
        assert decision.clear_oneshot
        assert plan.source != Source.AI_ONESHOT


@DOMAIN
@given(situations(), hs.integers(1, 10 * 86_400_000))
def test_pause_always_wins(case: tuple[ScheduleState, datetime], ahead_ms: int) -> None:
    """Nothing runs before the pause's end; a plan after it stands only if it is what the
    endpoint would do anyway (the pause missed nothing), else the end is the catch-up."""
    state, now = case
    until = now + timedelta(milliseconds=ahead_ms)
    paused = replace(state, paused_until=until)
    after = plan_after_run(
        paused, due_at=now, started_at=now, finished_at=now, succeeded=False, now=now
    )
    for plan in (plan_initial(paused, now), plan_on_change(paused, now), after.plan):
        assert plan.at >= until


@DOMAIN
@given(situations(), hs.integers(1, 10**9), hs.integers(0, 10**9))
def test_extending_a_pause_never_makes_the_plan_earlier(
    case: tuple[ScheduleState, datetime], first_ms: int, extra_ms: int
) -> None:
    state, now = case
    short = replace(state, paused_until=now + timedelta(milliseconds=first_ms))
    assert short.paused_until is not None
    longer = replace(state, paused_until=short.paused_until + timedelta(milliseconds=extra_ms))
    for plan in (plan_initial, plan_on_change):
        assert plan(longer, now).at >= plan(short, now).at


@DOMAIN
@given(
    nows,
    INTERVALS.filter(lambda ms: ms >= 1_000),
    hs.none() | hs.floats(0.0, 1.0),
    hs.lists(hs.tuples(hs.integers(0, 500), hs.floats(0.0, 3.0), hs.booleans()), max_size=25),
)
def test_interval_schedules_stay_on_the_grid(
    start: datetime,
    interval_ms: int,
    min_fraction: float | None,
    runs: list[tuple[int, float, bool]],
) -> None:
    """Lateness, run time (even overruns), failures and min <= interval never shift the grid."""
    low = None if min_fraction is None else max(1, int(interval_ms * min_fraction))
    state = ScheduleState(baseline_interval_ms=interval_ms, min_interval_ms=low)
    plan = plan_initial(state, start)
    state = replace(state, next_run_at=plan.at)
    origin, step = plan.at, timedelta(milliseconds=interval_ms)
    for late_ms, took_fraction, ok in runs:
        due = plan.at
        assert (due - origin) % step == timedelta(0)
        started = due + timedelta(milliseconds=late_ms)
        finished = started + step * took_fraction
        decision = plan_after_run(
            state, due_at=due, started_at=started, finished_at=finished, succeeded=ok, now=finished
        )
        plan = decision.plan
        assert plan.at > finished
        multiplier = 2 ** min(decision.failure_count, 5)
        assert plan.at - due >= step * multiplier
        assert plan.at - max(due + step * multiplier, finished) <= step  # first slot that fits
        state = apply_run(state, decision)


@DOMAIN
@given(nows, INTERVALS.filter(lambda ms: ms >= 1_000), hs.integers(1, 10**9))
def test_consumed_oneshot_keeps_the_grid(start: datetime, interval_ms: int, when_ms: int) -> None:
    step = timedelta(milliseconds=interval_ms)
    state = ScheduleState(baseline_interval_ms=interval_ms, last_due_at=start, next_run_at=start)
    oneshot = start + timedelta(milliseconds=when_ms)
    state = replace(state, hint_oneshot_at=oneshot, hint_oneshot_expires_at=oneshot + step)
    decision = plan_after_run(
        state, due_at=oneshot, started_at=oneshot, finished_at=oneshot, succeeded=True, now=oneshot
    )
    assert decision.oneshot_consumed
    assert decision.clear_oneshot
    assert decision.plan.source == Source.BASELINE_INTERVAL
    assert (decision.plan.at - start) % step == timedelta(0)
    assert oneshot < decision.plan.at <= oneshot + step


@DOMAIN
@given(
    situations(),
    hs.integers(0, 600_000),
    hs.integers(0, 600_000),
    hs.booleans(),
    hs.floats(0.0, 1.0, exclude_max=True),
)
def test_plan_on_change_agrees_with_the_plan_after_a_run(
    case: tuple[ScheduleState, datetime], late_ms: int, took_ms: int, ok: bool, wait: float
) -> None:
    """Re-planning with nothing changed neither moves the run nor invents a catch-up."""
    state, due = case
    state = replace(state, min_interval_ms=None, max_interval_ms=None)
    started = due + timedelta(milliseconds=late_ms)
    finished = started + timedelta(milliseconds=took_ms)
    decision = plan_after_run(
        state, due_at=due, started_at=started, finished_at=finished, succeeded=ok, now=finished
    )
    assume(decision.plan.at > finished)
    later = finished + (decision.plan.at - finished) * wait
    assume(later < decision.plan.at)  # float rounding can land exactly on it
    for edge in (
        state.hint_interval_expires_at,
        state.hint_oneshot_expires_at,
        state.paused_until,
        state.hint_oneshot_at,
    ):
        assume(edge is None or not finished < edge <= later)
    after = apply_run(state, decision)
    assert plan_on_change(after, later) == decision.plan


@DOMAIN
@given(situations(), hs.integers(0, 30))
def test_preview_is_increasing(case: tuple[ScheduleState, datetime], count: int) -> None:
    state, now = case
    plans = preview(state, now, count)
    assert len(plans) == count
    assert all(plan.at >= now for plan in plans)
    assert all(a.at < b.at for a, b in itertools.pairwise(plans))


@DOMAIN
@given(hs.integers(1, 10**9), hs.integers(0, 10**6))
def test_backoff_never_exceeds_32x(base_ms: int, failures: int) -> None:
    value = backoff_ms(base_ms, failures)
    assert base_ms <= value <= 32 * base_ms
    assert (value == base_ms) == (failures == 0)
