"""Channel operations for every face (REST API, CLI, MCP): validate the Apprise URL, check
its address, send a test, store it encrypted. Subscriptions (`notify` on jobs/endpoints) may
only name the caller's own channels."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.dispatch import Dispatcher, UrlNotAllowed
from cronicorn.notify.messages import Event, render
from cronicorn.notify.secrets import decrypt_url, encrypt_url
from cronicorn.notify.transports import (
    AppriseTransport,
    Transport,
    TransportError,
    WebhookTransport,
)
from cronicorn.notify.urls import ChannelUrl, InvalidChannelUrl, parse_channel_url
from cronicorn.runtime import Runtime
from cronicorn.schemas.notify import (
    AccountNotifyBody,
    AccountNotifyOut,
    ChannelCreate,
    ChannelDetail,
    ChannelList,
    ChannelOut,
    ChannelTestResult,
    Delivery,
    NotifyBody,
    NotifyOut,
)
from cronicorn.store import channels as channel_store
from cronicorn.store import outbox
from cronicorn.store.errors import Invalid
from cronicorn.store.signing_keys import load_signing_keys

__all__ = [
    "InvalidChannelUrl",
    "TransportError",
    "account_notify_of",
    "add_channel",
    "channel_detail",
    "channel_out",
    "check_address",
    "create_channel",
    "list_channels",
    "notify_of",
    "send_test",
    "set_notify",
    "subscribe",
    "subscribe_account",
    "transport_for",
    "try_channel",
    "update_channel",
]


@lru_cache(maxsize=1)
def _executor() -> ThreadPoolExecutor:
    """Threads for Apprise test sends made outside the delivery loop (API, CLI)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="notify-test")


def transport_for(
    parsed: ChannelUrl,
    *,
    dispatcher: Dispatcher,
    keys: Sequence[bytes],
    timeout_s: float,
    executor: ThreadPoolExecutor | None = None,
) -> Transport:
    if parsed.webhook is not None:
        return WebhookTransport(parsed, dispatcher=dispatcher, keys=keys, timeout_s=timeout_s)
    return AppriseTransport(
        parsed, executor=executor or _executor(), dispatcher=dispatcher, timeout_s=timeout_s
    )


async def check_address(parsed: ChannelUrl, dispatcher: Dispatcher) -> None:
    """`InvalidChannelUrl` when the SSRF guard refuses the channel's host (metadata,
    link-local, private ranges outside CRONICORN_ALLOW_NETWORKS)."""
    target = parsed.webhook or parsed.host_check
    if target is None:
        return
    try:
        await dispatcher.check_url(target)
    except UrlNotAllowed as exc:
        raise InvalidChannelUrl(f"address not allowed: {exc.reason}") from None


async def send_test(
    conn: AsyncConnection,
    user_id: str,
    parsed: ChannelUrl,
    *,
    dispatcher: Dispatcher,
    auth_secret: str,
    timeout_s: float,
    now: datetime,
    web_url: str,
) -> None:
    """One "test" message through the channel; `TransportError` with the reason."""
    keys = await load_signing_keys(conn, [user_id], now, auth_secret)
    message = render([Event(0, "test", {"at": now.isoformat()})], web_url)
    transport = transport_for(
        parsed, dispatcher=dispatcher, keys=keys.get(user_id, []), timeout_s=timeout_s
    )
    await transport.send(message)


async def create_channel(
    conn: AsyncConnection,
    user_id: str,
    *,
    name: str,
    url: str,
    dispatcher: Dispatcher,
    auth_secret: str,
    now: datetime,
    test: bool,
    timeout_s: float,
    web_url: str,
) -> channel_store.Channel:
    """Validate, check the address, send a test (unless `test` is False: a failed test
    stores nothing), then store the URL encrypted."""
    parsed = parse_channel_url(url)
    await check_address(parsed, dispatcher)
    if test:
        await send_test(
            conn,
            user_id,
            parsed,
            dispatcher=dispatcher,
            auth_secret=auth_secret,
            timeout_s=timeout_s,
            now=now,
            web_url=web_url,
        )
    return await channel_store.create(
        conn,
        user_id,
        name=name,
        kind=parsed.kind,
        encrypted=encrypt_url(parsed.url, auth_secret),
        preview=parsed.preview,
        now=now,
    )


async def update_channel(
    conn: AsyncConnection,
    user_id: str,
    channel_id: str,
    *,
    name: str | None,
    url: str | None,
    dispatcher: Dispatcher,
    auth_secret: str,
    now: datetime,
) -> channel_store.Channel:
    await channel_store.get(conn, user_id, channel_id)  # 404 before any URL work
    if url is None:
        return await channel_store.update_channel(conn, user_id, channel_id, now=now, name=name)
    parsed = parse_channel_url(url)
    await check_address(parsed, dispatcher)
    return await channel_store.update_channel(
        conn,
        user_id,
        channel_id,
        now=now,
        name=name,
        kind=parsed.kind,
        encrypted=encrypt_url(parsed.url, auth_secret),
        preview=parsed.preview,
    )


