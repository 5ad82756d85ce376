"""No burst (issue 9, item 4): the governor driven by a simulated scheduler and API on one
simulated clock, through arbitrary sequences of runs (on time, late, after downtime, slow,
failing), pauses, resumes, interval hints with expiries, one-shots, hint clears and failure
resets.

Invariants:

* interval endpoints: two consecutive scheduled runs are never closer than the interval in
  force (the baseline or a fresh hint, at any planning moment between them), clamped by the
  endpoint's min/max. One-shot runs (the "run now" family: a run at the one-shot's own time)
  are excepted and skipped over. A run counts from its due time, or from its start when it
  started a whole interval late (after downtime: a catch-up);
* cron endpoints: a catch-up run (off a cron slot, or started after a later slot had come)
  is never followed by a slot closer than half the gap before that slot; and a catch-up only
  happens when a slot (or a one-shot) was missed;
* nothing runs while paused, and `preview` lists the runs that then happen when nothing
  changes in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from cronicorn.domain import (
    MIN_GAP_MS,
    Plan,
    ScheduleState,
    Source,
    apply_run,
    next_cron_time,
    plan_after_run,
    plan_initial,
    plan_on_change,
    preview,
)
from cronicorn.domain.cron import cron_slot_after, previous_cron_time

SPACING = settings(deadline=None, max_examples=200)
FEWER = settings(deadline=None, max_examples=100)  # cron evaluation is the slow part

CRONS = ["*/5 * * * *", "0 * * * *", "*/20 * * * * *", "0 9,17 * * *", "30 2 * * *"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York"]


def ms(value: float) -> timedelta:
    return timedelta(milliseconds=value)


@dataclass(frozen=True)
class Ran:
    due: datetime
    started: datetime
    at: datetime  # the instant the run counts from
    oneshot: bool  # claimed for a one-shot, or ran at a one-shot's own time: the exception
    consumed: bool  # served a one-shot, whenever


@dataclass
class Sim:
    """One endpoint, the API that steers it and a scheduler, on one simulated clock."""

    state: ScheduleState
    now: datetime
    source: str = ""
    runs: list[Ran] = field(default_factory=list)
    steps: list[list[timedelta]] = field(default_factory=lambda: [[]])  # per gap between runs
    log: list[str] = field(default_factory=list)  # what happened, for failure messages

    @classmethod
    def start(cls, state: ScheduleState, now: datetime) -> Sim:
        plan = plan_initial(state, now)
        sim = cls(replace(state, next_run_at=plan.at), now, plan.source)
        sim.note_step(now)
        return sim

    def step_at(self, at: datetime) -> timedelta:
        """The interval in force at `at`: a fresh hint's, else the baseline's (floored)."""
        s = self.state
        if self.hint_fresh(at):
            assert s.hint_interval_ms is not None
            return ms(max(s.hint_interval_ms, MIN_GAP_MS))
        return ms(max(s.baseline_interval_ms or 60_000, MIN_GAP_MS))

    def note_step(self, at: datetime) -> None:
        self.steps[-1].append(self.step_at(at))

    def change(self, at: datetime, **fields: object) -> None:
        """An API write: the row changes and is replanned (`store/endpoints.mutate`)."""
        self.state = replace(self.state, **fields)  # type: ignore[arg-type]
        plan = plan_on_change(self.state, at)
        self.state = replace(self.state, next_run_at=plan.at)
        self.source = plan.source
        self.note_step(at)
        self.log.append(
            f"{at:%d %H:%M:%S.%f} change {fields} -> {plan.at:%d %H:%M:%S.%f} {plan.source}"
        )

    def run(
        self,
        late: timedelta,
        took: timedelta,
        ok: bool,
        claimed: tuple[datetime, str] | None = None,
    ) -> Plan:
        """The scheduler runs the `claimed` slot (due, source; default: the stored plan)."""
        due, source = claimed or (self.state.next_run_at, self.source)
        assert due is not None
        started = max(self.now, due) + late
        oneshot_at = self.state.hint_oneshot_at
        finished = started + took
        decision = plan_after_run(
            self.state,
            due_at=due,
            started_at=started,
            finished_at=finished,
            succeeded=ok,
            now=finished,
        )
        consumed = decision.oneshot_consumed
        oneshot = source == Source.AI_ONESHOT or (consumed and oneshot_at == due)
        at = self.counts_from(due, started, finished)
        self.runs.append(Ran(due, started, at, oneshot, consumed))
        self.state = apply_run(self.state, decision)
        self.source = decision.plan.source
        self.now = finished
        self.steps.append([])
        self.note_step(finished)
        self.log.append(
            f"{started:%d %H:%M:%S.%f} ran due {due:%d %H:%M:%S.%f} ok={ok} until "
            f"{finished:%d %H:%M:%S.%f} -> {decision.plan.at:%d %H:%M:%S.%f} {decision.plan.source}"
        )
        return decision.plan

    def claim(self, late: timedelta) -> tuple[datetime, str]:
        """The scheduler claims the due slot and starts it: never while paused."""
        due = self.state.next_run_at
        assert due is not None
        self.now = max(self.now, due) + late
        paused = self.state.paused_until
        assert paused is None or paused <= self.now, "claimed while paused"
        return due, self.source

    def counts_from(self, due: datetime, started: datetime, finished: datetime) -> datetime:
        """A run counts from its due time, or from its start when it started late past the
        next slot (a whole interval late; for a cron, after a later slot had come)."""
        s = self.state
        if s.baseline_cron and not self.hint_fresh(finished):
            late = next_cron_time(s.baseline_cron, s.timezone, due) <= started
        else:
            late = started >= due + self.step_at(finished)
        return started if late else due

    def hint_fresh(self, at: datetime) -> bool:
        s = self.state
        expires = s.hint_interval_expires_at
        return bool(s.hint_interval_ms and s.hint_interval_ms > 0 and expires and expires > at)


def _clamped(step: timedelta, low: int | None, high: int | None) -> timedelta:
    if low:
        step = max(step, ms(low))
    if high:
        step = min(step, ms(high))
    return step


EVENTS = ["run", "run", "run", "late run", "wait", "pause", "resume", "hint", "oneshot"]
EVENTS += ["clear", "reset", "run with a change"]


def _drive(data: hs.DataObject, sim: Sim, step_ms: int, *, hints: bool, count: int) -> None:
    """`count` random events; the scale of every duration follows the endpoint's step."""
    durations = hs.integers(0, 4 * step_ms)
    for _ in range(count):
        kind = data.draw(hs.sampled_from(EVENTS))
        if kind == "hint" and not hints:
            kind = "clear"
        if kind in ("run", "late run", "run with a change"):
            scale = step_ms // 4 if kind != "late run" else 3 * step_ms
            claimed = sim.claim(ms(data.draw(hs.integers(0, scale))))
            took = ms(data.draw(hs.integers(0, step_ms * 2)))
            if kind == "run with a change":  # a pause or hint written while the call runs
                _steer(data, sim, sim.now + took / 2, durations, hints)
            sim.run(timedelta(0), took, data.draw(hs.booleans()), claimed)
        elif kind == "wait":  # downtime: the scheduler is away (or the job was paused)
            sim.now += ms(data.draw(durations))
            if data.draw(hs.booleans()):
                sim.change(sim.now)  # the job resumes: its endpoints are replanned
        else:  # an API write, perhaps while the endpoint is overdue (scheduler away)
            sim.now += ms(data.draw(hs.integers(0, step_ms)))
            _steer_kind(data, sim, kind, sim.now, durations)


