"""The scheduler's side of a call: a claimed endpoint becomes an `HttpRequest`, the
dispatcher's `HttpResult` becomes the run's outcome (both built by `dispatch.calls`, as run
now builds them), with retries within the slot.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from functools import lru_cache
from typing import Any

from prometheus_client import Counter

from cronicorn.dispatch import Dispatcher, HttpRequest, HttpResult
from cronicorn.dispatch.calls import outcome_of, request_for
from cronicorn.dispatch.judge import answered, judge
from cronicorn.domain.errors import RuleError
from cronicorn.domain.retry import NO_RETRY, RetryPolicy, parse_retry
from cronicorn.scheduler.outcome import Execute, HttpOutcome, clean_text
from cronicorn.store.claims import Claimed

__all__ = ["dispatching", "http_request", "outcome_of"]


def http_request(claim: Claimed, signing_keys: list[bytes]) -> HttpRequest:
    return request_for(
        url=claim.url,
        method=claim.method,
        headers=claim.headers,
        body=claim.body,
        timeout_ms=claim.timeout_ms,
        max_response_size_kb=claim.max_response_size_kb,
        signing_keys=signing_keys,
        run_id=claim.run_id,
        due_at=claim.due_at,
    )


def dispatching(dispatcher: Dispatcher) -> Execute:
    """An `Execute` that sends claimed calls through `dispatcher`, retrying within the slot
    as the endpoint's retry policy says (the lease is held, and heartbeated, throughout)."""

    async def execute(claim: Claimed, signing_keys: list[bytes]) -> HttpOutcome:
        request = http_request(claim, signing_keys)
        result = judge(await dispatcher.execute(request), claim.assertions)
        if claim.retry is None or result.ok:
            return outcome_of(result)
        policy = retry_from_text(claim.retry)
        if policy.attempts <= 1:
            return outcome_of(result)
        attempts = [_attempt(1, result)]
        for n in range(2, policy.attempts + 1):
            if not policy.retries(*failure_of(result)):
                break
            try:
                await asyncio.sleep(policy.delay_ms(n - 1) / 1000)
            except asyncio.CancelledError:  # shutdown between attempts: the slot ends here
                outcome = outcome_of(result)
                note = f"retries cut short by shutdown after attempt {n - 1}"
                error = note if outcome.error is None else f"{outcome.error}; {note}"
                return replace(outcome, error=error, attempts=attempts)
            RETRIES.inc()
            result = judge(await dispatcher.execute(request), claim.assertions)
            attempts.append(_attempt(n, result))
            if result.ok:
                break
        return replace(outcome_of(result), attempts=attempts)

    return execute


RETRIES = Counter(
    "cronicorn_scheduler_retries_total",
    "Calls repeated within a slot by the endpoint's retry policy.",
)


@lru_cache(maxsize=4096)
def retry_from_text(text: str) -> RetryPolicy:
    """A stored retry policy (jsonb text); unusable (written around the API): no retries."""
    try:
        return parse_retry(json.loads(text))
    except (RuleError, ValueError):
        return NO_RETRY


def failure_of(result: HttpResult) -> tuple[int | None, str | None]:
    """(status code, None) for an answer; (None, "timeout" | "connection" | "refused")."""
    if answered(result):
        return result.status_code, None
    error = result.error_message or ""
    if error.startswith("Request timed out"):
        return None, "timeout"
    if error.startswith("URL not allowed"):
        return None, "refused"
    return None, "connection"


def _attempt(n: int, result: HttpResult) -> dict[str, Any]:
    entry: dict[str, Any] = {"attempt": n, "durationMs": result.duration_ms}
    if result.status_code is not None:
        entry["statusCode"] = result.status_code
    if result.error_message is not None:
        entry["error"] = clean_text(result.error_message)[:500]
    return entry
