"""One call to an endpoint, as the scheduler and run now both make it: the request built from
the endpoint's stored configuration, and the dispatcher's result turned into what a run row
stores (text PostgreSQL accepts).

Scheduled calls add two headers unless the endpoint sets them itself: `X-Cronicorn-Run-Id`
(an idempotency key for receivers) and `X-Cronicorn-Due-At` (the slot this call serves, ISO
8601 UTC), so a receiver can tell a late call from a duplicate. Run now has no slot and
records its run after the call, so it sends neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronicorn.dispatch.models import HttpRequest, HttpResult

RUN_ID_HEADER = "X-Cronicorn-Run-Id"
DUE_AT_HEADER = "X-Cronicorn-Due-At"


def request_for(
    *,
    url: str,
    method: str,
    headers: Any,
    body: Any,
    timeout_ms: int | None,
    max_response_size_kb: int | None,
    signing_keys: list[bytes],
    run_id: str | None = None,
    due_at: datetime | None = None,
) -> HttpRequest:
    """The request for an endpoint's stored configuration (`headers` as stored: a JSON object
    or nothing)."""
    sent = _headers(headers)
    present = {name.lower() for name in sent}
    if run_id is not None and RUN_ID_HEADER.lower() not in present:
        sent[RUN_ID_HEADER] = run_id
    if due_at is not None and DUE_AT_HEADER.lower() not in present:
        sent[DUE_AT_HEADER] = due_at.isoformat()
    return HttpRequest(
        url=url,
        method=method,
        headers=sent,
        body_json=body,
        timeout_ms=timeout_ms,
        max_response_size_kb=max_response_size_kb,
        signing_keys=signing_keys,
    )


def _headers(stored: Any) -> dict[str, str]:
    if not isinstance(stored, dict):
        return {}
    return {str(name): str(value) for name, value in stored.items()}


@dataclass(frozen=True, slots=True)
class HttpOutcome:
    """What one execution produced, in the shape the run row stores."""

    succeeded: bool
    duration_ms: int | None = None
    status_code: int | None = None
    body_json: Any = None  # a JSON body, parsed (stored as jsonb); None: see body_text
    body_text: str | None = None  # any other body, as text
    size: int | None = None
    truncated: bool = False
    error: str | None = None
    attempts: list[dict[str, Any]] | None = None  # each call of a retried slot

    @classmethod
    def failed(cls, error: str) -> HttpOutcome:
        return cls(succeeded=False, error=error)

    @property
    def status(self) -> str:
        return "success" if self.succeeded else "failed"


def outcome_of(result: HttpResult) -> HttpOutcome:
    """The run's view of a dispatcher result (texts cleaned for PostgreSQL)."""
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


def clean_text(value: str) -> str:
    """Text PostgreSQL accepts (no NUL characters, no lone surrogates)."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value.encode("utf-8", "replace").decode("utf-8")
