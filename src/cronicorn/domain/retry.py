"""Retries within one run: which failures are tried again, how often, how far apart.

`attempts` counts every call of the slot, the first included (1: no retries, the default;
at most `MAX_ATTEMPTS`). The delay before attempt n+1 is `initialDelayMs` (fixed) or
`initialDelayMs * 2**(n-1)` (exponential), never above `maxDelayMs`. `on` lists what is
retried: status codes, classes or ranges (as in conditions), "timeout" and "connection"
(no answer at all). A refused URL (SSRF guard) is never retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cronicorn.domain.conditions import StatusIn, parse_statuses
from cronicorn.domain.errors import RuleError

MAX_ATTEMPTS = 10
MAX_DELAY_MS = 300_000
KINDS = ("timeout", "connection")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 1
    backoff: str = "exponential"
    initial_delay_ms: int = 1000
    max_delay_ms: int = 30_000
    statuses: StatusIn | None = None
    timeout: bool = False
    connection: bool = False
    on: tuple[int | str, ...] = ()  # as written

    def delay_ms(self, attempt: int) -> int:
        """The wait after failed attempt `attempt` (1-based) before the next one."""
        if self.backoff == "fixed":
            return min(self.initial_delay_ms, self.max_delay_ms)
        grown: int = self.initial_delay_ms * 2 ** min(attempt - 1, 30)
        return min(grown, self.max_delay_ms)

    def retries(self, status_code: int | None, kind: str | None) -> bool:
        """Whether a failure is retried: `kind` is "timeout"/"connection" for no answer,
        None for an answer with `status_code`."""
        if kind == "timeout":
            return self.timeout
        if kind == "connection":
            return self.connection
        if status_code is None or self.statuses is None:
            return False
        return any(low <= status_code <= high for low, high in self.statuses.ranges)


NO_RETRY = RetryPolicy()


def parse_retry(raw: Any, where: str = "retry") -> RetryPolicy:
    """`{attempts, backoff, initialDelayMs, maxDelayMs, on}`; None means no retries."""
    if raw is None:
        return NO_RETRY
    if not isinstance(raw, dict):
        raise RuleError(f'{where}: expected an object such as {{"attempts": 3, "on": ["5xx"]}}')
    extra = sorted(set(raw) - {"attempts", "backoff", "initialDelayMs", "maxDelayMs", "on"})
    if extra:
        raise RuleError(f"{where}.{extra[0]}: unknown field")
    attempts = _int(raw, "attempts", where, 1, MAX_ATTEMPTS, 1)
    backoff = raw.get("backoff", "exponential")
    if backoff not in ("fixed", "exponential"):
        raise RuleError(f"{where}.backoff: expected fixed or exponential")
    initial = _int(raw, "initialDelayMs", where, 0, MAX_DELAY_MS, 1000)
    high = _int(raw, "maxDelayMs", where, 0, MAX_DELAY_MS, max(initial, 30_000))
    if high < initial:
        raise RuleError(f"{where}.maxDelayMs: must not be below initialDelayMs")
    on = raw.get("on", ["5xx", "timeout", "connection"])
    if not isinstance(on, list) or not on:
        raise RuleError(f'{where}.on: expected a non-empty list such as ["5xx", "timeout"]')
    codes = [item for item in on if item not in KINDS]
    statuses = parse_statuses(codes, f"{where}.on") if codes else None
    return RetryPolicy(
        attempts=attempts,
        backoff=backoff,
        initial_delay_ms=initial,
        max_delay_ms=high,
        statuses=statuses,
        timeout="timeout" in on,
        connection="connection" in on,
        on=tuple(on),
    )


def _int(raw: dict[str, Any], key: str, where: str, low: int, high: int, default: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RuleError(f"{where}.{key}: expected a whole number from {low} to {high}")
    return value


def retry_to_json(policy: RetryPolicy) -> dict[str, Any]:
    return {
        "attempts": policy.attempts,
        "backoff": policy.backoff,
        "initialDelayMs": policy.initial_delay_ms,
        "maxDelayMs": policy.max_delay_ms,
        "on": list(policy.on),
    }


def describe(policy: RetryPolicy) -> str | None:
    """One line for `preview`: how a failed call is retried within its slot (None: never)."""
    if policy.attempts <= 1:
        return None
    if policy.backoff == "fixed":
        spacing = f"{policy.delay_ms(1)} ms apart"
    else:
        spacing = f"exponential from {policy.initial_delay_ms} ms to {policy.max_delay_ms} ms"
    on = ", ".join(str(x) for x in policy.on)
    return (
        f"retry: a failed call is tried up to {policy.attempts} times within its slot "
        f"({spacing}) on {on}; the next slot never starts before the retries end"
    )
