"""Response rules, right after a run, inside the batch write that plans the next slot.

The writer re-reads each endpoint under lock (`store.run_writes.lock_leased`), rules
included, so rules edited while a run was in flight are the ones applied. The effects on the
endpoint itself are written into its schedule state before the governor plans it, so the
next slot already follows them (clamped to min/max like any hint); effects on a sibling are
queued in `rule_effects` in the same transaction for `store.rule_writes` to apply once the
batch committed. A detached run (overlap `allow`) queues its own effects the same way: its
endpoint's next slot was planned when it started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from prometheus_client import Counter

from cronicorn.domain import ScheduleState
from cronicorn.domain.conditions import Response
from cronicorn.domain.errors import RuleError
from cronicorn.domain.rules import Effect, Rule, apply_effect, decide, parse_rules
from cronicorn.store.run_writes import RunOutcome

RULE_ACTIONS = Counter(
    "cronicorn_rule_actions_total",
    "Response rules that fired after a run, by action and whom they acted on.",
    ["action", "on"],
)
_COUNTERS = {  # bound once: the hot path skips the label look-up
    (action, on): RULE_ACTIONS.labels(action, on)
    for action in ("interval", "oneshot", "pause", "resume", "clear")
    for on in ("self", "sibling")
}
RULE_ERRORS = Counter(
    "cronicorn_rule_errors_total",
    "Stored rules that could not be parsed (written around the API); the run is unaffected.",
)


@lru_cache(maxsize=4096)
def rules_from_text(text: str) -> tuple[Rule, ...]:
    """Stored rules (jsonb as text), parsed once per distinct text."""
    try:
        return parse_rules(json.loads(text))
    except (RuleError, ValueError):
        RULE_ERRORS.inc()
        return ()


def response_of(outcome: RunOutcome) -> Response:
    return Response(
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        body_json=outcome.body_json,
        is_json=outcome.body_json is not None,
        body_text=outcome.body_text,
    )


@dataclass(frozen=True, slots=True)
class Applied:
    state: ScheduleState  # the endpoint's state with its own effects written
    own: bool  # an effect acted on the endpoint itself
    fired: list[dict[str, Any]]  # recorded on the run
    siblings: list[Effect]  # effects on other endpoints of the job
    own_effects: tuple[Effect, ...] = ()  # those on the endpoint itself, as fired


NOTHING: list[Any] = []


def after_run(
    rules_text: str | None,
    outcome: RunOutcome | None,
    state: ScheduleState,
    now: datetime,
    endpoint_id: str | None = None,
) -> Applied | None:
    """The rules' effects for this run, or None when no rule fired (the hot path)."""
    if rules_text is None or outcome is None:
        return None
    rules = rules_from_text(rules_text)
    if not rules:
        return None
    effects = decide(rules, response_of(outcome), now)
    if not effects:
        return None
    own: list[Effect] = []
    siblings: list[Effect] = []
    for effect in effects:
        if effect.target is None or effect.target == endpoint_id:  # its own id: itself
            state = apply_effect(state, effect)
            own.append(effect)
            _COUNTERS[effect.kind, "self"].inc()
        else:
            siblings.append(effect)
            _COUNTERS[effect.kind, "sibling"].inc()
    return Applied(state, bool(own), [e.describe() for e in effects], siblings, tuple(own))
