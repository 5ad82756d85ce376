"""The preview's account of response rules: what each would do if it fires, with the clamp
the scheduler applies, siblings named, nothing for no (or unusable) rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronicorn.domain import ScheduleState
from cronicorn.domain.conditions import describe, parse_condition
from cronicorn.domain.next_runs import draft_runs, next_runs
from cronicorn.domain.rules_preview import ORDER_NOTE, Bounds, duration, rule_notes, rule_targets

NOW = datetime(2033, 4, 5, 6, 7, 8, tzinfo=UTC)
DEEP = {
    "name": "deep queue",
    "when": {"jsonPath": "$.queue.depth", "op": ">", "value": 100},
    "then": {"action": "interval", "intervalMs": 1000, "ttlMinutes": 10},
}


def test_an_interval_rule_says_its_condition_ttl_and_clamp() -> None:
    notes = rule_notes([DEEP], Bounds(min_interval_ms=5000), {})
    assert notes == (
        "rule 'deep queue': when $.queue.depth > 100, interval 1 s for 10 min (clamped to min 5 s)",
    )
    slow = {**DEEP, "then": {"action": "interval", "intervalMs": 7_200_000}}
    assert rule_notes([slow], Bounds(max_interval_ms=3_600_000), {}) == (
        "rule 'deep queue': when $.queue.depth > 100, interval 2 h for 1 h (clamped to max 1 h)",
    )
    fast = {**DEEP, "then": {"action": "interval", "intervalMs": 200}}
    assert rule_notes([fast], Bounds(), {})[0].endswith("interval 200 ms for 1 h (at least 1 s)")


def test_sibling_targets_are_named_with_their_own_clamps() -> None:
    rules = [
        {
            "when": {"any": [{"status": ["5xx", 429]}, {"latencyMs": {"above": 2000}}]},
            "then": {"action": "pause", "forMinutes": 5, "target": "sib"},
        },
        {
            "when": {"not": {"jsonPath": "$.ok", "op": "exists"}},
            "then": {"action": "interval", "intervalMs": 2000, "target": "sib"},
        },
        {"when": {"regex": "^busy"}, "then": {"action": "clear", "target": "gone"}},
        {"when": {"status": [200]}, "then": {"action": "oneshot", "inMs": 0, "target": "me"}},
    ]
    siblings = {"sib": Bounds("analytics", min_interval_ms=60_000)}
    assert rule_targets(rules) == {"sib", "gone", "me"}
    assert rule_notes(rules, Bounds(), siblings, endpoint_id="me") == (
        ORDER_NOTE,
        "rule 1: when status in 5xx, 429 or latency above 2000 ms, pause for 5 min "
        "on sibling 'analytics' (sib)",
        "rule 2: when not ($.ok exists), interval 2 s for 1 h (clamped to min 1 min) "
        "on sibling 'analytics' (sib)",
        "rule 3: when body matches /^busy/, clear hints (back to the baseline schedule) "
        "on endpoint gone (not found)",
        "rule 4: when status 200, one extra run 1 s after the run (never sooner than 1 s), "
        "kept for 1 h if it cannot run then",
    )


def test_no_rules_or_unusable_ones_say_nothing() -> None:
    assert rule_notes(None, Bounds(), {}) == ()
    assert rule_notes([], Bounds(), {}) == ()
    assert rule_notes([{"when": {"status": [999]}}], Bounds(), {}) == ()
    assert rule_targets("not a list") == set()


def test_every_planned_run_carries_the_rules() -> None:
    state = ScheduleState(baseline_interval_ms=60_000, next_run_at=NOW + timedelta(seconds=30))
    notes = rule_notes([DEEP], Bounds(), {})
    plans = next_runs(state, NOW, 3, next_source="baseline-interval", hint_source=None, rules=notes)
    assert [p.rules for p in plans] == [notes] * 3
    assert all(p.rules == () for p in next_runs(state, NOW, 2, next_source="x", hint_source=None))
    assert [p.rules for p in draft_runs(state, NOW, 2, rules=notes)] == [notes] * 2


def test_conditions_and_durations_in_words() -> None:
    nested = parse_condition(
        {"all": [{"jsonPath": "$.a", "op": "==", "value": "x"}, {"any": [{"status": [503]}]}]}
    )
    assert describe(nested) == '$.a == "x" and status 503'
    both = parse_condition({"latencyMs": {"above": 10, "below": 20}})
    assert describe(both) == "latency above 10 ms and below 20 ms"
    assert [duration(ms) for ms in (999, 1000, 1500, 90_000, 86_400_000)] == [
        "999 ms",
        "1 s",
        "1.5 s",
        "90 s",
        "1 d",
    ]
