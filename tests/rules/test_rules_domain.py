"""Assertions and rules as pure values: parsing names the field, decisions are ordered."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronicorn.domain import ScheduleState
from cronicorn.domain.conditions import Response
from cronicorn.domain.errors import RuleError
from cronicorn.domain.rules import (
    DEFAULT_ASSERTIONS,
    already_in_force,
    assertions_to_json,
    decide,
    failed_assertion,
    parse_assertions,
    parse_rules,
    rules_to_json,
    targets,
)

NOW = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


def answer(body: Any, status: int = 200) -> Response:
    return Response(status_code=status, duration_ms=12, body_json=body, is_json=True, body_text="")


def test_default_assertions_accept_2xx_only() -> None:
    assert failed_assertion(DEFAULT_ASSERTIONS, answer({}, 204)) is None
    assert failed_assertion(DEFAULT_ASSERTIONS, answer({}, 302)) == (
        "assertion failed: status 302, expected 2xx"
    )
    assert parse_assertions(None) == DEFAULT_ASSERTIONS


def test_assertion_message_names_the_value() -> None:
    assertions = parse_assertions(
        {
            "statuses": ["2xx", 304],
            "conditions": [{"jsonPath": "$.status", "op": "==", "value": "ok"}],
        }
    )
    assert failed_assertion(assertions, answer({"status": "ok"})) is None
    assert failed_assertion(assertions, answer({"status": "degraded"}, 304)) == (
        'assertion failed: $.status was "degraded", expected "ok"'
    )
    assert parse_assertions(assertions_to_json(assertions)) == assertions


FLASH = [
    {
        "name": "deep queue",
        "when": {"jsonPath": "$.queue.depth", "op": ">", "value": 100},
        "then": {"action": "interval", "intervalMs": 1000, "ttlMinutes": 10},
    },
    {
        "name": "any queue",
        "when": {"jsonPath": "$.queue.depth", "op": ">", "value": 0},
        "then": {"action": "interval", "intervalMs": 5000},
    },
    {
        "when": {"jsonPath": "$.load_status", "op": "==", "value": "high"},
        "then": {"action": "pause", "untilIso": "2031-05-06T09:00:00+02:00", "target": "analytics"},
    },
    {
        "when": {"jsonPath": "$.load_status", "op": "==", "value": "normal"},
        "then": {"action": "resume", "target": "analytics"},
    },
    {"when": {"status": [503]}, "then": {"action": "oneshot", "inMs": 30000, "target": "orders"}},
]


def test_first_matching_rule_per_target_fires() -> None:
    rules = parse_rules(FLASH)
    assert targets(rules) == {"analytics", "orders"}
    effects = decide(rules, answer({"queue": {"depth": 500}, "load_status": "high"}), NOW)
    assert [(e.rule_index, e.kind, e.target) for e in effects] == [
        (0, "interval", None),
        (2, "pause", "analytics"),
    ]
    interval, pause = effects
    assert interval.interval_ms == 1000
    assert interval.interval_expires_at == NOW + timedelta(minutes=10)
    assert pause.paused_until == datetime(2031, 5, 6, 7, 0, tzinfo=UTC)
    assert interval.describe() == {"index": 0, "action": "interval", "name": "deep queue"}

    calm = decide(rules, answer({"queue": {"depth": 3}, "load_status": "normal"}), NOW)
    assert [(e.rule_index, e.kind) for e in calm] == [(1, "interval"), (3, "resume")]
    assert calm[0].interval_expires_at == NOW + timedelta(minutes=60)  # default TTL

    down = decide(rules, Response(status_code=503, body_text="busy"), NOW)
    assert [(e.rule_index, e.oneshot_at) for e in down] == [(4, NOW + timedelta(seconds=30))]
    assert parse_rules(rules_to_json(rules)) == rules


BAD_RULES: list[tuple[Any, str]] = [
    ({"rules": 1}, "rules: expected a list"),
    ([{"when": {"status": [200]}}], "rules[0].then: required"),
    ([{"then": {"action": "clear"}}], "rules[0].when: required"),
    ([{"when": {"status": [200]}, "then": {"action": "explode"}}], "rules[0].then.action"),
    (
        [{"when": {"status": [200]}, "then": {"action": "interval"}}],
        "rules[0].then.intervalMs: required",
    ),
    (
        [{"when": {"status": [200]}, "then": {"action": "interval", "intervalMs": 0}}],
        "rules[0].then.intervalMs",
    ),
    (
        [
            {
                "when": {"status": [200]},
                "then": {"action": "interval", "intervalMs": 10, "forMinutes": 1},
            }
        ],
        "rules[0].then.forMinutes: unknown field",
    ),
    ([{"when": {"status": [200]}, "then": {"action": "pause"}}], "rules[0].then: exactly one of"),
    (
        [{"when": {"status": [200]}, "then": {"action": "pause", "untilIso": "tomorrow"}}],
        "rules[0].then.untilIso",
    ),
    (
        [
            {
                "when": {"status": [200]},
                "then": {"action": "pause", "untilIso": "2031-01-01T00:00:00"},
            }
        ],
        "rules[0].then.untilIso",
    ),
    (
        [{"when": {"status": [200]}, "then": {"action": "clear", "ttlMinutes": 0}}],
        "rules[0].then.ttlMinutes",
    ),
    (
        [{"when": {"status": [200]}, "then": {"action": "clear", "target": 5}}],
        "rules[0].then.target",
    ),
    ([{"name": "", "when": {"status": [200]}, "then": {"action": "clear"}}], "rules[0].name"),
    (
        [{"when": {"status": [200]}, "then": {"action": "clear"}}] * 21,
        "rules: expected a list of at most",
    ),
    (
        [{"when": {"jsonPath": "$..[", "op": "exists"}, "then": {"action": "clear"}}],
        "rules[0].when.jsonPath",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD_RULES)
def test_bad_rules_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rules(raw)
    assert str(info.value).startswith(message), str(info.value)


def test_bad_assertions_name_the_field() -> None:
    with pytest.raises(RuleError, match=r"^assertions\.statuses\[0\]"):
        parse_assertions({"statuses": ["abc"]})
    with pytest.raises(RuleError, match=r"^assertions\.conditions\[1\]\.regex"):
        parse_assertions({"conditions": [{"status": [200]}, {"regex": "(?<=x)"}]})
    with pytest.raises(RuleError, match=r"^assertions\.expect: unknown field"):
        parse_assertions({"expect": 1})


def test_an_identical_hint_is_rewritten_once_a_tenth_of_its_ttl_passed() -> None:
    ttl = timedelta(minutes=10)
    stored = ScheduleState(hint_interval_ms=1000, hint_interval_expires_at=NOW + ttl)

    def fired_at(later: timedelta, **changes: Any) -> ScheduleState:
        # What the rule writes when it fires again `later` (its TTL counted from then).
        fields = {"hint_interval_ms": 1000, "hint_interval_expires_at": NOW + later + ttl}
        return ScheduleState(**{**fields, **changes})

    assert already_in_force(stored, fired_at(timedelta(seconds=59)), NOW + timedelta(seconds=59))
    assert not already_in_force(stored, fired_at(timedelta(minutes=1)), NOW + timedelta(minutes=1))
    assert not already_in_force(stored, fired_at(timedelta(0), hint_interval_ms=2000), NOW)
    assert not already_in_force(stored, fired_at(timedelta(0), paused_until=NOW + ttl), NOW)
    shorter = replace(stored, hint_interval_expires_at=NOW + timedelta(minutes=5))
    assert not already_in_force(stored, shorter, NOW)  # a shorter TTL is written at once
    expired = replace(stored, hint_interval_expires_at=NOW - timedelta(seconds=1))
    assert not already_in_force(expired, fired_at(timedelta(0)), NOW)
    assert already_in_force(ScheduleState(), ScheduleState(), NOW)  # resume/clear: no-ops
    oneshot = ScheduleState(hint_oneshot_at=NOW + ttl, hint_oneshot_expires_at=NOW + 2 * ttl)
    assert already_in_force(oneshot, oneshot, NOW)
    moved = replace(oneshot, hint_oneshot_at=NOW + ttl + timedelta(seconds=1))
    assert not already_in_force(oneshot, moved, NOW)  # one-shots move: always written