async def stored_url(
    conn: AsyncConnection, user_id: str, channel_id: str, auth_secret: str
) -> ChannelUrl:
    return parse_channel_url(
        decrypt_url(await channel_store.secret_of(conn, user_id, channel_id), auth_secret)
    )


async def _check_owned(conn: AsyncConnection, user_id: str, wanted: list[str]) -> None:
    missing = set(wanted) - await channel_store.owned_ids(conn, user_id, wanted)
    if missing:
        raise Invalid("channels", f"unknown channel(s): {', '.join(sorted(missing))}")


async def subscribe_account(
    conn: AsyncConnection, user_id: str, body: AccountNotifyBody, *, now: datetime
) -> AccountNotifyOut:
    """Account-level subscriptions (admins: `backup_failed`); the callers let only admins
    in, and the outbox checks again when an event is written."""
    stored = body.notify.stored() if body.notify is not None else None
    if stored is not None:
        await _check_owned(conn, user_id, stored["channels"])
    await channel_store.set_account_notify(conn, user_id, stored, now)
    return AccountNotifyOut(notify=stored)


async def account_notify_of(conn: AsyncConnection, user_id: str) -> AccountNotifyOut:
    return AccountNotifyOut(notify=await channel_store.account_notify(conn, user_id))


async def set_notify(
    conn: AsyncConnection,
    user_id: str,
    *,
    job_id: str | None = None,
    endpoint_id: str | None = None,
    settings: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Subscribe a job (its endpoints inherit) or one endpoint (overrides its job); None
    unsubscribes (an endpoint then inherits its job's settings again)."""
    if settings is not None:
        await _check_owned(conn, user_id, list(dict.fromkeys(settings.get("channels", []))))
    kind, key = ("job", job_id) if job_id is not None else ("endpoint", endpoint_id)
    await channel_store.write_notify(conn, user_id, kind, key or "", settings, now)


async def subscribe(
    conn: AsyncConnection,
    user_id: str,
    body: NotifyBody,
    *,
    job_id: str | None = None,
    endpoint_id: str | None = None,
    now: datetime,
) -> NotifyOut:
    """`set_notify` from a request body; the answer is the settings as stored."""
    stored = body.notify.stored() if body.notify is not None else None
    await set_notify(
        conn, user_id, job_id=job_id, endpoint_id=endpoint_id, settings=stored, now=now
    )
    return NotifyOut(notify=stored)


async def notify_of(
    conn: AsyncConnection,
    user_id: str,
    *,
    job_id: str | None = None,
    endpoint_id: str | None = None,
) -> NotifyOut:
    """A job's or an endpoint's own subscriptions; another user's is `NotFound`."""
    kind, key = ("job", job_id) if job_id is not None else ("endpoint", endpoint_id)
    return NotifyOut(notify=await channel_store.read_notify(conn, user_id, kind, key or ""))


def channel_out(c: channel_store.Channel) -> ChannelOut:
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


async def list_channels(conn: AsyncConnection, user_id: str) -> ChannelList:
    return ChannelList(
        channels=[channel_out(c) for c in await channel_store.list_for(conn, user_id)]
    )


async def channel_detail(conn: AsyncConnection, user_id: str, channel_id: str) -> ChannelDetail:
    """A channel with its latest 20 deliveries."""
    channel = await channel_store.get(conn, user_id, channel_id)
    history = await outbox.history(conn, channel.id, 20)
    return ChannelDetail(
        **channel_out(channel).model_dump(), deliveries=[Delivery(**h) for h in history]
    )


async def try_channel(
    conn: AsyncConnection,
    user_id: str,
    channel_id: str,
    *,
    runtime: Runtime,
    dispatcher: Dispatcher,
    now: datetime,
) -> ChannelTestResult:
    """Send a test message through a stored channel now; a refusal or failed send is in the
    answer (not raised, not retried), a channel not the caller's is `NotFound`."""
    try:
        parsed = await stored_url(conn, user_id, channel_id, runtime.auth_secret)
        await check_address(parsed, dispatcher)
        await send_test(
            conn,
            user_id,
            parsed,
            dispatcher=dispatcher,
            auth_secret=runtime.auth_secret,
            timeout_s=runtime.settings.notify_timeout_s,
            now=now,
            web_url=runtime.settings.web_url,
        )
    except (InvalidChannelUrl, TransportError) as exc:
        return ChannelTestResult(ok=False, error=str(exc))
    return ChannelTestResult(ok=True)


async def add_channel(
    conn: AsyncConnection,
    user_id: str,
    body: ChannelCreate,
    *,
    runtime: Runtime,
    dispatcher: Dispatcher,
    now: datetime,
) -> channel_store.Channel:
    """`create_channel` from a request body, with the process's secret, send timeout and
    link base (the same for every face)."""
    return await create_channel(
        conn,
        user_id,
        name=body.name,
        url=body.url,
        dispatcher=dispatcher,
        auth_secret=runtime.auth_secret,
        now=now,
        test=body.test,
        timeout_s=runtime.settings.notify_timeout_s,
        web_url=runtime.settings.web_url,
    )
