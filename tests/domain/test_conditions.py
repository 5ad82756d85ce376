"""The condition language, case by case: parsing errors name the field, evaluation is JSON-
strict, and untrusted bodies (text, truncated, hostile) make conditions false, never crash."""

from __future__ import annotations

from typing import Any

import pytest

from cronicorn.domain.conditions import (
    MAX_REGEX_TEXT,
    Response,
    explain,
    holds,
    parse_condition,
)
from cronicorn.domain.errors import DomainError, RuleError

BODY = {
    "status": "degraded",
    "ok": True,
    "queue": {"depth": 150, "name": "main"},
    "items": [{"ok": True, "id": 1}, {"ok": False, "id": 2}],
    "count": 0,
    "nothing": None,
}


def json_response(body: Any = BODY, status: int = 200, ms: int = 40) -> Response:
    return Response(
        status_code=status, duration_ms=ms, body_json=body, is_json=True, body_text="{}"
    )


def text_response(text: str, status: int = 200, ms: int = 40) -> Response:
    return Response(status_code=status, duration_ms=ms, body_text=text)


CASES: list[tuple[dict[str, Any], Response, bool]] = [
    ({"status": ["2xx"]}, json_response(), True),
    ({"status": ["2xx"]}, json_response(status=503), False),
    ({"status": [503]}, json_response(status=503), True),
    ({"status": ["500-504"]}, json_response(status=504), True),
    ({"status": ["500-504"]}, json_response(status=505), False),
    ({"status": 404}, json_response(status=404), True),
    ({"status": ["2xx"]}, Response(), False),  # no answer at all
    ({"latencyMs": {"above": 100}}, json_response(ms=101), True),
    ({"latencyMs": {"above": 100}}, json_response(ms=100), False),
    ({"latencyMs": {"below": 100}}, json_response(ms=99), True),
    ({"latencyMs": {"above": 10, "below": 20}}, json_response(ms=30), False),
    ({"jsonPath": "$.queue.depth", "op": ">", "value": 100}, json_response(), True),
    ({"jsonPath": "$.queue.depth", "op": "<=", "value": 100}, json_response(), False),
    ({"jsonPath": "$.queue.depth", "op": ">=", "value": 150.0}, json_response(), True),
    ({"jsonPath": "$.queue.name", "op": "<", "value": "z"}, json_response(), True),
    ({"jsonPath": "$.queue.name", "op": ">", "value": 1}, json_response(), False),
    ({"jsonPath": "$.status", "op": "==", "value": "degraded"}, json_response(), True),
    ({"jsonPath": "$.status", "op": "!=", "value": "ok"}, json_response(), True),
    ({"jsonPath": "$.items[0].ok", "op": "==", "value": True}, json_response(), True),
    ({"jsonPath": "$.items[-1].id", "op": "==", "value": 2}, json_response(), True),
    ({"jsonPath": "$.items[5].id", "op": "exists"}, json_response(), False),
    ({"jsonPath": "$.ok", "op": "==", "value": 1}, json_response(), False),  # true is not 1
    ({"jsonPath": "$.count", "op": "==", "value": False}, json_response(), False),
    ({"jsonPath": "$.count", "op": "==", "value": 0.0}, json_response(), True),
    ({"jsonPath": "$.nothing", "op": "exists"}, json_response(), True),
    ({"jsonPath": "$.nothing", "op": "==", "value": None}, json_response(), True),
    ({"jsonPath": "$.missing", "op": "not exists"}, json_response(), True),
    ({"jsonPath": "$.missing", "op": "!=", "value": 1}, json_response(), False),
    (
        {"jsonPath": "$.queue", "op": "==", "value": {"name": "main", "depth": 150}},
        json_response(),
        True,
    ),
    ({"jsonPath": "$.items[?@.ok == false].id", "op": "==", "value": 2}, json_response(), True),
    ({"jsonPath": "$..depth", "op": ">", "value": 1}, json_response(), True),
    ({"jsonPath": "$", "op": "==", "value": [1, 2]}, json_response([1, 2]), True),
    ({"jsonPath": "$.a", "op": "exists"}, json_response([1, 2]), False),  # name on a list
    ({"jsonPath": "$[0]", "op": "exists"}, json_response({"0": 1}), False),  # index on object
    # not JSON or truncated: every JSON condition is false, "not exists" included
    ({"jsonPath": "$.ok", "op": "exists"}, text_response('{"ok": tr'), False),
    ({"jsonPath": "$.ok", "op": "not exists"}, text_response("<html>"), False),
    ({"jsonPath": "$", "op": "==", "value": None}, json_response(None), True),  # JSON null
    ({"regex": "^OK\\b"}, text_response("OK all good"), True),
    ({"regex": "error|fail"}, text_response("all good"), False),
    ({"regex": "ok"}, Response(status_code=200), False),
    (
        {"all": [{"status": ["2xx"]}, {"jsonPath": "$.ok", "op": "==", "value": True}]},
        json_response(),
        True,
    ),
    ({"all": [{"status": ["2xx"]}, {"regex": "x"}]}, json_response(), False),
    ({"any": [{"status": [500]}, {"jsonPath": "$.ok", "op": "exists"}]}, json_response(), True),
    ({"not": {"status": ["2xx"]}}, json_response(), False),
]


