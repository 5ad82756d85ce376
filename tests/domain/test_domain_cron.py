"""Cron evaluation in IANA zones: syntax, strictly-after, and the documented DST behaviour."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from cronicorn.domain import (
    CronError,
    DomainError,
    ScheduleError,
    TimezoneError,
    next_cron_time,
    validate_cron,
    validate_timezone,
)
from cronicorn.domain.cron import cron_slot_after, previous_cron_time


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: str) -> datetime:
    """A UTC instant given as local wall time (fold=0, i.e. the first occurrence)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize(
    "expr",
    [
        "* * * * *",
        "0 9 * * MON-FRI",
        "*/15 0-6 1,15 jan-jun sun",
        "0 0 L * *",
        "0 0 * * 5L",
        "0 0 * * 1#2",
        "0 0 29 2 *",
        "*/10 * * * * *",  # 6 fields: leading seconds
        "  0   12 * * *  ",
        "@daily",
        "@hourly",
        "@weekly",
    ],
)
def test_valid_cron_expressions(expr: str) -> None:
    validate_cron(expr)


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("* * * *", "has 4 fields; expected 5"),
        ("0 0 0 1 1 * 2030", "has 7 fields"),
        ("61 * * * *", "bad minute"),
        ("* 24 * * *", "bad hour"),
        ("*/0 * * * *", "bad minute"),
        ("5-1 * * * *", "bad minute"),
        ("* * 31 2 *", "bad day-of-month"),  # 31 February never exists
        ("* * * * FUNDAY", "bad day-of-week"),
        ("@often", "1 fields"),
        ("0 0 ? * *", "bad day-of-month"),
    ],
)
def test_invalid_cron_raises_typed_error_with_reason(expr: str, reason: str) -> None:
    with pytest.raises(CronError, match=reason) as info:
        validate_cron(expr)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, DomainError)


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_valid_timezones(name: str) -> None:
    validate_timezone(name)


@pytest.mark.parametrize("name", ["", "Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime"])
def test_invalid_timezone_raises_typed_error(name: str) -> None:
    with pytest.raises(TimezoneError, match="timezone"):
        validate_timezone(name)


def test_next_cron_time_is_strictly_after_and_utc() -> None:
    at = next_cron_time("0 * * * *", "UTC", utc("2024-05-01T12:00:00"))
    assert at == utc("2024-05-01T13:00:00")
    assert at.tzinfo is UTC
    assert next_cron_time("0 * * * *", "UTC", utc("2024-05-01T11:59:59.999")) == utc(
        "2024-05-01T12:00:00"
    )


def test_six_field_cron_has_seconds() -> None:
    after = utc("2024-05-01T12:00:00.500")
    assert next_cron_time("*/20 * * * * *", "UTC", after) == utc("2024-05-01T12:00:20")


def test_timezone_shifts_the_slot() -> None:
    after = utc("2024-01-15T00:00:00")
    assert next_cron_time("0 9 * * *", "Asia/Kolkata", after) == utc("2024-01-15T03:30:00")
    assert next_cron_time("0 9 * * *", "America/New_York", after) == utc("2024-01-15T14:00:00")


def test_next_cron_time_rejects_naive_datetimes_and_bad_input() -> None:
    with pytest.raises(ScheduleError):
        next_cron_time("* * * * *", "UTC", datetime(2024, 1, 1))
    with pytest.raises(CronError):
        next_cron_time("nope", "UTC", utc("2024-01-01T00:00:00"))
    with pytest.raises(TimezoneError):
        next_cron_time("* * * * *", "Nowhere/Special", utc("2024-01-01T00:00:00"))


# --- DST: explicit minute and hour name wall-clock times ---------------------------------

DST_CASES = [
    # spring forward: 02:30 does not exist, runs once at the end of the gap (03:00 local)
    ("Europe/Berlin", "30 2 * * *", "2024-03-30T12:00", "2024-03-31T01:00"),
    ("America/New_York", "30 2 * * *", "2024-03-09T12:00", "2024-03-10T07:00"),
    ("America/New_York", "0 30 2 * * *", "2024-03-09T12:00", "2024-03-10T07:00"),  # 6 fields
    # ... and the day after is back to normal
    ("Europe/Berlin", "30 2 * * *", "2024-03-31T01:00", "2024-04-01T00:30"),
    ("America/New_York", "30 2 * * *", "2024-03-10T07:00", "2024-03-11T06:30"),
    # fall back: 02:30 (Berlin) / 01:30 (New York) happen twice, run at the first only
    ("Europe/Berlin", "30 2 * * *", "2024-10-26T12:00", "2024-10-27T00:30"),
    ("Europe/Berlin", "30 2 * * *", "2024-10-27T00:30", "2024-10-28T01:30"),
    ("Europe/Berlin", "30 2 * * *", "2024-10-27T01:00", "2024-10-28T01:30"),  # inside 2nd pass
    ("America/New_York", "30 1 * * *", "2024-11-02T12:00", "2024-11-03T05:30"),
    ("America/New_York", "30 1 * * *", "2024-11-03T05:30", "2024-11-04T06:30"),
    ("America/New_York", "30 1 * * *", "2024-11-03T06:15", "2024-11-04T06:30"),  # 01:15 EST
]


