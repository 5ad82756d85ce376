"""What an endpoint's response rules would do if they fire, in words, for `preview`.

Rules act only after a run, on what it answered, so a preview cannot say WHETHER they fire;
it says what each would change: `rule 'deep queue': when $.queue.depth > 100, interval 1 s
for 10 min (clamped to min 5 s)`. Clamps are the ones the scheduler applies to the endpoint
acted on (a sibling's own min/max), the same as for any hint; a one-shot is never held back
by the minimum and never sooner than `MIN_GAP_MS` after the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronicorn.domain.conditions import describe
from cronicorn.domain.constants import MIN_GAP_MS
from cronicorn.domain.errors import RuleError
from cronicorn.domain.rules import DEFAULT_TTL_MINUTES, Action, Rule, parse_rules


@dataclass(frozen=True, slots=True)
class Bounds:
    """The endpoint a rule acts on, as far as the preview needs it."""

    name: str | None = None  # a sibling's name; None: the endpoint itself
    min_interval_ms: int | None = None
    max_interval_ms: int | None = None


ORDER_NOTE = (
    "rules are tried in order after each run; for each endpoint acted on, the first that "
    "holds fires"
)


def rule_notes(
    raw_rules: Any,
    own: Bounds,
    siblings: Mapping[str, Bounds],
    *,
    endpoint_id: str | None = None,
) -> tuple[str, ...]:
    """One line per rule (plus the order note when two rules act on the same endpoint);
    none without rules, or for rules stored around the API's validation (the scheduler
    ignores those too). `siblings` maps the targets' ids to their names and clamps."""
    try:
        rules = parse_rules(raw_rules)
    except RuleError:
        return ()
    lines = [_rule_line(i, r, own, siblings, endpoint_id) for i, r in enumerate(rules)]
    acted_on = [_target(r, endpoint_id) for r in rules]
    if len(set(acted_on)) < len(acted_on):
        lines.insert(0, ORDER_NOTE)
    return tuple(lines)


def _target(rule: Rule, endpoint_id: str | None) -> str | None:
    target = rule.then.target
    return None if target == endpoint_id else target


def _rule_line(
    index: int,
    rule: Rule,
    own: Bounds,
    siblings: Mapping[str, Bounds],
    endpoint_id: str | None,
) -> str:
    label = f"rule '{rule.name}'" if rule.name is not None else f"rule {index + 1}"
    target = _target(rule, endpoint_id)
    bounds = own if target is None else siblings.get(target, Bounds())
    text = f"{label}: when {describe(rule.when)}, {action_text(rule.then, bounds)}"
    if target is not None:
        sibling = siblings.get(target)
        text += (
            f" on sibling '{sibling.name}' ({target})"
            if sibling is not None and sibling.name is not None
            else f" on endpoint {target} (not found)"
        )
    return text


def action_text(action: Action, bounds: Bounds) -> str:
    """What the action writes, with the clamp the scheduler would apply to it."""
    ttl = action.ttl_minutes or DEFAULT_TTL_MINUTES
    if action.kind == "interval":
        assert action.interval_ms is not None
        return f"interval {duration(action.interval_ms)} for {_minutes(ttl)}" + _clamp(
            action.interval_ms, bounds
        )
    if action.kind == "oneshot":
        if action.at is not None:
            when = f"at {_iso(action.at)}"
        else:
            in_ms = action.in_ms or 0
            when = f"{duration(max(in_ms, MIN_GAP_MS))} after the run"
            if in_ms < MIN_GAP_MS:
                when += f" (never sooner than {duration(MIN_GAP_MS)})"
        return f"one extra run {when}, kept for {_minutes(ttl)} if it cannot run then"
    if action.kind == "pause":
        if action.until is not None:
            return f"pause until {_iso(action.until)}"
        return f"pause for {_minutes(action.for_minutes or 0)}"
    if action.kind == "resume":
        return "resume (end a pause)"
    return "clear hints (back to the baseline schedule)"


def _clamp(interval_ms: int, bounds: Bounds) -> str:
    low, high = _positive(bounds.min_interval_ms), _positive(bounds.max_interval_ms)
    if low is not None and interval_ms < low:
        return f" (clamped to min {duration(low)})"
    if high is not None and interval_ms > high:
        return f" (clamped to max {duration(high)})"
    if interval_ms < MIN_GAP_MS:
        return f" (at least {duration(MIN_GAP_MS)})"
    return ""


def _positive(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def duration(ms: int) -> str:
    """`500 ms`, `1 s`, `1.5 s`, `10 min`, `2 h`, `1 d`: the largest unit it is a whole
    number of (else seconds)."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    if ms < 1_000:
        return f"{ms} ms"
    return f"{ms / 1000:g} s"


def _minutes(minutes: int) -> str:
    return duration(minutes * 60_000)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def rule_targets(raw_rules: Any) -> set[str]:
    """The ids of the endpoints the rules act on, other than their own (to look up)."""
    try:
        return {r.then.target for r in parse_rules(raw_rules) if r.then.target is not None}
    except RuleError:
        return set()