def _steer(
    data: hs.DataObject, sim: Sim, at: datetime, durations: hs.SearchStrategy[int], hints: bool
) -> None:
    kinds = ["pause", "resume", "oneshot", "clear"] + (["hint"] if hints else [])
    _steer_kind(data, sim, data.draw(hs.sampled_from(kinds)), at, durations)


def _steer_kind(
    data: hs.DataObject, sim: Sim, kind: str, at: datetime, durations: hs.SearchStrategy[int]
) -> None:
    s = sim.state
    if kind == "pause":
        sim.change(at, paused_until=at + ms(1 + data.draw(durations)))
    elif kind == "resume":
        sim.change(at, paused_until=None)
    elif kind == "hint":  # inside the endpoint's clamps, as the API requires
        low = max(s.min_interval_ms or 1, MIN_GAP_MS)
        high = s.max_interval_ms or 10 * max(low, s.baseline_interval_ms or 1)
        interval = data.draw(hs.integers(min(low, high), high))
        ttl = ms(1 + data.draw(durations))
        sim.change(at, hint_interval_ms=interval, hint_interval_expires_at=at + ttl)
    elif kind == "oneshot":
        when = at + ms(1 + data.draw(durations))
        ttl = ms(data.draw(durations))
        sim.change(at, hint_oneshot_at=when, hint_oneshot_expires_at=when + ttl)
    elif kind == "clear":
        sim.change(
            at,
            hint_interval_ms=None,
            hint_interval_expires_at=None,
            hint_oneshot_at=None,
            hint_oneshot_expires_at=None,
        )
    else:
        sim.change(at, failure_count=0)


