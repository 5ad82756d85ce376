"""Worked cases of the governor: reference §6.8 where still valid, and each fixed defect."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronicorn.domain import (
    Plan,
    ScheduleError,
    ScheduleState,
    Source,
    apply_run,
    plan_after_run,
    plan_initial,
    plan_on_change,
    preview,
)

S, MIN, H = 1_000, 60_000, 3_600_000


def t(hh: int, mm: int = 0, ss: float = 0, day: int = 1) -> datetime:
    seconds = int(ss)
    micros = round((ss - seconds) * 1_000_000)
    return datetime(2024, 5, day, hh, mm, seconds, micros, tzinfo=UTC)


NOW = t(12)
LATER = t(23)  # a fresh expiry


def st(**fields: Any) -> ScheduleState:
    return ScheduleState(**fields)


# --- plan_initial: reference §6.8 table (now = 12:00, never run) -------------------------

INITIAL_CASES = [
    (
        "interval, equal to min: not clamped",
        st(baseline_interval_ms=MIN, min_interval_ms=MIN),
        t(12, 1),
        Source.BASELINE_INTERVAL,
    ),
    (
        "interval, 3 failures: x8",
        st(baseline_interval_ms=MIN, failure_count=3),
        t(12, 8),
        Source.BASELINE_INTERVAL,
    ),
    (
        "9 failures: x32 capped by max",
        st(baseline_interval_ms=MIN, failure_count=9, max_interval_ms=10 * MIN),
        t(12, 10),
        Source.CLAMPED_MAX,
    ),
    (
        "short hint clamped by min",
        st(
            baseline_interval_ms=5 * MIN,
            hint_interval_ms=30 * S,
            hint_interval_expires_at=LATER,
            min_interval_ms=MIN,
        ),
        t(12, 1),
        Source.CLAMPED_MIN,
    ),
    (
        "longer hint still wins",
        st(baseline_interval_ms=5 * MIN, hint_interval_ms=30 * MIN, hint_interval_expires_at=LATER),
        t(12, 30),
        Source.AI_INTERVAL,
    ),
    (
        "one-shot earlier than baseline",
        st(baseline_interval_ms=H, hint_oneshot_at=t(12, 10), hint_oneshot_expires_at=LATER),
        t(12, 10),
        Source.AI_ONESHOT,
    ),
    (
        "interval hint + earlier one-shot",
        st(
            hint_interval_ms=5 * MIN,
            hint_interval_expires_at=LATER,
            hint_oneshot_at=t(12, 2),
            hint_oneshot_expires_at=LATER,
        ),
        t(12, 2),
        Source.AI_ONESHOT,
    ),
    (
        "overdue one-shot floored to now, NOT min-clamped (defect 23)",
        st(
            baseline_interval_ms=H,
            min_interval_ms=MIN,
            hint_oneshot_at=t(11, 55),
            hint_oneshot_expires_at=LATER,
        ),
        NOW,
        Source.AI_ONESHOT,
    ),
    (
        "cron capped by max",
        st(baseline_cron="0 * * * *", max_interval_ms=10 * MIN),
        t(12, 10),
        Source.CLAMPED_MAX,
    ),
    (
        "expired hints ignored",
        st(
            baseline_interval_ms=H,
            hint_interval_ms=5 * MIN,
            hint_interval_expires_at=t(11, 59),
            hint_oneshot_at=t(12, 2),
            hint_oneshot_expires_at=t(11, 59),
        ),
        t(13),
        Source.BASELINE_INTERVAL,
    ),
    ("paused", st(baseline_interval_ms=MIN, paused_until=t(14)), t(14), Source.PAUSED),
    # beyond the reference table
    ("cron", st(baseline_cron="0 * * * *"), t(13), Source.BASELINE_CRON),
    (
        "cron never backs off",
        st(baseline_cron="0 * * * *", failure_count=7),
        t(13),
        Source.BASELINE_CRON,
    ),
    (
        "interval hint overrides cron",
        st(baseline_cron="0 0 * * *", hint_interval_ms=10 * MIN, hint_interval_expires_at=LATER),
        t(12, 10),
        Source.AI_INTERVAL,
    ),
    (
        "later one-shot loses to baseline",
        st(baseline_interval_ms=MIN, hint_oneshot_at=t(12, 30), hint_oneshot_expires_at=LATER),
        t(12, 1),
        Source.BASELINE_INTERVAL,
    ),
    (
        "one-shot wins a tie",
        st(
            baseline_interval_ms=MIN,
            hint_oneshot_at=t(12, 1),
            hint_oneshot_expires_at=LATER,
            min_interval_ms=2 * MIN,
        ),
        t(12, 1),
        Source.AI_ONESHOT,
    ),
    (
        "pause beats one-shot and clamps",
        st(
            baseline_interval_ms=MIN,
            paused_until=t(14),
            hint_oneshot_at=t(12, 1),
            hint_oneshot_expires_at=LATER,
            max_interval_ms=MIN,
        ),
        t(14),
        Source.PAUSED,
    ),
    (
        "past pause is no pause",
        st(baseline_interval_ms=MIN, paused_until=t(11)),
        t(12, 1),
        Source.BASELINE_INTERVAL,
    ),
    (
        "pause ending exactly now is over",
        st(baseline_interval_ms=MIN, paused_until=NOW),
        t(12, 1),
        Source.BASELINE_INTERVAL,
    ),
    (
        "max exactly reached: not clamped",
        st(baseline_interval_ms=10 * MIN, max_interval_ms=10 * MIN),
        t(12, 10),
        Source.BASELINE_INTERVAL,
    ),
    (
        "min > max: max applied last",
        st(baseline_interval_ms=MIN, min_interval_ms=5 * MIN, max_interval_ms=2 * MIN),
        t(12, 2),
        Source.CLAMPED_MAX,
    ),
    ("no baseline: default 60 s", st(), t(12, 1), Source.BASELINE_INTERVAL),
    (
        "zero interval: default, never a spin",
        st(baseline_interval_ms=0),
        t(12, 1),
        Source.BASELINE_INTERVAL,
    ),
    (
        "tiny interval floored to 1 s",
        st(baseline_interval_ms=5),
        t(12, 0, 1),
        Source.BASELINE_INTERVAL,
    ),
    (
        "hint without expiry is ignored",
        st(baseline_interval_ms=MIN, hint_interval_ms=10 * S),
        t(12, 1),
        Source.BASELINE_INTERVAL,
    ),
    # defect 10: each hint kind has its own expiry
    (
        "defect 10: expired interval hint, fresh one-shot",
        st(
            baseline_interval_ms=H,
            hint_interval_ms=MIN,
            hint_interval_expires_at=t(11),
            hint_oneshot_at=t(12, 20),
            hint_oneshot_expires_at=LATER,
        ),
        t(12, 20),
        Source.AI_ONESHOT,
    ),
    (
        "defect 10: fresh interval hint, expired one-shot",
        st(
            baseline_interval_ms=H,
            hint_interval_ms=5 * MIN,
            hint_interval_expires_at=LATER,
            hint_oneshot_at=t(12, 2),
            hint_oneshot_expires_at=t(11),
        ),
        t(12, 5),
        Source.AI_INTERVAL,
    ),
    # defect 13 (as planning): cleared fields stop counting at once
    (
        "defect 13: cron cleared, interval takes over",
        st(baseline_cron=None, baseline_interval_ms=5 * MIN),
        t(12, 5),
        Source.BASELINE_INTERVAL,
    ),
    (
        "defect 13: max cleared, no clamp",
        st(baseline_interval_ms=H, max_interval_ms=None),
        t(13),
        Source.BASELINE_INTERVAL,
    ),
    # an edit keeps the grid of the last run and never catches up
    (
        "edit 1 h -> 1 min on the old grid",
        st(baseline_interval_ms=MIN, last_due_at=t(11, 30, 30), next_run_at=t(12, 30, 30)),
        t(12, 0, 30),
        Source.BASELINE_INTERVAL,
    ),
    (
        "edit of a long-missed schedule: no catch-up",
        st(
            baseline_cron="0 6 * * *", last_due_at=t(6, day=1) - timedelta(days=3), next_run_at=t(6)
        ),
        t(6, day=2),
        Source.BASELINE_CRON,
    ),
]


@pytest.mark.parametrize(
    ("state", "at", "source"),
    [pytest.param(*case[1:], id=case[0]) for case in INITIAL_CASES],
)
def test_plan_initial(state: ScheduleState, at: datetime, source: str) -> None:
    assert plan_initial(state, NOW) == Plan(at, source)


# --- plan_after_run -------------------------------------------------------------------------


def run(
    state: ScheduleState,
    due: datetime,
    *,
    took: float = 0.5,
    late: float = 0.0,
    ok: bool = True,
    settle: float = 0.01,
) -> Any:
    started = due + timedelta(seconds=late)
    finished = started + timedelta(seconds=took)
    return plan_after_run(
        state,
        due_at=due,
        started_at=started,
        finished_at=finished,
        succeeded=ok,
        now=finished + timedelta(seconds=settle),
    )


EVERY_MIN = st(baseline_interval_ms=MIN, last_due_at=t(11, 59), next_run_at=t(12))

AFTER_CASES: list[tuple[str, ScheduleState, dict[str, Any], Plan, int]] = [
    (
        "no drift: next = due + interval, not finish + interval",
        EVERY_MIN,
        {"took": 0.8, "late": 0.25},
        Plan(t(12, 1), Source.BASELINE_INTERVAL),
        0,
    ),
    (
        "overrun skips to the next slot after the finish",
        EVERY_MIN,
        {"took": 150},
        Plan(t(12, 3), Source.BASELINE_INTERVAL),
        0,
    ),
    (
        "defect 11: first failure already backs off (x2)",
        EVERY_MIN,
        {"ok": False},
        Plan(t(12, 2), Source.BASELINE_INTERVAL),
        1,
    ),
    (
        "defect 11: 6th failure is x32, never more",
        replace(EVERY_MIN, failure_count=5),
        {"ok": False},
        Plan(t(12, 32), Source.BASELINE_INTERVAL),
        6,
    ),
    (
        "defect 11: first success ends backoff at once",
        replace(EVERY_MIN, failure_count=4),
        {},
        Plan(t(12, 1), Source.BASELINE_INTERVAL),
        0,
    ),
    (
        "cron never backs off",
        st(baseline_cron="*/5 * * * *", failure_count=2, next_run_at=NOW),
        {"ok": False},
        Plan(t(12, 5), Source.BASELINE_CRON),
        3,
    ),
    (
        "defect 21: cron overrun goes to the next slot after the finish",
        st(baseline_cron="*/5 * * * *"),
        {"took": 7 * 60},
        Plan(t(12, 10), Source.BASELINE_CRON),
        0,
    ),
    (
        "cron: run ending exactly on a slot skips it",
        st(baseline_cron="*/5 * * * *"),
        {"took": 300, "settle": 0},
        Plan(t(12, 10), Source.BASELINE_CRON),
        0,
    ),
    (
        "interval hint counts from the run's due time",
        replace(EVERY_MIN, hint_interval_ms=10 * MIN, hint_interval_expires_at=LATER),
        {"took": 5},
        Plan(t(12, 10), Source.AI_INTERVAL),
        0,
    ),
    (
        "min clamp counts from the due time: no drift",
        replace(
            EVERY_MIN, hint_interval_ms=30 * S, hint_interval_expires_at=LATER, min_interval_ms=MIN
        ),
        {"late": 0.2, "took": 1},
        Plan(t(12, 1), Source.CLAMPED_MIN),
        0,
    ),
    (
        "pause set during the run wins",
        replace(EVERY_MIN, paused_until=t(15)),
        {"ok": False},
        Plan(t(15), Source.PAUSED),
        1,
    ),
    (
        "downtime: the late run is the one catch-up, the next one interval after its start",
        st(baseline_interval_ms=MIN, last_due_at=t(10, 0, 30), next_run_at=t(10, 1, 30)),
        {"late": 7110},
        Plan(t(12, 1), Source.BASELINE_INTERVAL),
        0,
    ),
    (
        "late by less than an interval: no drift, the next slot stands",
        EVERY_MIN,
        {"late": 59},
        Plan(t(12, 1), Source.BASELINE_INTERVAL),
        0,
    ),
    (
        "issue 9.4: the run at a pause's end is followed one interval later, not at the grid",
        st(baseline_interval_ms=S, last_due_at=t(12, 0, 2), next_run_at=t(12, 0, 8.51)),
        {"took": 0.01},
        Plan(t(12, 0, 9.51), Source.BASELINE_INTERVAL),
        0,
    ),
    (
        "cron downtime: a catch-up in the second half of a gap skips the next slot",
        st(baseline_cron="0 * * * *", last_due_at=t(9), next_run_at=t(10)),
        {"late": 2 * 3600 + 50 * 60},  # started 12:50: 13:00 is 10 min away
        Plan(t(14), Source.BASELINE_CRON),
        0,
    ),
    (
        "cron downtime: a catch-up in the first half keeps the next slot",
        st(baseline_cron="0 * * * *", last_due_at=t(9), next_run_at=t(10)),
        {"late": 2 * 3600 + 20 * 60},
        Plan(t(13), Source.BASELINE_CRON),
        0,
    ),
]


@pytest.mark.parametrize(
    ("state", "kwargs", "plan", "failures"),
    [pytest.param(*case[1:], id=case[0]) for case in AFTER_CASES],
)
def test_plan_after_run(
    state: ScheduleState, kwargs: dict[str, Any], plan: Plan, failures: int
) -> None:
    decision = run(state, state.next_run_at or NOW, **kwargs)
    assert decision.plan == plan
    assert decision.failure_count == failures


def test_defect_12_consumed_oneshot_causes_no_extra_run_and_keeps_the_grid() -> None:
    state = st(
        baseline_interval_ms=H,
        min_interval_ms=MIN,
        last_due_at=t(11),
        hint_oneshot_at=t(12, 20),
        hint_oneshot_expires_at=LATER,
        next_run_at=t(12, 20),
    )
    decision = run(state, t(12, 20), took=1)
    assert decision.oneshot_consumed
    assert decision.clear_oneshot
    assert not decision.clear_interval_hint
    assert decision.plan == Plan(t(13), Source.BASELINE_INTERVAL)  # not 12:21, not 13:20
    assert decision.last_due_at == t(12)  # grid anchor, not the one-shot time


def test_oneshot_set_while_running_runs_right_after_unclamped() -> None:
    state = replace(
        EVERY_MIN, min_interval_ms=MIN, hint_oneshot_at=t(12, 0, 10), hint_oneshot_expires_at=LATER
    )
    decision = run(state, t(12), took=20, settle=0)
    assert not decision.oneshot_consumed
    assert not decision.clear_oneshot
    assert decision.plan == Plan(t(12, 0, 20), Source.AI_ONESHOT)


def test_hints_expiring_during_the_run_are_cleared_and_ignored() -> None:
    state = replace(
        EVERY_MIN,
        hint_interval_ms=10 * S,
        hint_interval_expires_at=t(12, 0, 30),
        hint_oneshot_at=t(12, 5),
        hint_oneshot_expires_at=t(12, 0, 30),
    )
    decision = run(state, t(12), took=40)
    assert decision.clear_interval_hint
    assert decision.clear_oneshot
    assert not decision.oneshot_consumed
    assert decision.plan == Plan(t(12, 1), Source.BASELINE_INTERVAL)


def test_fresh_interval_hint_is_kept() -> None:
    state = replace(EVERY_MIN, hint_interval_ms=10 * S, hint_interval_expires_at=LATER)
    decision = run(state, t(12))
    assert not decision.clear_interval_hint
    assert not decision.clear_oneshot
    assert decision.last_due_at == t(12)


def test_max_clamp_after_a_late_run_counts_from_its_start() -> None:
    state = st(
        baseline_interval_ms=H,
        failure_count=3,
        max_interval_ms=10 * MIN,
        last_due_at=t(9),
        next_run_at=t(10),
    )
    decision = run(state, t(10), late=2 * 3600, ok=False)
    assert decision.plan == Plan(t(12, 10), Source.CLAMPED_MAX)  # not "now" again


# --- plan_on_change ----------------------------------------------------------------------

HOURLY = st(
    baseline_interval_ms=H, min_interval_ms=MIN, last_due_at=t(11, 30), next_run_at=t(12, 30)
)

CHANGE_CASES = [
    (
        "defect 2/23: run now moves next_run earlier, not min-clamped",
        replace(HOURLY, hint_oneshot_at=t(12, 0, 1), hint_oneshot_expires_at=LATER),
        Plan(t(12, 0, 1), Source.AI_ONESHOT),
    ),
    (
        "defect 2: shorter interval hint moves next_run earlier, on the last run's grid",
        replace(HOURLY, hint_interval_ms=7 * MIN, hint_interval_expires_at=LATER),
        Plan(t(12, 5), Source.AI_INTERVAL),
    ),
    (
        "clearing hints moves next_run back to the baseline",
        replace(HOURLY, next_run_at=t(12, 5)),
        Plan(t(12, 30), Source.BASELINE_INTERVAL),
    ),
    ("pause", replace(HOURLY, paused_until=t(18)), Plan(t(18), Source.PAUSED)),
    (
        "defect 15: resume after missed slots -> one catch-up now",
        st(baseline_interval_ms=MIN, last_due_at=t(9), next_run_at=t(18)),
        Plan(NOW, Source.MISFIRE),
    ),
    (
        "resume before any slot was missed -> no catch-up",
        replace(HOURLY, next_run_at=t(14)),
        Plan(t(12, 30), Source.BASELINE_INTERVAL),
    ),
    (
        "job resume: overdue -> one catch-up now",
        st(baseline_interval_ms=MIN, last_due_at=t(8), next_run_at=t(8, 1)),
        Plan(NOW, Source.MISFIRE),
    ),
    (
        "never run, overdue -> catch-up",
        st(baseline_cron="0 6 * * *", next_run_at=t(6)),
        Plan(NOW, Source.MISFIRE),
    ),
    (
        "cron resume after a missed slot",
        st(baseline_cron="0 * * * *", last_due_at=t(8), next_run_at=t(14)),
        Plan(NOW, Source.MISFIRE),
    ),
    (
        "cron resume, nothing missed",
        st(baseline_cron="0 * * * *", last_due_at=t(12), next_run_at=t(14)),
        Plan(t(13), Source.BASELINE_CRON),
    ),
    (
        "plan after an overrun is kept (no false catch-up)",
        st(baseline_interval_ms=MIN, last_due_at=t(11, 58), next_run_at=t(12, 1)),
        Plan(t(12, 1), Source.BASELINE_INTERVAL),
    ),
    (
        "catch-up is clamped by min like any baseline",
        st(baseline_interval_ms=MIN, min_interval_ms=10 * S, last_due_at=t(9), next_run_at=t(9)),
        Plan(t(12, 0, 10), Source.CLAMPED_MIN),
    ),
]


@pytest.mark.parametrize(
    ("state", "plan"), [pytest.param(*case[1:], id=case[0]) for case in CHANGE_CASES]
)
def test_plan_on_change(state: ScheduleState, plan: Plan) -> None:
    assert plan_on_change(state, NOW) == plan


def test_overrun_plan_is_not_a_misfire() -> None:
    state = st(baseline_interval_ms=MIN, last_due_at=t(12))
    decision = run(state, t(12), took=150)  # finished 12:02:30.5, plan 12:03
    after = apply_run(state, decision)
    assert plan_on_change(after, t(12, 2, 40)) == Plan(t(12, 3), Source.BASELINE_INTERVAL)


def test_defect_15_resume_runs_once_then_one_interval_later() -> None:
    paused = st(baseline_interval_ms=MIN, last_due_at=t(9), next_run_at=t(9, 1), paused_until=t(18))
    assert plan_on_change(paused, t(9, 0, 30)) == Plan(t(18), Source.PAUSED)
    resumed = replace(paused, paused_until=None, next_run_at=t(18))
    catch_up = plan_on_change(resumed, t(12, 0, 20))
    assert catch_up == Plan(t(12, 0, 20), Source.MISFIRE)
    state = replace(resumed, next_run_at=catch_up.at)
    decision = run(state, catch_up.at, took=1)
    # Not 12:01 on the old :00 grid, 40 s later (issue 9.4): the grid restarts at the catch-up.
    assert decision.plan == Plan(t(12, 1, 20), Source.BASELINE_INTERVAL)
    state = apply_run(state, decision)
    assert [p.at for p in preview(state, t(12, 0, 30), 3)] == [
        t(12, 1, 20),
        t(12, 2, 20),
        t(12, 3, 20),
    ]


def test_pause_end_runs_once_then_one_interval_later() -> None:
    state = st(
        baseline_interval_ms=MIN,
        last_due_at=t(9),
        next_run_at=t(12, 0, 30),
        paused_until=t(12, 0, 30),
    )
    decision = run(state, t(12, 0, 30))
    assert decision.plan == Plan(t(12, 1, 30), Source.BASELINE_INTERVAL)


# --- preview --------------------------------------------------------------------------------


def test_preview_interval_with_backoff_ends_after_first_success() -> None:
    state = st(baseline_interval_ms=MIN, failure_count=2, last_due_at=t(12), next_run_at=t(12, 4))
    plans = preview(state, t(12, 0, 1), 3, next_source=Source.BASELINE_INTERVAL)
    assert plans == [
        Plan(t(12, 4), Source.BASELINE_INTERVAL),
        Plan(t(12, 5), Source.BASELINE_INTERVAL),
        Plan(t(12, 6), Source.BASELINE_INTERVAL),
    ]


def test_preview_consumes_oneshot_then_hint_then_baseline() -> None:
    state = st(
        baseline_interval_ms=H,
        last_due_at=t(12),
        next_run_at=t(12, 5),
        hint_oneshot_at=t(12, 5),
        hint_oneshot_expires_at=LATER,
        hint_interval_ms=20 * MIN,
        hint_interval_expires_at=t(12, 50),
    )
    plans = preview(state, t(12, 1), 5)
    assert [(p.at, p.source) for p in plans] == [
        (t(12, 5), Source.AI_ONESHOT),
        (t(12, 25), Source.AI_INTERVAL),
        (t(12, 45), Source.AI_INTERVAL),
        (t(13, 5), Source.AI_INTERVAL),  # planned at 12:45, while the hint was fresh
        (t(14, 5), Source.BASELINE_INTERVAL),  # expired: the baseline counts from the last run
    ]


def test_preview_cron_across_spring_forward_and_paused() -> None:
    state = st(
        baseline_cron="30 2 * * *",
        timezone="Europe/Berlin",
        paused_until=datetime(2024, 3, 30, 12, tzinfo=UTC),
    )
    plans = preview(state, datetime(2024, 3, 29, tzinfo=UTC), 3)
    assert [p.source for p in plans] == [Source.PAUSED, Source.BASELINE_CRON, Source.BASELINE_CRON]
    assert [p.at.isoformat() for p in plans[1:]] == [
        "2024-03-31T01:00:00+00:00",  # 02:30 skipped -> 03:00 CEST
        "2024-04-01T00:30:00+00:00",
    ]


def test_preview_count_edges() -> None:
    assert preview(EVERY_MIN, NOW, 0) == []
    with pytest.raises(ScheduleError):
        preview(EVERY_MIN, NOW, -1)


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ScheduleError):
        st(paused_until=datetime(2024, 1, 1))
    with pytest.raises(ScheduleError):
        plan_initial(EVERY_MIN, datetime(2024, 1, 1))
    with pytest.raises(ScheduleError):
        st(failure_count=-1)


def test_from_mapping_ignores_other_columns() -> None:
    row = {
        "id": "x",
        "url": "http://a",
        "baseline_interval_ms": MIN,
        "timezone": "UTC",
        "failure_count": 2,
        "next_run_at": NOW,
    }
    assert ScheduleState.from_mapping(row) == st(
        baseline_interval_ms=MIN, failure_count=2, next_run_at=NOW
    )
