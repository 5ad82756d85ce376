"""The overlap policy's pure part: which slots a run overlapped, which are skipped, which
one is queued; validation names the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cronicorn.domain import ScheduleState, plan_after_run
from cronicorn.domain.errors import RuleError
from cronicorn.domain.overlap import (
    ALLOW,
    DEFAULT_MAX_CONCURRENT,
    MAX_SKIPPED,
    QUEUE_ONE,
    SKIP,
    after_overlap,
    overlapped_slots,
    parse_overlap,
)

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def test_parse_overlap() -> None:
    assert parse_overlap(None).mode == SKIP
    assert parse_overlap("queue_one").cap == 1
    assert parse_overlap("allow").cap == DEFAULT_MAX_CONCURRENT
    assert parse_overlap("allow", 3).cap == 3
    assert parse_overlap("skip", 3).cap == 1, "a cap kept for allow has no effect otherwise"


@pytest.mark.parametrize(
    ("mode", "cap", "message"),
    [
        ("sometimes", None, "overlap: expected one of skip, queue_one, allow"),
        ("allow", 0, "maxConcurrent: expected 1 to 100"),
        ("allow", 101, "maxConcurrent: expected 1 to 100"),
        ("allow", True, "maxConcurrent: expected an integer"),
    ],
)
def test_bad_overlap_names_the_field(mode: str, cap: object, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_overlap(mode, cap)


def _next(state: ScheduleState, finished: datetime, *, ok: bool = True) -> datetime:
    d = plan_after_run(
        state, due_at=T, started_at=T, finished_at=finished, succeeded=ok, now=finished
    )
    return d.plan.at


def test_a_slow_interval_run_skips_the_slots_it_overlapped() -> None:
    state = ScheduleState(baseline_interval_ms=10_000, last_due_at=T - timedelta(seconds=10))
    slots = overlapped_slots(state, due_at=T, started_at=T, until=s(35), succeeded=True)
    assert [p.at for p in slots] == [s(10), s(20), s(30)]
    nxt = _next(state, s(35))
    assert nxt == s(40), "the governor moves on to the first slot after the run"
    skip = after_overlap(SKIP, slots, next_at=nxt, next_source="baseline-interval", paused=False)
    assert [p.at for p in skip.skipped] == [s(10), s(20), s(30)]
    assert skip.queued is None
    queue = after_overlap(QUEUE_ONE, slots, next_at=nxt, next_source="x", paused=False)
    assert [p.at for p in queue.skipped] == [s(10), s(20)]
    assert queue.queued is not None
    assert queue.queued.at == s(30)
    paused = after_overlap(QUEUE_ONE, slots, next_at=nxt, next_source="x", paused=True)
    assert paused.queued is None
    assert len(paused.skipped) == 3


def test_no_slot_within_a_second_so_fast_runs_cost_nothing() -> None:
    state = ScheduleState(baseline_interval_ms=1000)
    assert overlapped_slots(state, due_at=T, started_at=T, until=s(0.999), succeeded=True) == []
    slots = overlapped_slots(state, due_at=T, started_at=T, until=s(1), succeeded=True)
    assert [p.at for p in slots] == [s(1)]


def test_cron_slots_in_the_endpoints_time_zone() -> None:
    state = ScheduleState(baseline_cron="*/5 * * * *", timezone="Europe/Paris")
    slots = overlapped_slots(state, due_at=T, started_at=T, until=s(16 * 60), succeeded=True)
    assert [p.at for p in slots] == [s(300), s(600), s(900)]
    assert {p.source for p in slots} == {"baseline-cron"}


def test_a_failing_endpoint_overlaps_its_backed_off_slots() -> None:
    state = ScheduleState(baseline_interval_ms=10_000, failure_count=1)
    # this failure makes two in a row: the schedule in force steps 40 s (x4)
    slots = overlapped_slots(state, due_at=T, started_at=T, until=s(100), succeeded=False)
    assert [p.at for p in slots] == [s(40), s(80)]


def test_one_shots_and_slots_after_the_next_plan_are_not_skipped() -> None:
    state = ScheduleState(
        baseline_interval_ms=10_000,
        hint_oneshot_at=s(5),
        hint_oneshot_expires_at=s(3600),
    )
    slots = overlapped_slots(state, due_at=T, started_at=T, until=s(25), succeeded=True)
    assert [p.at for p in slots] == [s(10), s(20)], "the one-shot is no grid slot"
    plan = after_overlap(SKIP, slots, next_at=s(20), next_source="x", paused=False)
    assert [p.at for p in plan.skipped] == [s(10)]


def test_records_are_bounded_and_queue_one_takes_the_latest_slot() -> None:
    state = ScheduleState(baseline_interval_ms=1000)
    slots = overlapped_slots(state, due_at=T, started_at=T, until=s(3600), succeeded=True)
    assert len(slots) == 3600
    skip = after_overlap(SKIP, slots, next_at=s(3601), next_source="x", paused=False)
    assert len(skip.skipped) == MAX_SKIPPED
    queue = after_overlap(QUEUE_ONE, slots, next_at=s(3601), next_source="x", paused=False)
    assert queue.queued is not None
    assert queue.queued.at == s(3600)
    assert len(queue.skipped) == MAX_SKIPPED
    assert ALLOW == "allow"


def test_slots_a_late_start_missed_are_lateness_not_overlap() -> None:
    state = ScheduleState(baseline_interval_ms=10_000)
    late = overlapped_slots(state, due_at=T, started_at=s(25), until=s(27), succeeded=True)
    assert late == [], "the scheduler was behind: the governor's catch-up rules, no record"
    long = overlapped_slots(state, due_at=T, started_at=s(25), until=s(50), succeeded=True)
    assert [p.at for p in long] == [s(35), s(45)], "then the grid from its late start"
