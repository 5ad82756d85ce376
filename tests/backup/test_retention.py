"""Grandfather-father-son retention: worked cases and properties (hypothesis)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cronicorn.backup.retention import RULES, Candidate, Policy, newest_first, plan

START = datetime(2024, 1, 1, tzinfo=UTC)


def _daily(days: int, *, hour: int = 2, verified: bool = False) -> list[Candidate]:
    return [
        Candidate(f"b{d:04d}", START + timedelta(days=d, hours=hour), verified) for d in range(days)
    ]


def test_thirty_daily_twelve_monthly_like_the_seed_suggests() -> None:
    backups = _daily(400)
    result = plan(backups, Policy(daily=30, weekly=0, monthly=12))
    kept = set(result.keep)
    assert {b.name for b in backups[-30:]} <= kept
    monthly = [n for n, reasons in result.keep.items() if any("monthly" in r for r in reasons)]
    assert len(monthly) == 12
    # the last 30 days (2025-01-05..02-03) also hold the newest of January and of February
    assert len(kept) == 30 + 12 - 2
    assert set(result.delete) == {b.name for b in backups} - kept
    assert result.delete == sorted(result.delete), "oldest first"


def test_several_backups_a_day_keep_the_newest_of_each_day() -> None:
    backups = [
        Candidate(f"d{d}h{h}", START + timedelta(days=d, hours=h))
        for d in range(3)
        for h in (1, 13)
    ]
    result = plan(backups, Policy(daily=2, weekly=0, monthly=0))
    assert set(result.keep) == {"d2h13", "d1h13"}


def test_the_newest_verified_backup_is_kept_even_when_no_rule_keeps_it() -> None:
    backups = [*_daily(10), Candidate("old-verified", START - timedelta(days=100), True)]
    result = plan(backups, Policy(daily=3, weekly=0, monthly=0))
    assert result.keep["old-verified"] == ["newest verified"]


def test_zero_everywhere_deletes_all_but_the_newest_verified_and_pinned() -> None:
    backups = [*_daily(5, verified=True), Candidate("pin", START - timedelta(days=9))]
    result = plan(backups, Policy(daily=0, weekly=0, monthly=0), frozenset({"pin"}))
    assert set(result.keep) == {"b0004", "pin"}


# -- properties --------------------------------------------------------------------------------
@st.composite
def backup_sets(draw: st.DrawFn) -> list[Candidate]:
    offsets = draw(st.lists(st.integers(0, 3 * 365 * 24), min_size=0, max_size=60, unique=True))
    flags = draw(st.lists(st.booleans(), min_size=len(offsets), max_size=len(offsets)))
    return [
        Candidate(f"c{i:03d}", START + timedelta(hours=h), v)
        for i, (h, v) in enumerate(zip(offsets, flags, strict=True))
    ]


policies = st.builds(Policy, st.integers(0, 40), st.integers(0, 60), st.integers(0, 24))


def _expected(
    backups: list[Candidate], count: int, bucket_of: Callable[[datetime], Hashable]
) -> set[str]:
    """Independent restatement: newest backup of each of the `count` most recent buckets."""
    newest: dict[Hashable, Candidate] = {}
    for b in backups:
        key = bucket_of(b.created_at)
        if key not in newest or (b.created_at, b.name) > (
            newest[key].created_at,
            newest[key].name,
        ):
            newest[key] = b
    recent = sorted(newest, key=lambda k: newest[k].created_at, reverse=True)[:count]
    return {newest[k].name for k in recent}


@settings(max_examples=300, deadline=None)
@given(backup_sets(), policies)
def test_never_deletes_the_newest_verified_backup(backups: list[Candidate], policy: Policy) -> None:
    verified = [b for b in newest_first(backups) if b.verified]
    result = plan(backups, policy)
    if verified:
        assert verified[0].name in result.keep
        assert verified[0].name not in result.delete


@settings(max_examples=300, deadline=None)
@given(backup_sets(), policies)
def test_keeps_what_each_rule_says_and_nothing_else(
    backups: list[Candidate], policy: Policy
) -> None:
    result = plan(backups, policy)
    limits = {"daily": policy.daily, "weekly": policy.weekly, "monthly": policy.monthly}
    wanted: set[str] = set()
    for rule, bucket_of in RULES:
        by_rule = _expected(backups, limits[rule], bucket_of)
        assert by_rule <= set(result.keep), f"{rule} rule not honoured"
        tagged = {n for n, reasons in result.keep.items() if any(rule in r for r in reasons)}
        assert tagged == by_rule
        wanted |= by_rule
    verified = [b for b in newest_first(backups) if b.verified]
    wanted |= {verified[0].name} if verified else set()
    assert set(result.keep) == wanted, "nothing is kept without a reason"


@settings(max_examples=300, deadline=None)
@given(backup_sets(), policies)
def test_partition_and_idempotence(backups: list[Candidate], policy: Policy) -> None:
    result = plan(backups, policy)
    names = {b.name for b in backups}
    assert set(result.keep) | set(result.delete) == names
    assert not set(result.keep) & set(result.delete)
    survivors = [b for b in backups if b.name in result.keep]
    assert plan(survivors, policy).delete == [], "pruning twice deletes nothing more"
