"""Adaptive scheduling: hints with a TTL, pause, failure reset, preview (as
`/api/endpoints/{id}/…`). Each write replans with the domain governor at once; the tools
answer with the endpoint as it now stands, so an agent sees the effect (nextRunAt, the hint
and its expiry) without a second call."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cronicorn.mcp.tooling import Call, NoArguments, PathId, Tool
from cronicorn.schemas.common import In
from cronicorn.schemas.endpoints import Endpoint, IntervalHintIn, OneshotHintIn, PauseIn, Preview
from cronicorn.services import hints
from cronicorn.store import endpoints as endpoint_store

ENDPOINT_ID = (PathId("id", "Endpoint", "The endpoint's id"),)


class PreviewQuery(In):
    count: int = Field(default=5, ge=1, le=50, description="How many planned runs (1-50)")


async def _interval(call: Call, body: IntervalHintIn) -> Endpoint:
    quotas = call.runtime.settings.quotas
    row = await hints.interval_hint(
        call.conn, call.user_id, call.id("id"), body, call.now, quotas=quotas
    )
    return Endpoint.of(row)


async def _oneshot(call: Call, body: OneshotHintIn) -> Endpoint:
    row = await hints.oneshot_hint(call.conn, call.user_id, call.id("id"), body, call.now)
    return Endpoint.of(row)


async def _pause(call: Call, body: PauseIn) -> Endpoint:
    row = await endpoint_store.set_paused_until(
        call.conn, call.user_id, call.id("id"), body.paused_until, call.now
    )
    return Endpoint.of(row)


async def _clear(call: Call, _: NoArguments) -> Endpoint:
    return Endpoint.of(
        await endpoint_store.clear_hints(call.conn, call.user_id, call.id("id"), call.now)
    )


async def _reset(call: Call, _: NoArguments) -> Endpoint:
    row = await endpoint_store.reset_failures(call.conn, call.user_id, call.id("id"), call.now)
    return Endpoint.of(row)


async def _preview(call: Call, query: PreviewQuery) -> Preview:
    planned = await endpoint_store.preview(
        call.conn, call.user_id, call.id("id"), call.now, query.count
    )
    return Preview(endpoint_id=call.id("id"), runs=planned)


TOOLS: list[Tool[Any]] = [
    Tool(
        "applyIntervalHint",
        "Run at another interval for a while",
        "Make an endpoint run every `intervalMs` milliseconds for `ttlMinutes` minutes "
        "(default 60, at most 30 days), then return to its baseline. The interval must lie "
        "within the endpoint's minIntervalMs/maxIntervalMs. `reason` is shown in the history.",
        IntervalHintIn,
        _interval,
        ids=ENDPOINT_ID,
        output=Endpoint,
        idempotent=True,
    ),
    Tool(
        "scheduleOneShot",
        "Run once at a given time",
        "Schedule one extra run: send exactly one of `nextRunAt` (ISO-8601 instant, in the "
        "future) or `nextRunInMs` (milliseconds from now). Without `ttlMinutes` the hint lives "
        "until 60 minutes after the run.",
        OneshotHintIn,
        _oneshot,
        ids=ENDPOINT_ID,
        output=Endpoint,
    ),
    Tool(
        "pauseResumeEndpoint",
        "Pause or resume an endpoint",
        "Pause an endpoint until `pausedUntil` (ISO-8601 instant), or resume it now with "
        "`pausedUntil: null`. A resumed endpoint that missed runs runs once, then returns to "
        "its schedule.",
        PauseIn,
        _pause,
        ids=ENDPOINT_ID,
        output=Endpoint,
        idempotent=True,
    ),
    Tool(
        "clearHints",
        "Clear hints",
        "Remove the interval and one-shot hints; the endpoint returns to its baseline schedule.",
        NoArguments,
        _clear,
        ids=ENDPOINT_ID,
        output=Endpoint,
        idempotent=True,
    ),
    Tool(
        "resetFailures",
        "Reset the failure count",
        "Set the failure count to zero, which ends the backoff after failures.",
        NoArguments,
        _reset,
        ids=ENDPOINT_ID,
        output=Endpoint,
        idempotent=True,
    ),
    Tool(
        "previewSchedule",
        "Preview the next runs",
        "The next planned runs and why (baseline, hint, backoff, pause, quota), if nothing "
        "changes. No run outcomes are assumed.",
        PreviewQuery,
        _preview,
        ids=ENDPOINT_ID,
        output=Preview,
        read_only=True,
    ),
]
