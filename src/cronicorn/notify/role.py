"""Notification delivery as a background role beside each scheduler (`cronicorn scheduler`
and `cronicorn up`): its own dispatcher, engine connections and threads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from cronicorn.config import Settings
from cronicorn.dispatch import DispatchConfig, Dispatcher
from cronicorn.notify.deliver import Deliverer, NotifyConfig
from cronicorn.runtime import Runtime


def utc_now() -> datetime:
    """The delivery loop's wall clock (its own: roles never import each other)."""
    return datetime.now(UTC)


def notify_config(settings: Settings, auth_secret: str) -> NotifyConfig:
    return NotifyConfig(
        web_url=settings.web_url,
        poll_s=settings.notify_poll_s,
        channels_per_tick=settings.notify_concurrency,
        gap_s=settings.notify_channel_gap_s,
        retry_base_s=settings.notify_retry_base_s,
        max_attempts=settings.notify_max_attempts,
        timeout_s=settings.notify_timeout_s,
        retention_days=settings.notify_retention_days,
        audit_retention_days=settings.audit_retention_days,
        auth_secret=auth_secret,
    )


async def notify_role(runtime: Runtime, stop: asyncio.Event) -> None:
    """Deliver notifications until `stop`."""
    settings = runtime.settings
    config = notify_config(settings, runtime.auth_secret)
    async with Dispatcher(DispatchConfig(allow_networks=settings.allow_networks)) as dispatcher:
        await Deliverer(runtime.engine, config, dispatcher, clock=utc_now).run(stop)