@pytest.mark.parametrize(("zone", "expr", "after", "expected"), DST_CASES)
def test_dst_wall_clock_rules(zone: str, expr: str, after: str, expected: str) -> None:
    assert next_cron_time(expr, zone, utc(after)) == utc(expected)


@pytest.mark.parametrize(
    ("zone", "expr", "start"),
    [
        ("Europe/Berlin", "30 2 * * *", "2024-03-25T00:00"),
        ("Europe/Berlin", "30 2 * * *", "2024-10-21T00:00"),
        ("America/New_York", "30 2 * * *", "2024-03-05T00:00"),
        ("America/New_York", "30 1 * * *", "2024-10-29T00:00"),
    ],
)
def test_daily_job_runs_exactly_once_per_local_day_across_dst(
    zone: str, expr: str, start: str
) -> None:
    after, days = utc(start), []
    for _ in range(14):
        after = next_cron_time(expr, zone, after)
        days.append(after.astimezone(ZoneInfo(zone)).date())
    assert days == sorted(set(days))
    assert (days[-1] - days[0]).days == 13  # consecutive days, none skipped or doubled


def test_hourly_job_follows_real_hours_through_fall_back() -> None:
    """Frequency expressions count elapsed time: 25 runs on the 25-hour day."""
    zone = "America/New_York"
    start, end = local("2024-11-03T00:00", zone), local("2024-11-04T00:00", zone)
    runs, at = [], start - timedelta(seconds=1)
    while (at := next_cron_time("0 * * * *", zone, at)) < end:
        runs.append(at)
    assert len(runs) == 25
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(runs))


def test_frequent_job_never_gaps_across_spring_forward() -> None:
    zone = "Europe/Berlin"
    at = local("2024-03-31T01:00", zone)
    for _ in range(12):
        following = next_cron_time("*/15 * * * *", zone, at)
        assert following - at == timedelta(minutes=15)
        at = following


def test_half_hour_dst_zone_gap_end() -> None:
    """Lord Howe moves clocks by 30 minutes: 02:15 is skipped and runs at 02:30 local."""
    zone = "Australia/Lord_Howe"
    after = local("2024-10-05T12:00", zone)
    at = next_cron_time("15 2 * * *", zone, after)
    assert at.astimezone(ZoneInfo(zone)).replace(tzinfo=None) == datetime(2024, 10, 6, 2, 30)


# --- the gap an instant falls in (cron catch-ups, issue 9.4) -------------------------------

GAP_CRONS = ["*/5 * * * *", "0 * * * *", "30 2 * * *", "30 1 * * *", "0 9,17 * * 1-5"]
GAP_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@settings(deadline=None, max_examples=200)
@given(
    hs.sampled_from(GAP_CRONS),
    hs.sampled_from(GAP_ZONES),
    hs.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1), timezones=hs.just(UTC)),
)
def test_previous_and_next_firings_bound_every_instant(expr: str, zone: str, at: datetime) -> None:
    before = previous_cron_time(expr, zone, at)
    after = next_cron_time(expr, zone, at)
    assert before < at < after
    assert next_cron_time(expr, zone, before) >= at  # no firing strictly between
    assert previous_cron_time(expr, zone, after) <= at
    on_slot, following = cron_slot_after(expr, zone, at)
    assert following == after
    assert on_slot == (next_cron_time(expr, zone, at - timedelta(seconds=1)) == at)
    slot, next_slot = cron_slot_after(expr, zone, before)
    assert slot
    assert next_slot == next_cron_time(expr, zone, before)


def test_previous_firing_across_dst() -> None:
    berlin = "Europe/Berlin"
    # Spring forward: 02:30 is skipped and runs at 03:00 CEST (01:00 UTC).
    assert previous_cron_time("30 2 * * *", berlin, utc("2024-03-31T01:00:01")) == utc(
        "2024-03-31T01:00:00"
    )
    assert previous_cron_time("30 2 * * *", berlin, utc("2024-03-31T01:00:00")) == utc(
        "2024-03-30T01:30:00"
    )
    # Fall back: a wall-clock slot runs at its first occurrence, found from the second.
    assert previous_cron_time("30 1 * * *", berlin, utc("2024-10-27T00:45:00")) == utc(
        "2024-10-26T23:30:00"
    )
    # A frequency follows real hours: both 02:00 of the repeated hour exist.
    assert previous_cron_time("0 * * * *", berlin, utc("2024-10-27T01:00:00")) == utc(
        "2024-10-27T00:00:00"
    )
    with pytest.raises(ScheduleError):
        previous_cron_time("* * * * *", "UTC", datetime(2024, 1, 1))
