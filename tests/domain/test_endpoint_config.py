"""An endpoint's whole-row rules and its next runs, as pure functions (no database): the
store, the web form and import all apply these same rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronicorn.domain import Quotas, ScheduleState
from cronicorn.domain.endpoint_config import (
    apply_interval_quota,
    changed,
    check_config,
    merge_changes,
    moves_schedule,
    with_defaults,
)
from cronicorn.domain.errors import ConfigError
from cronicorn.domain.next_runs import draft_runs, next_runs, slot_notes

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVERY_MINUTE = with_defaults({"name": "n", "url": "https://x.test", "baseline_interval_ms": 60_000})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"baseline_cron": "* * * * *"}, "baseline_cron"),  # both baselines
        ({"baseline_interval_ms": None}, "baseline_cron"),  # neither
        ({"baseline_interval_ms": 999}, "baseline_interval_ms"),
        ({"min_interval_ms": 2_000, "max_interval_ms": 1_000}, "min_interval_ms"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"baseline_interval_ms": None, "baseline_cron": "61 * * * *"}, "baseline_cron"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"overlap": "allow", "max_concurrent": 0}, "max_concurrent"),
    ],
)
def test_a_broken_rule_names_its_field(change: dict[str, Any], field: str) -> None:
    check_config(EVERY_MINUTE)
    with pytest.raises(ConfigError) as caught:
        check_config({**EVERY_MINUTE, **change})
    assert caught.value.field == field


def test_an_edit_clears_the_other_baseline_and_nulls_restore_defaults() -> None:
    merged = merge_changes(EVERY_MINUTE, {"baseline_cron": "*/5 * * * *", "method": None})
    assert (merged["baseline_interval_ms"], merged["method"]) == (None, "GET")
    diff = changed(EVERY_MINUTE, merged)
    assert set(diff) == {"baseline_cron", "baseline_interval_ms"}
    assert moves_schedule(diff)
    assert not moves_schedule(changed(EVERY_MINUTE, merge_changes(EVERY_MINUTE, {"name": "m"})))


def test_the_interval_quota_refuses_short_baselines_and_raises_the_minimum() -> None:
    quotas = Quotas(min_interval_ms=120_000)
    with pytest.raises(ConfigError) as caught:
        apply_interval_quota(EVERY_MINUTE, quotas)
    assert caught.value.field == "baseline_interval_ms"
    slow = apply_interval_quota({**EVERY_MINUTE, "baseline_interval_ms": 600_000}, quotas)
    assert slow["min_interval_ms"] == 120_000


def test_next_runs_say_why_and_a_rules_hint_reads_as_rule() -> None:
    state = ScheduleState(
        baseline_interval_ms=60_000,
        hint_interval_ms=120_000,
        hint_interval_expires_at=NOW + timedelta(hours=1),
        next_run_at=NOW + timedelta(minutes=2),
    )
    notes = slot_notes(None, "skip", None)
    runs = next_runs(state, NOW, 3, next_source="ai-interval", hint_source="rule", notes=notes)
    assert [r.at - NOW for r in runs] == [timedelta(minutes=m) for m in (2, 4, 6)]
    assert {r.source for r in runs} == {"rule"}
    assert runs[0].notes == notes != ()
    drafted = draft_runs(ScheduleState(baseline_cron="0 * * * *"), NOW, 2)
    assert [(r.at.hour, r.source) for r in drafted] == [
        (13, "baseline-cron"),
        (14, "baseline-cron"),
    ]
    assert drafted[0].reason == "next slot of the cron schedule"