@hs.composite
def interval_endpoints(draw: hs.DrawFn) -> tuple[ScheduleState, datetime]:
    step = draw(hs.sampled_from([1_000, 2_500, 60_000, 3_600_000]) | hs.integers(1_000, 10**7))
    low = draw(hs.none() | hs.integers(1, 2 * step))
    high = draw(hs.none() | hs.integers(max(low or 1, MIN_GAP_MS), 4 * step))
    start = draw(hs.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1), timezones=hs.just(UTC)))
    state = ScheduleState(baseline_interval_ms=step, min_interval_ms=low, max_interval_ms=high)
    return state, start


@pytest.mark.slow
@SPACING
@given(interval_endpoints(), hs.data())
def test_interval_runs_are_never_closer_than_the_interval_in_force(
    endpoint: tuple[ScheduleState, datetime], data: hs.DataObject
) -> None:
    state, start = endpoint
    sim = Sim.start(state, start)
    assert state.baseline_interval_ms is not None
    _drive(data, sim, state.baseline_interval_ms, hints=True, count=30)
    previous: Ran | None = None
    steps: list[timedelta] = []
    for ran, gap_steps in zip(sim.runs, sim.steps[1:], strict=False):
        if ran.oneshot:  # "run now": excepted, and the spacing is checked across it
            steps += gap_steps
            continue
        if previous is not None:
            need = _clamped(min(steps), state.min_interval_ms, state.max_interval_ms)
            assert ran.at - previous.at >= need, "\n".join(sim.log)
        previous, steps = ran, list(gap_steps)


@pytest.mark.slow
@FEWER
@given(
    hs.sampled_from(CRONS),
    hs.sampled_from(ZONES),
    hs.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1), timezones=hs.just(UTC)),
    hs.data(),
)
def test_cron_catch_ups_never_land_in_the_second_half_of_a_gap(
    cron: str, zone: str, start: datetime, data: hs.DataObject
) -> None:
    state = ScheduleState(baseline_cron=cron, timezone=zone)
    sim = Sim.start(state, start)
    first = sim.state.next_run_at
    assert first is not None
    gap = next_cron_time(cron, zone, first) - first
    _drive(data, sim, int(gap / ms(1)), hints=False, count=25)
    previous: Ran | None = None
    for ran in sim.runs:
        if ran.oneshot:
            continue
        on_slot, _ = cron_slot_after(cron, zone, ran.at)
        if previous is not None and on_slot:
            before = previous_cron_time(cron, zone, ran.at)
            assert (ran.at - previous.at) * 2 >= ran.at - before, "\n".join(sim.log)
        if previous is not None and not on_slot and not ran.consumed:  # nor a one-shot
            missed = next_cron_time(cron, zone, previous.at)
            assert missed < ran.at, "a catch-up with no slot missed:\n" + "\n".join(sim.log)
        previous = ran


@pytest.mark.slow
@FEWER
@given(interval_endpoints(), hs.sampled_from([None, *CRONS]), hs.data())
def test_preview_lists_the_runs_that_happen(
    endpoint: tuple[ScheduleState, datetime], cron: str | None, data: hs.DataObject
) -> None:
    state, start = endpoint
    state = replace(state, baseline_cron=cron, min_interval_ms=None, max_interval_ms=None)
    sim = Sim.start(state, start)
    assert state.baseline_interval_ms is not None
    _drive(data, sim, min(state.baseline_interval_ms, 60_000), hints=True, count=10)
    if sim.state.next_run_at is not None and sim.state.next_run_at < sim.now:
        sim.change(sim.now)  # overdue (the scheduler is away): what any API write does
    expected = preview(sim.state, sim.now, 4, next_source=sim.source)
    happened = [Plan(sim.state.next_run_at, sim.source)]  # type: ignore[arg-type]
    for _ in range(3):
        happened.append(sim.run(timedelta(0), timedelta(0), ok=True))
    assert [p.at for p in expected] == [p.at for p in happened]
    assert [p.source for p in expected[1:]] == [p.source for p in happened[1:]]
    assert Source.PAUSED not in [p.source for p in happened[1:]]
