"""Notification channels and who hears about what (as `/api/channels` and the `notify`
routes on jobs and endpoints), through `notify.service`: a URL Apprise cannot load, an
address the SSRF guard refuses or a failed test send is a 422 naming the reason, and nothing
is stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select

from cronicorn.mcp.errors import ToolError, invalid
from cronicorn.mcp.tooling import Call, NoArguments, PathId, Tool
from cronicorn.notify import service
from cronicorn.notify.urls import InvalidChannelUrl
from cronicorn.schemas.notify import (
    ChannelCreate,
    ChannelDetail,
    ChannelList,
    ChannelOut,
    ChannelPatch,
    Delivery,
    NotifyBody,
    NotifyOut,
    TestResult,
)
from cronicorn.store import channels as channel_store
from cronicorn.store import outbox
from cronicorn.store.channels import Channel
from cronicorn.store.errors import NotFound
from cronicorn.store.tables import endpoints, jobs

CHANNEL_ID = (PathId("id", "Channel", "The channel's id (from listChannels)"),)
JOB_ID = (PathId("id", "Job", "The job's id"),)
ENDPOINT_ID = (PathId("id", "Endpoint", "The endpoint's id"),)


def _out(c: Channel) -> ChannelOut:
    return ChannelOut(
        id=c.id,
        name=c.name,
        kind=c.kind,
        url_preview=c.url_preview,
        failing=c.failing,
        last_success_at=c.last_success_at,
        last_error_at=c.last_error_at,
        last_error=c.last_error,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def _refused(exc: InvalidChannelUrl) -> ToolError:
    error = invalid("url", exc.reason)
    error.message = f"Invalid channel URL: {exc.reason}"
    return error


async def _list(call: Call, _: NoArguments) -> ChannelList:
    return ChannelList(
        channels=[_out(c) for c in await channel_store.list_for(call.conn, call.user_id)]
    )


async def _get(call: Call, _: NoArguments) -> ChannelDetail:
    channel = await channel_store.get(call.conn, call.user_id, call.id("id"))
    history = await outbox.history(call.conn, channel.id, 20)
    return ChannelDetail(**_out(channel).model_dump(), deliveries=[Delivery(**h) for h in history])


async def _create(call: Call, body: ChannelCreate) -> ChannelOut:
    settings = call.runtime.settings
    try:
        channel = await service.create_channel(
            call.conn,
            call.user_id,
            name=body.name,
            url=body.url,
            dispatcher=await call.dispatcher(),
            auth_secret=call.runtime.auth_secret,
            now=call.now,
            test=body.test,
            timeout_s=settings.notify_timeout_s,
            web_url=settings.web_url,
        )
    except InvalidChannelUrl as exc:
        raise _refused(exc) from None
    except service.TransportError as exc:
        message = f"Test notification failed: {exc.message}"
        raise ToolError(422, "channel_test_failed", message) from None
    return _out(channel)


async def _update(call: Call, body: ChannelPatch) -> ChannelOut:
    try:
        channel = await service.update_channel(
            call.conn,
            call.user_id,
            call.id("id"),
            name=body.name,
            url=body.url,
            dispatcher=await call.dispatcher(),
            auth_secret=call.runtime.auth_secret,
            now=call.now,
        )
    except InvalidChannelUrl as exc:
        raise _refused(exc) from None
    return _out(channel)


async def _delete(call: Call, _: NoArguments) -> dict[str, Any]:
    await channel_store.delete_channel(call.conn, call.user_id, call.id("id"))
    return {"deleted": True, "id": call.id("id")}


async def _test(call: Call, _: NoArguments) -> TestResult:
    runtime, dispatcher = call.runtime, await call.dispatcher()
    try:
        parsed = await service.stored_url(
            call.conn, call.user_id, call.id("id"), runtime.auth_secret
        )
        await service.check_address(parsed, dispatcher)
        await service.send_test(
            call.conn,
            call.user_id,
            parsed,
            dispatcher=dispatcher,
            auth_secret=runtime.auth_secret,
            timeout_s=runtime.settings.notify_timeout_s,
            now=call.now,
            web_url=runtime.settings.web_url,
        )
    except (InvalidChannelUrl, service.TransportError) as exc:
        return TestResult(ok=False, error=str(exc))
    return TestResult(ok=True)


async def _notify_of(call: Call, table: Table, what: str) -> NotifyOut:
    query = select(table.c.notify).where(
        table.c.id == call.id("id"), table.c.user_id == call.user_id
    )
    row = (await call.conn.execute(query)).first()
    if row is None:
        raise NotFound(what)
    return NotifyOut(notify=row[0])


async def _get_job_notify(call: Call, _: NoArguments) -> NotifyOut:
    return await _notify_of(call, jobs, "Job")


async def _get_endpoint_notify(call: Call, _: NoArguments) -> NotifyOut:
    return await _notify_of(call, endpoints, "Endpoint")


async def _set_job_notify(call: Call, body: NotifyBody) -> NotifyOut:
    stored = body.notify.stored() if body.notify is not None else None
    await service.set_notify(
        call.conn, call.user_id, job_id=call.id("id"), settings=stored, now=call.now
    )
    return NotifyOut(notify=stored)


async def _set_endpoint_notify(call: Call, body: NotifyBody) -> NotifyOut:
    stored = body.notify.stored() if body.notify is not None else None
    await service.set_notify(
        call.conn, call.user_id, endpoint_id=call.id("id"), settings=stored, now=call.now
    )
    return NotifyOut(notify=stored)


NOTIFY_HELP = (
    "`notify`: {channels: [channel ids], onFailureAfter: consecutive failures before the "
    "first alert (default 1), onRecovery: tell when it works again (default true), "
    "reminderHours: repeat while failing (0: never), slowerThanMs: alert on slow runs}; "
    "null clears."
)

TOOLS: list[Tool[Any]] = [
    Tool(
        "listChannels",
        "Notification channels",
        "The caller's notification channels (Slack, Discord, e-mail, ntfy, webhooks, … as "
        "Apprise URLs, shown masked) and whether they are failing.",
        NoArguments,
        _list,
        output=ChannelList,
        read_only=True,
    ),
    Tool(
        "getChannel",
        "One channel",
        "A channel with its latest 20 deliveries.",
        NoArguments,
        _get,
        ids=CHANNEL_ID,
        output=ChannelDetail,
        read_only=True,
    ),
    Tool(
        "createChannel",
        "Add a channel",
        "Add a notification channel: `url` is an Apprise URL (e.g. slack://…, "
        "mailto://…, ntfys://…, json://host/path for a webhook). With `test` (default true) "
        "a test message is sent first and a failed send stores nothing.",
        ChannelCreate,
        _create,
        output=ChannelOut,
    ),
    Tool(
        "updateChannel",
        "Rename or re-point a channel",
        "Change a channel's name or URL.",
        ChannelPatch,
        _update,
        ids=CHANNEL_ID,
        output=ChannelOut,
        idempotent=True,
    ),
    Tool(
        "deleteChannel",
        "Remove a channel",
        "Remove a channel; subscriptions naming it stop using it.",
        NoArguments,
        _delete,
        ids=CHANNEL_ID,
        destructive=True,
    ),
    Tool(
        "testChannel",
        "Send a test message",
        "Send a test message now; the outcome is in the answer (ok, error) and not retried.",
        NoArguments,
        _test,
        ids=CHANNEL_ID,
        output=TestResult,
        open_world=True,
    ),
    Tool(
        "getJobNotify",
        "A job's subscriptions",
        "Who hears about the job's endpoints (null: nobody).",
        NoArguments,
        _get_job_notify,
        ids=JOB_ID,
        output=NotifyOut,
        read_only=True,
    ),
    Tool(
        "setJobNotify",
        "Set a job's subscriptions",
        "Set who hears about failures, recoveries and slow runs of the job's endpoints. "
        + NOTIFY_HELP,
        NotifyBody,
        _set_job_notify,
        ids=JOB_ID,
        output=NotifyOut,
        idempotent=True,
    ),
    Tool(
        "getEndpointNotify",
        "An endpoint's own subscriptions",
        "An endpoint's own subscriptions (null: its job's apply).",
        NoArguments,
        _get_endpoint_notify,
        ids=ENDPOINT_ID,
        output=NotifyOut,
        read_only=True,
    ),
    Tool(
        "setEndpointNotify",
        "Override an endpoint's subscriptions",
        "Override the job's subscriptions for one endpoint; null inherits the job's again. "
        + NOTIFY_HELP,
        NotifyBody,
        _set_endpoint_notify,
        ids=ENDPOINT_ID,
        output=NotifyOut,
        idempotent=True,
    ),
]
