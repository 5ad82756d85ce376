"""Hypothesis properties of the condition language over arbitrary conditions and bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as hs

from cronicorn.domain.conditions import (
    Not,
    Response,
    compare,
    condition_to_json,
    explain,
    holds,
    parse_condition,
)
from cronicorn.domain.rules import decide, parse_rules, rules_to_json

PROPS = settings(deadline=None, max_examples=100)

SCALARS = hs.one_of(
    hs.none(),
    hs.booleans(),
    hs.integers(-(10**6), 10**6),
    hs.floats(allow_nan=False, allow_infinity=False, width=32),
    hs.text(max_size=8),
)
JSON = hs.recursive(
    SCALARS,
    lambda inner: (
        hs.lists(inner, max_size=4) | hs.dictionaries(hs.sampled_from("abcxyz"), inner, max_size=4)
    ),
    max_leaves=12,
)
PATHS = hs.sampled_from(["$", "$.a", "$.a.b", "$.x[0]", "$.a[-1].c", "$..b", "$.a[*]", "$['z y']"])
OPS = hs.sampled_from(["==", "!=", ">", ">=", "<", "<=", "exists", "not exists"])


@hs.composite
def json_conditions(draw: hs.DrawFn) -> dict[str, Any]:
    op = draw(OPS)
    raw: dict[str, Any] = {"jsonPath": draw(PATHS), "op": op}
    if op in (">", ">=", "<", "<="):
        raw["value"] = draw(hs.one_of(hs.integers(-100, 100), hs.text(max_size=3)))
    elif op in ("==", "!="):
        raw["value"] = draw(JSON)
    return raw


LEAVES = hs.one_of(
    json_conditions(),
    hs.builds(
        lambda s: {"status": s},
        hs.lists(hs.sampled_from([200, "2xx", "5xx", "500-504", 404]), min_size=1, max_size=3),
    ),
    hs.builds(lambda a: {"latencyMs": {"above": a}}, hs.integers(0, 1000)),
    hs.builds(lambda r: {"regex": r}, hs.sampled_from(["ok", "^err", "(a+)+$", "[0-9]{3}"])),
)
CONDITIONS = hs.recursive(
    LEAVES,
    lambda inner: hs.one_of(
        hs.builds(lambda xs: {"all": xs}, hs.lists(inner, min_size=1, max_size=3)),
        hs.builds(lambda xs: {"any": xs}, hs.lists(inner, min_size=1, max_size=3)),
        hs.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=6,
)


@hs.composite
def responses(draw: hs.DrawFn) -> Response:
    status = draw(hs.one_of(hs.none(), hs.integers(100, 599)))
    ms = draw(hs.one_of(hs.none(), hs.integers(0, 5000)))
    if draw(hs.booleans()):
        body = draw(JSON)
        return Response(status, ms, body, True, json.dumps(body))
    text = draw(hs.one_of(hs.none(), hs.text(max_size=40)))
    return Response(status, ms, None, False, text)


@PROPS
@given(CONDITIONS)
def test_json_form_round_trips(raw: dict[str, Any]) -> None:
    parsed = parse_condition(raw)
    assert parse_condition(condition_to_json(parsed)) == parsed
    assert condition_to_json(parse_condition(condition_to_json(parsed))) == condition_to_json(
        parsed
    )


@PROPS
@given(CONDITIONS, responses())
def test_evaluation_never_raises_and_not_inverts(raw: dict[str, Any], response: Response) -> None:
    condition = parse_condition(raw)
    result = holds(condition, response)
    assert isinstance(result, bool)
    assert holds(Not(condition), response) is not result
    if not result:
        assert isinstance(explain(condition, response), str)


@PROPS
@given(json_conditions(), hs.text(max_size=60))
def test_json_conditions_are_false_on_any_non_json_body(raw: dict[str, Any], text: str) -> None:
    assert holds(parse_condition(raw), Response(200, 10, None, False, text)) is False


@PROPS
@given(hs.integers(100, 599), hs.integers(1, 5))
def test_status_classes(code: int, klass: int) -> None:
    condition = parse_condition({"status": [f"{klass}xx"]})
    assert holds(condition, Response(status_code=code)) is (code // 100 == klass)


@PROPS
@given(JSON, JSON)
def test_equality_is_symmetric_and_reflexive(a: Any, b: Any) -> None:
    assert compare(a, "==", a)
    assert compare(a, "==", b) is compare(b, "==", a)
    assert compare(a, "!=", b) is not compare(a, "==", b)


@PROPS
@given(hs.integers(-50, 50), hs.integers(-50, 50))
def test_ordering_matches_numbers(a: int, b: int) -> None:
    assert compare(a, ">", b) is (a > b)
    assert compare(a, "<=", b) is (a <= b)
    assert compare(True, ">", b) is False  # booleans are not numbers


@PROPS
@given(
    hs.lists(hs.tuples(CONDITIONS, hs.sampled_from([None, "sib1", "sib2"])), max_size=5),
    responses(),
)
def test_rules_fire_at_most_once_per_target(
    specs: list[tuple[Any, str | None]], response: Response
) -> None:
    raw = [
        {
            "when": w,
            "then": {"action": "interval", "intervalMs": 5000, **({"target": t} if t else {})},
        }
        for w, t in specs
    ]
    rules = parse_rules(raw)
    assert parse_rules(rules_to_json(rules)) == rules
    effects = decide(rules, response, datetime(2030, 1, 1, tzinfo=UTC))
    fired_targets = [e.target for e in effects]
    assert len(fired_targets) == len(set(fired_targets))
    for effect in effects:  # each is the first holding rule for its target
        earlier = [
            i
            for i, r in enumerate(rules)
            if r.then.target == effect.target and i < effect.rule_index
        ]
        assert not any(holds(rules[i].when, response) for i in earlier)
        assert holds(rules[effect.rule_index].when, response)
