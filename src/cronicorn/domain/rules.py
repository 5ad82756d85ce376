"""Assertions and response rules: what an answer must look like, and what it changes.

`parse_assertions` / `parse_rules` validate the user's JSON once (create, edit, import) into
frozen dataclasses and raise `RuleError` naming the field path; stored JSON is always a value
they accepted. `failed_assertion` says why a run that answered is still a failure.
`decide(rules, response, now)` is the pure step the scheduler takes right after each run:
rules are tried in order and, for each endpoint they act on (the endpoint itself or one
sibling), the FIRST rule whose condition holds wins; its action becomes an `Effect` with
absolute times. Effects only write hints and pauses, which the governor then clamps to the
endpoint's min/max like any hint, so a rule can never schedule outside the user's bounds.

Rule loops (A's rule pauses B, B's rule resumes A; A and B calling each other with
one-shots) are bounded by construction: a rule fires only after its own endpoint ran, and an
action never runs anything sooner than `MIN_GAP_MS` from now, so a cycle advances at most one
hop per run and no endpoint runs more than once a second because of rules.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cronicorn.domain.conditions import (
    Condition,
    Response,
    StatusIn,
    condition_to_json,
    explain,
    holds,
    parse_condition,
    parse_statuses,
)
from cronicorn.domain.constants import MIN_GAP_MS
from cronicorn.domain.errors import RuleError
from cronicorn.domain.schedule import ScheduleState

ACTIONS = ("interval", "oneshot", "pause", "resume", "clear")
MAX_RULES = 20
MAX_ASSERTIONS = 20
MAX_TTL_MINUTES = 7 * 24 * 60
DEFAULT_TTL_MINUTES = 60
_MAX_MS = 30 * 24 * 3_600_000
_MAX_NAME = 100
_DEFAULT_STATUSES = parse_statuses(["2xx"], "assertions.statuses")

_ACTION_FIELDS: dict[str, frozenset[str]] = {
    "interval": frozenset({"intervalMs"}),
    "oneshot": frozenset({"atIso", "inMs"}),
    "pause": frozenset({"forMinutes", "untilIso"}),
    "resume": frozenset(),
    "clear": frozenset(),
}
_COMMON = frozenset({"action", "ttlMinutes", "target"})


@dataclass(frozen=True, slots=True)
class Assertions:
    statuses: StatusIn = _DEFAULT_STATUSES
    conditions: tuple[Condition, ...] = ()


DEFAULT_ASSERTIONS = Assertions()


@dataclass(frozen=True, slots=True)
class Action:
    kind: str
    interval_ms: int | None = None
    at: datetime | None = None
    in_ms: int | None = None
    for_minutes: int | None = None
    until: datetime | None = None
    ttl_minutes: int | None = None
    target: str | None = None  # a sibling endpoint's id; None: the endpoint itself


@dataclass(frozen=True, slots=True)
class Rule:
    when: Condition
    then: Action
    name: str | None = None


class Effect(NamedTuple):
    """What one fired rule writes on `target` (None: the endpoint that ran). A tuple: built
    on the scheduler's hot path."""

    rule_index: int
    rule_name: str | None
    kind: str
    target: str | None
    interval_ms: int | None = None
    interval_expires_at: datetime | None = None
    oneshot_at: datetime | None = None
    oneshot_expires_at: datetime | None = None
    paused_until: datetime | None = None

    def describe(self) -> dict[str, Any]:
        """The fired rule as recorded on the run."""
        out: dict[str, Any] = {"index": self.rule_index, "action": self.kind}
        if self.rule_name is not None:
            out["name"] = self.rule_name
        if self.target is not None:
            out["target"] = self.target
        return out


# --- parsing -------------------------------------------------------------------------------


def parse_assertions(raw: Any, where: str = "assertions") -> Assertions:
    """`{"statuses": ["2xx"], "conditions": [...]}`; None means the default (2xx only)."""
    if raw is None:
        return DEFAULT_ASSERTIONS
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: expected an object with statuses and/or conditions")
    _only(raw, where, {"statuses", "conditions"})
    statuses = raw.get("statuses")
    parsed_statuses = (
        _DEFAULT_STATUSES if statuses is None else parse_statuses(statuses, f"{where}.statuses")
    )
    conditions = raw.get("conditions") or []
    if not isinstance(conditions, list) or len(conditions) > MAX_ASSERTIONS:
        raise RuleError(f"{where}.conditions: expected a list of at most {MAX_ASSERTIONS}")
    return Assertions(
        parsed_statuses,
        tuple(parse_condition(c, f"{where}.conditions[{i}]") for i, c in enumerate(conditions)),
    )


