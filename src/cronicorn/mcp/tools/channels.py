"""Notification channels and who hears about what (as `/api/channels` and the `notify`
routes on jobs and endpoints), through `notify.service`: a URL Apprise cannot load, an
address the SSRF guard refuses or a failed test send is a 422 naming the reason, and nothing
is stored."""

from __future__ import annotations

from typing import Any

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
    NotifyBody,
    NotifyOut,
    TestResult,
)
from cronicorn.store import channels as channel_store

CHANNEL_ID = (PathId("id", "Channel", "The channel's id (from listChannels)"),)
JOB_ID = (PathId("id", "Job", "The job's id"),)
ENDPOINT_ID = (PathId("id", "Endpoint", "The endpoint's id"),)


def _refused(exc: InvalidChannelUrl) -> ToolError:
    error = invalid("url", exc.reason)
    error.message = f"Invalid channel URL: {exc.reason}"
    return error


async def _list(call: Call, _: NoArguments) -> ChannelList:
    return await service.list_channels(call.conn, call.user_id)


async def _get(call: Call, _: NoArguments) -> ChannelDetail:
    return await service.channel_detail(call.conn, call.user_id, call.id("id"))


async def _create(call: Call, body: ChannelCreate) -> ChannelOut:
    dispatcher = await call.dispatcher()
    try:
        channel = await service.add_channel(
            call.conn, call.user_id, body, runtime=call.runtime, dispatcher=dispatcher, now=call.now
        )
    except InvalidChannelUrl as exc:
        raise _refused(exc) from None
    except service.TransportError as exc:
        message = f"Test notification failed: {exc.message}"
        raise ToolError(422, "channel_test_failed", message) from None
    return service.channel_out(channel)


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
    return service.channel_out(channel)


async def _delete(call: Call, _: NoArguments) -> dict[str, Any]:
    await channel_store.delete_channel(call.conn, call.user_id, call.id("id"))
    return {"deleted": True, "id": call.id("id")}


async def _test(call: Call, _: NoArguments) -> TestResult:
    dispatcher = await call.dispatcher()
    return await service.try_channel(
        call.conn,
        call.user_id,
        call.id("id"),
        runtime=call.runtime,
        dispatcher=dispatcher,
        now=call.now,
    )


async def _get_job_notify(call: Call, _: NoArguments) -> NotifyOut:
    return await service.notify_of(call.conn, call.user_id, job_id=call.id("id"))


async def _get_endpoint_notify(call: Call, _: NoArguments) -> NotifyOut:
    return await service.notify_of(call.conn, call.user_id, endpoint_id=call.id("id"))


async def _set_job_notify(call: Call, body: NotifyBody) -> NotifyOut:
    return await service.subscribe(
        call.conn, call.user_id, body, job_id=call.id("id"), now=call.now
    )


async def _set_endpoint_notify(call: Call, body: NotifyBody) -> NotifyOut:
    key = call.id("id")
    return await service.subscribe(call.conn, call.user_id, body, endpoint_id=key, now=call.now)


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
