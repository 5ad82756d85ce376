"""The scheduler's rule step without a database: own effects land in the state the governor
plans from (an own id as target counts as itself), sibling effects are handed on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cronicorn.domain import ScheduleState
from cronicorn.scheduler.rules_step import after_run
from cronicorn.store.run_writes import RunOutcome

NOW = datetime(2032, 2, 3, 4, 5, 6, tzinfo=UTC)


def outcome(body: object, status: int = 200) -> RunOutcome:
    return RunOutcome("r", "success", NOW, NOW, duration_ms=5, status_code=status, body_json=body)


RULES = json.dumps(
    [
        {"when": {"status": [503]}, "then": {"action": "pause", "forMinutes": 5}},
        {
            "name": "tighten",
            "when": {"jsonPath": "$.depth", "op": ">", "value": 10},
            "then": {"action": "interval", "intervalMs": 2000, "target": "me"},
        },
        {
            "when": {"jsonPath": "$.depth", "op": ">", "value": 10},
            "then": {"action": "clear", "target": "sib"},
        },
    ]
)


def test_own_and_sibling_effects() -> None:
    state = ScheduleState(baseline_interval_ms=60_000, paused_until=NOW + timedelta(hours=1))
    applied = after_run(RULES, outcome({"depth": 50}), state, NOW, "me")
    assert applied is not None
    assert applied.own
    assert applied.state.hint_interval_ms == 2000
    assert applied.state.hint_interval_expires_at == NOW + timedelta(minutes=60)
    assert applied.state.paused_until == state.paused_until  # untouched
    assert state.hint_interval_ms is None  # the input is not changed
    assert [e.target for e in applied.siblings] == ["sib"]
    assert [f["action"] for f in applied.fired] == ["interval", "clear"]


def test_nothing_fires_on_the_hot_path() -> None:
    state = ScheduleState(baseline_interval_ms=60_000)
    assert after_run(RULES, outcome({"depth": 1}), state, NOW, "me") is None
    assert after_run(None, outcome({"depth": 50}), state, NOW, "me") is None
    assert after_run("not json", outcome({"depth": 50}), state, NOW, "me") is None
    down = after_run(RULES, outcome("busy", 503), state, NOW, "me")
    assert down is not None
    assert down.state.paused_until == NOW + timedelta(minutes=5)