def assertions_to_json(assertions: Assertions) -> dict[str, Any]:
    return {
        "statuses": list(assertions.statuses.spec),
        "conditions": [condition_to_json(c) for c in assertions.conditions],
    }


def parse_rules(raw: Any, where: str = "rules") -> tuple[Rule, ...]:
    """An ordered list of `{name?, when, then}`; None means no rules."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        raise RuleError(f"{where}: expected a list of at most {MAX_RULES} rules")
    return tuple(_parse_rule(item, f"{where}[{i}]") for i, item in enumerate(raw))


def _parse_rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: expected an object with when and then")
    _only(raw, where, {"name", "when", "then"})
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME):
        raise RuleError(f"{where}.name: expected text of 1 to {_MAX_NAME} characters")
    if "when" not in raw:
        raise RuleError(f"{where}.when: required")
    if "then" not in raw:
        raise RuleError(f"{where}.then: required")
    return Rule(
        parse_condition(raw["when"], f"{where}.when"),
        _parse_action(raw["then"], f"{where}.then"),
        name,
    )


def _parse_action(raw: Any, where: str) -> Action:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: expected an object with an action")
    kind = raw.get("action")
    if kind not in _ACTION_FIELDS:
        raise RuleError(f"{where}.action: expected one of {', '.join(ACTIONS)}")
    _only(raw, where, _COMMON | _ACTION_FIELDS[kind])
    target = raw.get("target")
    if target is not None and (not isinstance(target, str) or not 0 < len(target) <= 64):
        raise RuleError(f"{where}.target: expected an endpoint id")
    ttl = _int(raw, "ttlMinutes", where, 1, MAX_TTL_MINUTES)
    if kind == "interval":
        interval = _int(raw, "intervalMs", where, 1, _MAX_MS)
        if interval is None:
            raise RuleError(f"{where}.intervalMs: required for action interval")
        return Action(kind, interval_ms=interval, ttl_minutes=ttl, target=target)
    if kind == "oneshot":
        at, in_ms = _when(raw, where, "atIso", "inMs", _MAX_MS)
        return Action(kind, at=at, in_ms=in_ms, ttl_minutes=ttl, target=target)
    if kind == "pause":
        until, minutes = _when(raw, where, "untilIso", "forMinutes", MAX_TTL_MINUTES)
        return Action(kind, until=until, for_minutes=minutes, ttl_minutes=ttl, target=target)
    return Action(kind, ttl_minutes=ttl, target=target)


def _when(
    raw: dict[str, Any], where: str, iso_key: str, rel_key: str, high: int
) -> tuple[datetime | None, int | None]:
    relative = _int(raw, rel_key, where, 0, high)
    iso = raw.get(iso_key)
    if (iso is None) == (relative is None):
        raise RuleError(f"{where}: exactly one of {iso_key} or {rel_key}")
    if iso is None:
        return None, relative
    try:
        at = datetime.fromisoformat(iso) if isinstance(iso, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise RuleError(f"{where}.{iso_key}: expected an ISO 8601 time with a UTC offset")
    return at.astimezone(UTC), None


def _int(raw: dict[str, Any], key: str, where: str, low: int, high: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RuleError(f"{where}.{key}: expected a whole number from {low} to {high}")
    return value


def _only(raw: dict[str, Any], where: str, allowed: set[str] | frozenset[str]) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise RuleError(f"{where}.{extra[0]}: unknown field")


def rules_to_json(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    return [_rule_to_json(r) for r in rules]


def _rule_to_json(rule: Rule) -> dict[str, Any]:
    a = rule.then
    then: dict[str, Any] = {
        "action": a.kind,
        "intervalMs": a.interval_ms,
        "atIso": None if a.at is None else a.at.isoformat(),
        "inMs": a.in_ms,
        "untilIso": None if a.until is None else a.until.isoformat(),
        "forMinutes": a.for_minutes,
        "ttlMinutes": a.ttl_minutes,
        "target": a.target,
    }
    out: dict[str, Any] = {"when": condition_to_json(rule.when)}
    out["then"] = {k: v for k, v in then.items() if v is not None}
    if rule.name is not None:
        out = {"name": rule.name, **out}
    return out


def targets(rules: tuple[Rule, ...]) -> set[str]:
    """The sibling ids the rules act on (checked against the job when the rules are saved)."""
    return {r.then.target for r in rules if r.then.target is not None}


# --- evaluation ----------------------------------------------------------------------------


def failed_assertion(assertions: Assertions, response: Response) -> str | None:
    """Why an answered call does not count as a success, or None when it does."""
    if not holds(assertions.statuses, response):
        return "assertion failed: " + explain(assertions.statuses, response)
    for condition in assertions.conditions:
        if not holds(condition, response):
            return "assertion failed: " + explain(condition, response)
    return None


def decide(rules: tuple[Rule, ...], response: Response, now: datetime) -> list[Effect]:
    """The effects of `rules` on this response: per target, the first rule that holds."""
    effects: list[Effect] = []
    seen: set[str | None] = set()
    for index, rule in enumerate(rules):
        target = rule.then.target
        if target in seen or not holds(rule.when, response):
            continue
        seen.add(target)
        effects.append(effect_of(index, rule, now))
    return effects


def effect_of(index: int, rule: Rule, now: datetime) -> Effect:
    a = rule.then
    kind = a.kind
    if kind == "interval":
        ttl = timedelta(minutes=a.ttl_minutes or DEFAULT_TTL_MINUTES)
        return Effect(
            index,
            rule.name,
            kind,
            a.target,
            interval_ms=a.interval_ms,
            interval_expires_at=now + ttl,
        )
    if kind == "oneshot":
        ttl = timedelta(minutes=a.ttl_minutes or DEFAULT_TTL_MINUTES)
        at = a.at if a.at is not None else now + timedelta(milliseconds=a.in_ms or 0)
        at = max(at, now + _MIN_GAP)  # never a hot loop
        return Effect(
            index, rule.name, kind, a.target, oneshot_at=at, oneshot_expires_at=max(at, now) + ttl
        )
    if kind == "pause":
        until = a.until if a.until is not None else now + timedelta(minutes=a.for_minutes or 0)
        return Effect(index, rule.name, kind, a.target, paused_until=until)
    return Effect(index, rule.name, kind, a.target)


_MIN_GAP = timedelta(milliseconds=MIN_GAP_MS)


def apply_effect(state: ScheduleState, effect: Effect) -> ScheduleState:
    """`state` with the effect's hints or pause written (the governor then clamps them)."""
    if effect.kind == "interval":
        return _with(
            state,
            hint_interval_ms=effect.interval_ms,
            hint_interval_expires_at=effect.interval_expires_at,
        )
    if effect.kind == "oneshot":
        return _with(
            state,
            hint_oneshot_at=effect.oneshot_at,
            hint_oneshot_expires_at=effect.oneshot_expires_at,
        )
    if effect.kind == "pause":
        return _with(state, paused_until=effect.paused_until)
    if effect.kind == "resume":
        return _with(state, paused_until=None)
    return _with(
        state,
        hint_interval_ms=None,
        hint_interval_expires_at=None,
        hint_oneshot_at=None,
        hint_oneshot_expires_at=None,
    )


def _with(state: ScheduleState, **changes: Any) -> ScheduleState:
    # `dataclasses.replace` (and `copy.copy`) re-introspect every field on each call; the
    # names are known, so the scheduler's hot path builds the new state directly.
    return ScheduleState(
        *[changes[name] if name in changes else getattr(state, name) for name in _STATE_FIELDS]
    )


_STATE_FIELDS = tuple(f.name for f in fields(ScheduleState))

REFRESH_FRACTION = 10
"""A hint a rule keeps re-writing unchanged is re-extended once a tenth of its TTL passed."""


def already_in_force(before: ScheduleState, after: ScheduleState, now: datetime) -> bool:
    """Whether the effects that turned `before` (the stored row) into `after` change nothing
    worth a write: same hints and pause, and each hint's expiry moved forward by less than a
    tenth of its TTL (what is left of it after `now`, as the rule just set it).

    A rule that fires on every run with the effect already in force therefore writes the
    endpoint (and its audit trail) once per tenth of its TTL, not on every run. What a user
    sees stays what the scheduler uses: the stored expiry, which lies between 90 % and 100 %
    of the TTL after the rule last fired. The caller also checks the stored hint's source
    and reason (another rule's identical hint is rewritten as this rule's)."""
    return (
        before.hint_interval_ms == after.hint_interval_ms
        and before.hint_oneshot_at == after.hint_oneshot_at
        and before.paused_until == after.paused_until
        and _fresh_enough(before.hint_interval_expires_at, after.hint_interval_expires_at, now)
        and _fresh_enough(before.hint_oneshot_expires_at, after.hint_oneshot_expires_at, now)
    )


def _fresh_enough(stored: datetime | None, wanted: datetime | None, now: datetime) -> bool:
    if stored is None or wanted is None:
        return stored is wanted
    if stored <= now or wanted < stored:  # expired, or the rule shortens it: write
        return False
    return (wanted - stored) * REFRESH_FRACTION < wanted - now
