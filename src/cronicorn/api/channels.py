"""`/api/channels`: notification channels (Apprise URLs) and subscriptions (`notify` on jobs
and endpoints). Another user's channel, job or endpoint is a 404; a URL Apprise cannot load,
an address the SSRF guard refuses or a failed test send is a 422 naming the reason, and
nothing is stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from cronicorn.api.deps import AdminDep, ConnDep, RuntimeDep, UserDep
from cronicorn.api.endpoints import get_dispatcher
from cronicorn.api.errors import ApiError
from cronicorn.api.params import NowDep, require_id
from cronicorn.dispatch import Dispatcher
from cronicorn.notify import service
from cronicorn.notify.urls import InvalidChannelUrl
from cronicorn.schemas.notify import (
    AccountNotifyBody,
    AccountNotifyOut,
    ChannelCreate,
    ChannelDetail,
    ChannelList,
    ChannelOut,
    ChannelPatch,
    ChannelTestResult,
    NotifyBody,
    NotifyOut,
)
from cronicorn.store import channels as channel_store

router = APIRouter(tags=["Channels"])
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


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
    try:
        channel = await service.add_channel(
            conn, user.user_id, body, runtime=runtime, dispatcher=dispatcher, now=now
        )
    except InvalidChannelUrl as exc:
        raise _refused(exc) from None
    except service.TransportError as exc:
        raise ApiError(
            422, f"Test notification failed: {exc.message}", code="channel_test_failed"
        ) from None
    return service.channel_out(channel)


@router.get("/channels", response_model=ChannelList, summary="Your channels")
async def list_channels(user: UserDep, conn: ConnDep) -> ChannelList:
    return await service.list_channels(conn, user.user_id)


@router.get(
    "/channels/{id}",
    response_model=ChannelDetail,
    summary="A channel with its latest deliveries",
)
async def get_channel(id: str, user: UserDep, conn: ConnDep) -> ChannelDetail:
    return await service.channel_detail(conn, user.user_id, require_id(id, "Channel"))


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
    return service.channel_out(channel)


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
    key = require_id(id, "Channel")
    return await service.try_channel(
        conn, user.user_id, key, runtime=runtime, dispatcher=dispatcher, now=now
    )


@router.get("/jobs/{id}/notify", response_model=NotifyOut, summary="A job's subscriptions")
async def get_job_notify(id: str, user: UserDep, conn: ConnDep) -> NotifyOut:
    return await service.notify_of(conn, user.user_id, job_id=require_id(id, "Job"))


@router.put(
    "/jobs/{id}/notify",
    response_model=NotifyOut,
    summary="Set (or with null clear) who hears about the job's endpoints",
)
async def put_job_notify(
    id: str, body: NotifyBody, user: UserDep, conn: ConnDep, now: NowDep
) -> NotifyOut:
    return await service.subscribe(conn, user.user_id, body, job_id=require_id(id, "Job"), now=now)


@router.get(
    "/endpoints/{id}/notify",
    response_model=NotifyOut,
    summary="An endpoint's own subscriptions (null: its job's apply)",
)
async def get_endpoint_notify(id: str, user: UserDep, conn: ConnDep) -> NotifyOut:
    return await service.notify_of(conn, user.user_id, endpoint_id=require_id(id, "Endpoint"))


@router.put(
    "/endpoints/{id}/notify",
    response_model=NotifyOut,
    summary="Override the job's subscriptions for one endpoint (null: inherit again)",
)
async def put_endpoint_notify(
    id: str, body: NotifyBody, user: UserDep, conn: ConnDep, now: NowDep
) -> NotifyOut:
    key = require_id(id, "Endpoint")
    return await service.subscribe(conn, user.user_id, body, endpoint_id=key, now=now)


@router.get(
    "/account/notify",
    response_model=AccountNotifyOut,
    summary="Your account-level subscriptions: scheduled backup failures (admin)",
)
async def get_account_notify(user: AdminDep, conn: ConnDep) -> AccountNotifyOut:
    return await service.account_notify_of(conn, user.user_id)


@router.put(
    "/account/notify",
    response_model=AccountNotifyOut,
    summary="Set (or with null clear) which of your channels hear backup failures (admin)",
)
async def put_account_notify(
    body: AccountNotifyBody, user: AdminDep, conn: ConnDep, now: NowDep
) -> AccountNotifyOut:
    return await service.subscribe_account(conn, user.user_id, body, now=now)
