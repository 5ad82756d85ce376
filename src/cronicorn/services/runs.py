"""Run now: call an endpoint at once through the dispatcher and record a `test` run, with the
request and the stored outcome built as the scheduler builds them (`dispatch.calls`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.dispatch import Dispatcher
from cronicorn.dispatch.calls import outcome_of, request_for
from cronicorn.dispatch.judge import judge
from cronicorn.dispatch.signing import SigningKeyError
from cronicorn.domain import Quotas
from cronicorn.schemas.endpoints import TestResult
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import runs as run_store
from cronicorn.store import signing_keys as key_store
from cronicorn.store.errors import Conflict
from cronicorn.store.quotas import reserve_run


async def run_now(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    now: datetime,
    *,
    dispatcher: Dispatcher,
    auth_secret: str,
    quotas: Quotas,
) -> TestResult:
    """The schedule, failure count and hints are untouched; a failed call is a result with
    status "failed", not an error. Commits the connection's transaction before the call (the
    run is counted on the monthly meter first, and no lock is held while the call is in
    flight); the run is written in a second transaction the caller commits."""
    endpoint = await endpoint_store.get(conn, user_id, endpoint_id)
    if endpoint.archived_at is not None:
        raise Conflict("Cannot run an archived endpoint")
    try:
        keys = await key_store.load_signing_keys(conn, [user_id], now, auth_secret)
    except SigningKeyError:
        raise Conflict(
            "Your signing key cannot be decrypted with this server's AUTH_SECRET; "
            "rotate it with POST /api/signing-keys/rotate"
        ) from None
    await reserve_run(conn, user_id, quotas, now)
    await conn.commit()
    request = request_for(
        url=endpoint.url,
        method=endpoint.method,
        headers=endpoint.headers_json,
        body=endpoint.body_json,
        timeout_ms=endpoint.timeout_ms,
        max_response_size_kb=endpoint.max_response_size_kb,
        signing_keys=keys.get(user_id, []),
    )
    result = await dispatcher.execute(request)
    if endpoint.assertions is not None:  # the endpoint's own verdict, as the scheduler's
        result = judge(result, json.dumps(endpoint.assertions, sort_keys=True))
    outcome = outcome_of(result)
    run_id = await run_store.record_test_run(
        conn,
        user_id=user_id,
        endpoint_id=endpoint.id,
        started_at=now,
        finished_at=now + timedelta(milliseconds=result.duration_ms),
        outcome={
            "status": outcome.status,
            "duration_ms": outcome.duration_ms,
            "status_code": outcome.status_code,
            "response_body": outcome.body_json,
            "response_text": outcome.body_text,
            "response_size": outcome.size,
            "response_truncated": outcome.truncated,
            "error_message": outcome.error,
        },
    )
    return TestResult(
        run_id=run_id,
        status=result.status,
        duration_ms=result.duration_ms,
        status_code=outcome.status_code,
        response_body=outcome.body_json if outcome.body_json is not None else outcome.body_text,
        error_message=outcome.error,
    )
