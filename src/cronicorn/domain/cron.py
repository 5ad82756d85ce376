"""Cron expressions in a per-endpoint IANA timezone, evaluated with `cronsim`.

Syntax: the classic 5 fields (minute hour day-of-month month day-of-week), or 6 with a
leading seconds field (as the reference's cron-parser accepted), names (JAN, MON), ranges,
steps, lists, `L`, `LW`, `nL` and `n#k`; day-of-month and day-of-week combine like Debian
cron. Macros @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly are
expanded first.

Daylight saving time, decided by the minute and hour fields:

* Both explicit (`30 2 * * *`, `0 9-17 * * 1-5`): they name local wall-clock times. A time
  skipped by spring-forward runs once at the first instant after the gap (02:30 -> 03:00);
  a time repeated by fall-back runs once, at its first occurrence.
* Either a wildcard or starting with `*` (`*/5 * * * *`, `0 * * * *`): the expression is a
  frequency and follows real elapsed time, as Debian cron does, so an hourly job runs every
  real hour through both transitions (twice at 01:00 local in the repeated hour, not at all
  at 02:00 on the skipped one) and a 5-minute job never pauses for an hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from cronicorn.domain.constants import CRON_SEARCH_LIMIT
from cronicorn.domain.errors import CronError, ScheduleError, TimezoneError

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_PROBE_START = datetime(2000, 1, 1)  # naive: validation only checks that the rule can fire
_SECOND = timedelta(seconds=1)
_DST_MARGIN = timedelta(hours=2, seconds=1)  # past the largest clock change of any zone (2 h)


def _normalise(expr: str) -> str:
    if not isinstance(expr, str) or not expr.strip():
        raise CronError("cron expression is empty")
    text = " ".join(expr.split())
    text = _MACROS.get(text.lower(), text)
    count = len(text.split())
    if count not in (5, 6):
        raise CronError(
            f"cron expression {expr!r} has {count} fields; expected 5 "
            "(minute hour day-of-month month day-of-week) or 6 with a leading seconds field"
        )
    return text


@lru_cache(maxsize=4096)
def _checked(expr: str) -> str:
    """The normalised expression, after proving cronsim parses it and it fires at all."""
    text = _normalise(expr)
    try:
        next(CronSim(text, _PROBE_START))
    except CronSimError as exc:
        raise CronError(f"invalid cron expression {expr!r}: {str(exc).lower()}") from None
    except StopIteration:
        raise CronError(f"cron expression {expr!r} never matches a date") from None
    except (ValueError, KeyError, IndexError, AssertionError):
        raise CronError(f"invalid cron expression {expr!r}") from None
    return text


def validate_cron(expr: str) -> None:
    """Raise CronError with a readable reason unless `expr` is a usable cron expression."""
    _checked(expr)


@lru_cache(maxsize=1024)
def _zone(name: str) -> tzinfo:
    if not isinstance(name, str) or not name.strip():
        raise TimezoneError("timezone is empty; use an IANA name such as 'UTC' or 'Europe/Berlin'")
    if name == "UTC":
        return UTC  # the common case: skips per-tick zone conversions in cronsim
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimezoneError(
            f"unknown timezone {name!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def validate_timezone(name: str) -> None:
    """Raise TimezoneError unless `name` is a known IANA timezone."""
    _zone(name)


def _is_wall_clock(text: str) -> bool:
    fields = text.split()
    minute, hour = fields[-5], fields[-4]
    return not minute.startswith("*") and not hour.startswith("*")


def next_cron_time(expr: str, tz: str, after: datetime) -> datetime:
    """The first firing of `expr` in zone `tz` strictly after `after`, as an aware UTC time."""
    return next(_firings(expr, tz, after))


def cron_slot_after(expr: str, tz: str, at: datetime) -> tuple[bool, datetime]:
    """Whether `at` is itself a firing, and the first firing strictly after it, from ONE
    search (the scheduler asks both after every cron run: cron evaluation is its main cost)."""
    firings = _firings(expr, tz, at - _SECOND)
    first = next(firings)
    while first < at:  # `at` with a fraction of a second: a firing just before it
        first = next(firings)
    if first > at:
        return False, first
    return True, next(firings)


def previous_cron_time(expr: str, tz: str, before: datetime) -> datetime:
    """The last firing of `expr` in zone `tz` strictly before `before` (aware UTC): with
    `next_cron_time`, the gap a given instant falls in."""
    if before.tzinfo is None:
        raise ScheduleError("previous_cron_time needs a timezone-aware datetime")
    text, zone = _checked(expr), _zone(tz)
    before = before.astimezone(UTC)
    wall = _is_wall_clock(text) and zone is not UTC
    if wall:
        # Naive local times map to instants in the same order; start past any fold or gap so
        # that a slot of a repeated hour (mapped to its first occurrence) is not missed.
        start = before.astimezone(zone).replace(tzinfo=None) + _DST_MARGIN
        slots = _search(text, start, reverse=True)
    else:
        slots = _search(text, before.astimezone(zone), reverse=True)
    for _ in range(CRON_SEARCH_LIMIT):
        naive_or_aware = _step(slots, text)
        at = _wall_to_utc(naive_or_aware, zone) if wall else naive_or_aware.astimezone(UTC)
        if at < before:
            return at
    raise CronError(f"cron expression {text!r}: no firing found before {before.isoformat()}")


def _firings(expr: str, tz: str, after: datetime) -> Iterator[datetime]:
    """Successive firings strictly after `after`, increasing (see the module docstring)."""
    if after.tzinfo is None:
        raise ScheduleError("next_cron_time needs a timezone-aware datetime")
    text, zone = _checked(expr), _zone(tz)
    after = after.astimezone(UTC)
    wall = _is_wall_clock(text) and zone is not UTC
    if wall:
        slots = _search(text, after.astimezone(zone).replace(tzinfo=None))
    else:
        slots = _search(text, after.astimezone(zone))
    last, misses = after, 0
    while misses < CRON_SEARCH_LIMIT:
        slot = _step(slots, text)
        at = _wall_to_utc(slot, zone) if wall else slot.astimezone(UTC)
        # Wall clock: a slot of the repeated hour may map before `after`, and two skipped
        # times map to the same instant: keep each instant once, in order.
        if at > last:
            last, misses = at, 0
            yield at
        else:
            misses += 1
    raise CronError(f"cron expression {text!r}: no firing found after {after.isoformat()}")


def _search(expr: str, start: datetime, *, reverse: bool = False) -> CronSim:
    try:
        return CronSim(expr, start, reverse=reverse)
    except CronSimError as exc:  # pragma: no cover - _checked already parsed it
        raise CronError(f"invalid cron expression {expr!r}: {exc}") from None


def _step(slots: CronSim, text: str) -> datetime:
    try:
        return next(slots)
    except StopIteration:
        raise CronError(f"cron expression {text!r} never fires again") from None


def _wall_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """A local wall time as UTC: first occurrence if repeated, end of the gap if skipped."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap, fold=1 maps before the transition and fold=0 after it: bisect to the
    # transition, the first instant whose local time is past the skipped one.
    lo = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first
    while hi - lo > _SECOND:
        mid = lo + (hi - lo) // 2
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi
