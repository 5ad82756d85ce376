"""Grandfather-father-son retention as a pure function (no clock, no files).

Semantics (the ones restic and borg use, so operators' intuition carries over): for
`keep_daily = n`, look at the n most recent calendar days (UTC) that have a backup and keep
the newest backup of each; weekly uses ISO weeks, monthly calendar months. A backup kept by
several rules is kept once, with every reason. On top of the rules, the newest *verified*
backup is always kept, so pruning can never leave only backups nobody has proven restorable.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Policy:
    daily: int = 30
    weekly: int = 52
    monthly: int = 12


@dataclass(frozen=True)
class Candidate:
    name: str
    created_at: datetime  # timezone-aware
    verified: bool = False


@dataclass(frozen=True)
class Plan:
    keep: dict[str, list[str]]  # name -> reasons
    delete: list[str]  # oldest first


def _day(at: datetime) -> Hashable:
    return at.astimezone(UTC).date()


def _week(at: datetime) -> Hashable:
    iso = at.astimezone(UTC).isocalendar()
    return (iso.year, iso.week)


def _month(at: datetime) -> Hashable:
    utc = at.astimezone(UTC)
    return (utc.year, utc.month)


RULES: tuple[tuple[str, Callable[[datetime], Hashable]], ...] = (
    ("daily", _day),
    ("weekly", _week),
    ("monthly", _month),
)


def newest_first(backups: Iterable[Candidate]) -> list[Candidate]:
    return sorted(backups, key=lambda b: (b.created_at, b.name), reverse=True)


def plan(
    backups: Iterable[Candidate], policy: Policy, pinned: frozenset[str] = frozenset()
) -> Plan:
    """What to keep (and why) and what to delete. `pinned` names are always kept (e.g. the
    safety backup of an interrupted restore)."""
    ordered = newest_first(backups)
    keep: dict[str, list[str]] = {}
    limits = {"daily": policy.daily, "weekly": policy.weekly, "monthly": policy.monthly}
    for rule, bucket_of in RULES:
        seen: list[Hashable] = []
        for backup in ordered:
            bucket = bucket_of(backup.created_at)
            if seen and seen[-1] == bucket:
                continue  # an older backup of a bucket already served
            if len(seen) >= limits[rule]:
                break
            seen.append(bucket)
            keep.setdefault(backup.name, []).append(f"{rule} {_label(rule, backup.created_at)}")
    verified = next((b for b in ordered if b.verified), None)
    if verified is not None:
        keep.setdefault(verified.name, []).append("newest verified")
    for backup in ordered:
        if backup.name in pinned:
            keep.setdefault(backup.name, []).append("pinned")
    delete = [b.name for b in reversed(ordered) if b.name not in keep]
    return Plan(keep=keep, delete=delete)


def _label(rule: str, at: datetime) -> str:
    utc = at.astimezone(UTC)
    if rule == "daily":
        return utc.strftime("%Y-%m-%d")
    if rule == "weekly":
        iso = utc.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return utc.strftime("%Y-%m")
