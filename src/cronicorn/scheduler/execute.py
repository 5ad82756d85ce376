"""The scheduler's side of a call: a claimed endpoint becomes an `HttpRequest`, the
dispatcher's `HttpResult` becomes the run's outcome.

Two headers are added unless the endpoint sets them itself: `X-Cronicorn-Run-Id` (an
idempotency key for receivers) and `X-Cronicorn-Due-At` (the slot this call serves, ISO
8601 UTC), so a receiver can tell a late call from a duplicate.
"""

from __future__ import annotations

from typing import Any

from cronicorn.dispatch import Dispatcher, HttpRequest, HttpResult
from cronicorn.dispatch.judge import judge
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
    """An `Execute` that sends claimed calls through `dispatcher`."""

    async def execute(claim: Claimed, signing_keys: list[bytes]) -> HttpOutcome:
        result = await dispatcher.execute(http_request(claim, signing_keys))
        return outcome_of(judge(result, claim.assertions))

    return execute
