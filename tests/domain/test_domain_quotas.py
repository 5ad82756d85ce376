"""Quota months are UTC calendar months; the interval floor only ever raises a minimum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from cronicorn.domain import NO_QUOTAS, Quotas, month_start, next_month_start

OSLO_WINTER = timezone(timedelta(hours=1))


def test_months_are_utc_calendar_months() -> None:
    # 00:30 on 1 March in UTC+1 is still February in UTC.
    local = datetime(2026, 3, 1, 0, 30, tzinfo=OSLO_WINTER)
    assert month_start(local) == datetime(2026, 2, 1, tzinfo=UTC)
    assert next_month_start(local) == datetime(2026, 3, 1, tzinfo=UTC)
    assert next_month_start(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert month_start(datetime(2026, 5, 1, tzinfo=UTC)) == datetime(2026, 5, 1, tzinfo=UTC)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_every_instant_lies_in_exactly_one_month(now: datetime) -> None:
    start, end = month_start(now), next_month_start(now)
    assert start <= now < end
    assert (start.day, end.day) == (1, 1)
    assert 28 <= (end - start).days <= 31
    assert month_start(end) == end


def test_the_interval_floor_raises_minimums_and_is_off_at_zero() -> None:
    assert NO_QUOTAS.interval_floor(None) is None
    assert NO_QUOTAS.interval_floor(500) == 500
    floor = Quotas(min_interval_ms=60_000)
    assert floor.interval_floor(None) == 60_000
    assert floor.interval_floor(1_000) == 60_000
    assert floor.interval_floor(90_000) == 90_000
