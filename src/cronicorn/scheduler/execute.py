"""The scheduler's side of a call: a claimed endpoint becomes an `HttpRequest`, the
dispatcher's `HttpResult` becomes the run's outcome.

Two headers are added unless the endpoint sets them itself: `X-Cronicorn-Run-Id` (an
idempotency key for receivers) and `X-Cronicorn-Due-At` (the slot this call serves, ISO
8601 UTC), so a receiver can tell a late call from a duplicate.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from functools import lru_cache
from typing import Any

from prometheus_client import Counter

from cronicorn.dispatch import Dispatcher, HttpRequest, HttpResult
from cronicorn.dispatch.judge import answered, judge
from cronicorn.domain.errors import RuleError
from cronicorn.domain.retry import NO_RETRY, RetryPolicy, parse_retry
from cronicorn.scheduler.outcome import Execute, HttpOutcome, clean_text
from cronicorn.store.claims import Claimed

RUN_ID_HEADER = "X-Cronicorn-Run-Id"
DUE_AT_HEADER = "X-Cronicorn-Due-At"


def http_request(claim: Claimed, signing_keys: list[bytes]) -> HttpRequest:
    headers = _headers(claim.headers)
    present = {name.lower() for name in headers}
    if RUN_ID_HEADER.lower() not in present and claim.run_id is not None:
        headers[RUN_ID_HEADER] = claim.run_id
    if DUE_AT_HEADER.lower() not in present:
        headers[DUE_AT_HEADER] = claim.due_at.isoformat()
    return HttpRequest(
        url=claim.url,
        method=claim.method,
        headers=headers,
        body_json=claim.body,
        timeout_ms=claim.timeout_ms,
        max_response_size_kb=claim.max_response_size_kb,
        signing_keys=signing_keys,
    )


def _headers(stored: Any) -> dict[str, str]:
    if not isinstance(stored, dict):
        return {}
    return {str(name): str(value) for name, value in stored.items()}


def outcome_of(result: HttpResult) -> HttpOutcome:
    body_text = None if result.response_text is None else clean_text(result.response_text)
    return HttpOutcome(
        succeeded=result.ok,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        body_json=result.response_json,
        body_text=body_text,
        size=result.response_size,
        truncated=result.truncated,
        error=None if result.error_message is None else clean_text(result.error_message),
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
