"""`/api/channels`: notification channels (Apprise URLs) and subscriptions (`notify` on jobs
and endpoints). Another user's channel, job or endpoint is a 404; a URL Apprise cannot load,
an address the SSRF guard refuses or a failed test send is a 422 naming the reason, and
nothing is stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.api.deps import ConnDep, RuntimeDep, UserDep
from cronicorn.api.endpoints import get_dispatcher
from cronicorn.api.errors import ApiError
from cronicorn.api.params import NowDep, require_id
from cronicorn.dispatch import Dispatcher
from cronicorn.notify import service
from cronicorn.notify.urls import InvalidChannelUrl
from cronicorn.schemas.notify import (
    ChannelCreate,
    ChannelDetail,
    ChannelList,
    ChannelOut,
    ChannelPatch,
    ChannelTestResult,
    Delivery,
    NotifyBody,
    NotifyOut,
)
from cronicorn.store import channels as channel_store
from cronicorn.store import outbox
from cronicorn.store.channels import Channel
from cronicorn.store.errors import NotFound
from cronicorn.store.tables import endpoints, jobs

router = APIRouter(tags=["Channels"])
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


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


def _refused(exc: InvalidChannelUrl) -> ApiError:
    return ApiError(
        422,
        f"Invalid channel URL: {exc.reason}",
        details=[{"path": "url", "in": "body", "message": exc.reason, "type": "value_error"}],
    )


@router.post("/channels", status_code=201, response_model=ChannelOut, summary="Add a channel")
async def create_channel(
    body: ChannelCreate,
    user: UserDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
    now: NowDep,
) -> ChannelOut:
    settings = runtime.settings
    try:
        channel = await service.create_channel(
            conn,
            user.user_id,
            name=body.name,
            url=body.url,
            dispatcher=dispatcher,
            auth_secret=runtime.auth_secret,
            now=now,
            test=body.test,
            timeout_s=settings.notify_timeout_s,
            web_url=settings.web_url,
        )
    except InvalidChannelUrl as exc:
        raise _refused(exc) from None
    except service.TransportError as exc:
        raise ApiError(
            422, f"Test notification failed: {exc.message}", code="channel_test_failed"
        ) from None
    return _out(channel)


@router.get("/channels", response_model=ChannelList, summary="Your channels")
async def list_channels(user: UserDep, conn: ConnDep) -> ChannelList:
    return ChannelList(channels=[_out(c) for c in await channel_store.list_for(conn, user.user_id)])


@router.get(
    "/channels/{id}",
    response_model=ChannelDetail,
    summary="A channel with its latest deliveries",
)
async def get_channel(id: str, user: UserDep, conn: ConnDep) -> ChannelDetail:
    channel = await channel_store.get(conn, user.user_id, require_id(id, "Channel"))
    history = await outbox.history(conn, channel.id, 20)
    return ChannelDetail(**_out(channel).model_dump(), deliveries=[Delivery(**h) for h in history])


@router.patch("/channels/{id}", response_model=ChannelOut, summary="Rename or re-point")
async def patch_channel(
    id: str,
    body: ChannelPatch,
    user: UserDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
    now: NowDep,
) -> ChannelOut:
    try:
        channel = await service.update_channel(
            conn,
            user.user_id,
            require_id(id, "Channel"),
            name=body.name,
            url=body.url,
            dispatcher=dispatcher,
            auth_secret=runtime.auth_secret,
            now=now,
        )
    except InvalidChannelUrl as exc:
        raise _refused(exc) from None
    return _out(channel)


@router.delete("/channels/{id}", status_code=204, summary="Remove a channel")
async def delete_channel(id: str, user: UserDep, conn: ConnDep) -> None:
    await channel_store.delete_channel(conn, user.user_id, require_id(id, "Channel"))


@router.post(
    "/channels/{id}/test",
    response_model=ChannelTestResult,
    summary="Send a test message now (the outcome is in the answer, not retried)",
)
async def test_channel(
    id: str,
    user: UserDep,
    conn: ConnDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
    now: NowDep,
) -> ChannelTestResult:
    require_id(id, "Channel")
    try:
        parsed = await service.stored_url(conn, user.user_id, id, runtime.auth_secret)
        await service.check_address(parsed, dispatcher)
        await service.send_test(
            conn,
            user.user_id,
            parsed,
            dispatcher=dispatcher,
            auth_secret=runtime.auth_secret,
            timeout_s=runtime.settings.notify_timeout_s,
            now=now,
            web_url=runtime.settings.web_url,
        )
    except (InvalidChannelUrl, service.TransportError) as exc:
        return ChannelTestResult(ok=False, error=str(exc))
    return ChannelTestResult(ok=True)


async def _notify_of(
    conn: AsyncConnection, t: Table, key: str, user_id: str, what: str
) -> NotifyOut:
    row = (
        await conn.execute(select(t.c.notify).where(t.c.id == key, t.c.user_id == user_id))
    ).first()
    if row is None:
        raise NotFound(what)
    return NotifyOut(notify=row[0])


@router.get("/jobs/{id}/notify", response_model=NotifyOut, summary="A job's subscriptions")
async def get_job_notify(id: str, user: UserDep, conn: ConnDep) -> NotifyOut:
    return await _notify_of(conn, jobs, require_id(id, "Job"), user.user_id, "Job")


@router.put(
    "/jobs/{id}/notify",
    response_model=NotifyOut,
    summary="Set (or with null clear) who hears about the job's endpoints",
)
async def put_job_notify(
    id: str, body: NotifyBody, user: UserDep, conn: ConnDep, now: NowDep
) -> NotifyOut:
    stored = body.notify.stored() if body.notify is not None else None
    await service.set_notify(
        conn, user.user_id, job_id=require_id(id, "Job"), settings=stored, now=now
    )
    return NotifyOut(notify=stored)


@router.get(
    "/endpoints/{id}/notify",
    response_model=NotifyOut,
    summary="An endpoint's own subscriptions (null: its job's apply)",
)
async def get_endpoint_notify(id: str, user: UserDep, conn: ConnDep) -> NotifyOut:
    key = require_id(id, "Endpoint")
    return await _notify_of(conn, endpoints, key, user.user_id, "Endpoint")


@router.put(
    "/endpoints/{id}/notify",
    response_model=NotifyOut,
    summary="Override the job's subscriptions for one endpoint (null: inherit again)",
)
async def put_endpoint_notify(
    id: str, body: NotifyBody, user: UserDep, conn: ConnDep, now: NowDep
) -> NotifyOut:
    stored = body.notify.stored() if body.notify is not None else None
    key = require_id(id, "Endpoint")
    await service.set_notify(conn, user.user_id, endpoint_id=key, settings=stored, now=now)
    return NotifyOut(notify=stored)