@pytest.mark.parametrize(("raw", "response", "expected"), CASES)
def test_condition_table(raw: dict[str, Any], response: Response, expected: bool) -> None:
    assert holds(parse_condition(raw), response) is expected


BAD: list[tuple[Any, str]] = [
    ({"jsonPath": "$.[[", "op": "=="}, "when.jsonPath: invalid JSON path"),
    ({"jsonPath": "status", "op": "exists"}, "when.jsonPath: expected a JSON path"),
    ({"jsonPath": "$.a | $.b", "op": "exists"}, "when.jsonPath"),
    ({"jsonPath": "$.a", "op": "~", "value": 1}, "when.op: expected one of"),
    ({"jsonPath": "$.a", "op": "=="}, "when.value: '==' needs a value"),
    ({"jsonPath": "$.a", "op": "exists", "value": 1}, "when.value: 'exists' takes no value"),
    ({"jsonPath": "$.a", "op": ">", "value": True}, "when.value: '>' compares"),
    ({"jsonPath": "$.a", "op": ">", "value": [1]}, "when.value"),
    ({"jsonPath": "$.a", "op": "==", "value": 1, "extra": 2}, "when.extra: unknown field"),
    ({"status": []}, "when.status: expected a non-empty list"),
    ({"status": ["6xx"]}, "when.status[0]"),
    ({"status": [200, "504-500"]}, "when.status[1]"),
    ({"status": [True]}, "when.status[0]"),
    ({"status": ["\u00b3"]}, "when.status[0]"),  # a digit to str.isdigit, not to int()
    ({"status": ["50\u00b3-504"]}, "when.status[0]"),
    ({"latencyMs": {"above": -1}}, "when.latencyMs.above"),
    ({"latencyMs": {"over": 1}}, "when.latencyMs.over: unknown field"),
    ({"regex": "(a)\\1"}, "when.regex: not a usable regular expression"),
    ({"regex": "(?=lookahead)"}, "when.regex: not a usable regular expression"),
    ({"regex": "(unclosed"}, "when.regex"),
    ({"regex": ""}, "when.regex: expected a regular expression"),
    ({"regex": "a" * 1001}, "when.regex"),
    ({"all": []}, "when.all: expected a non-empty list"),
    ({"all": [{"status": [200]}, {"nope": 1}]}, "when.all[1]: expected one of"),
    ({"any": [{"all": [{"jsonPath": "$.x", "op": "bad"}]}]}, "when.any[0].all[0].op"),
    ("status == 200", "when: expected an object"),
    ({"regex": "\ud800"}, "when.regex: not a usable regular expression"),
    ({"jsonPath": "$[?@.a > 1e999]", "op": "exists"}, "when.jsonPath: invalid JSON path"),
    ({}, "when: expected an object"),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_bad_conditions_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_condition(raw)
    assert str(info.value).startswith(message), str(info.value)
    assert isinstance(info.value, DomainError)
    assert isinstance(info.value, ValueError)


def test_depth_and_size_are_capped() -> None:
    deep: dict[str, Any] = {"status": [200]}
    for _ in range(10):
        deep = {"not": deep}
    with pytest.raises(RuleError, match="nested deeper"):
        parse_condition(deep)
    wide = {"any": [{"status": [200]}] * 60}
    with pytest.raises(RuleError, match="more than 50"):
        parse_condition(wide)


def test_explanations_quote_what_was_found() -> None:
    condition = parse_condition({"jsonPath": "$.status", "op": "==", "value": "ok"})
    assert explain(condition, json_response()) == '$.status was "degraded", expected "ok"'
    depth = parse_condition({"jsonPath": "$.queue.depth", "op": "<", "value": 100})
    assert explain(depth, json_response()) == "$.queue.depth was 150, expected < 100"
    missing = parse_condition({"jsonPath": "$.x.y", "op": "exists"})
    assert explain(missing, json_response()) == "$.x.y is missing, expected to exist"
    assert explain(condition, text_response("<html>")).startswith("response is not JSON")
    status = parse_condition({"status": ["2xx", 304]})
    assert explain(status, json_response(status=503)) == "status 503, expected 2xx, 304"


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    # (a+)+$ takes exponential time in a backtracking engine on "aaaa…b"; RE2 is linear.
    condition = parse_condition({"regex": "(a+)+$"})
    # No wall-clock assert: a backtracking engine would hit the test timeout instead.
    assert holds(condition, text_response("a" * 50_000 + "b")) is False
    assert holds(condition, text_response("b" + "a" * 50_000)) is True


def test_text_that_is_not_unicode_never_matches() -> None:
    assert not holds(parse_condition({"regex": "x"}), text_response("\ud800x"))


def test_regex_sees_only_the_capped_prefix() -> None:
    condition = parse_condition({"regex": "NEEDLE"})
    assert holds(condition, text_response("x" * (MAX_REGEX_TEXT - 6) + "NEEDLE"))
    assert not holds(condition, text_response("x" * MAX_REGEX_TEXT + "NEEDLE"))
