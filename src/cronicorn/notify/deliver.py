"""Delivery: every scheduler process runs one `Deliverer` beside its claim loop.

A tick leases the channels that have due events and whose rate-limit gap has passed
(`store.outbox.claim_channels`: SKIP LOCKED plus a lease, so one process at a time sends to a
channel, whatever the number of schedulers), sends each channel's due events as ONE message
(grouped in a storm), then records the outcome and releases the lease. A failed send is
retried with exponential backoff, given up after NOTIFY_MAX_ATTEMPTS (the channel is then
marked failing). The loop runs on its own connections and threads: a slow or hung channel
delays only itself, never a claim. A process killed mid-send leaves its lease to expire;
another process then sends the events again (at least once; the payload's event ids let a
receiver drop a repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.dispatch import Dispatcher
from cronicorn.errors import first_line
from cronicorn.logs import get_logger
from cronicorn.notify import metrics
from cronicorn.notify.messages import Event, Message, render
from cronicorn.notify.secrets import ChannelSecretError, decrypt_url
from cronicorn.notify.service import transport_for
from cronicorn.notify.transports import Transport, TransportError
from cronicorn.notify.urls import InvalidChannelUrl, parse_channel_url
from cronicorn.store import audit, outbox
from cronicorn.store.outbox import ClaimedChannel, Pending
from cronicorn.store.signing_keys import load_signing_keys

log = get_logger("cronicorn.notify")

Clock = Callable[[], datetime]
MAX_RETRY_S = 3600.0
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class NotifyConfig:
    web_url: str = "http://localhost:3333"
    poll_s: float = 1.0
    gap_s: float = 10.0
    retry_base_s: float = 30.0
    max_attempts: int = 6
    timeout_s: float = 10.0
    max_group: int = 100
    channels_per_tick: int = 20
    retention_days: float = 30.0
    audit_retention_days: float = 365.0
    auth_secret: str = field(default="", repr=False)

    @property
    def lease(self) -> timedelta:
        """Long enough for one send and its bookkeeping; a dead holder's channels wait this."""
        return timedelta(seconds=3 * self.timeout_s + 5)

    def retry_in(self, attempt: int) -> timedelta:
        """Backoff before attempt `attempt + 1` (attempt counts from 1)."""
        return timedelta(seconds=min(self.retry_base_s * 2 ** max(attempt - 1, 0), MAX_RETRY_S))


def owner_id() -> str:
    """Names this process in leases (`notify@host:pid:random`), so a stuck lease says whose."""
    import socket

    return f"notify@{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Deliverer:
    def __init__(
        self,
        engine: AsyncEngine,
        config: NotifyConfig,
        dispatcher: Dispatcher,
        *,
        clock: Clock,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.dispatcher = dispatcher
        self.clock = clock
        self.owner = owner or owner_id()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="notify")
        self._last_prune = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                busy = await self._tick_safely()
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.config.poll_s)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _tick_safely(self) -> bool:
        try:
            busy = await self.tick()
            if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
                self._last_prune = time.monotonic()
                await self.prune()
            return busy
        except (SQLAlchemyError, OSError) as exc:
            log.warning("notify_tick_failed", error=first_line(exc)[:200])
            return False

    async def tick(self) -> bool:
        """One round: lease due channels and send to each; True when something was sent."""
        now = self.clock()
        async with self.engine.begin() as conn:
            claimed = await outbox.claim_channels(
                conn,
                self.owner,
                now=now,
                lease=self.config.lease,
                limit=self.config.channels_per_tick,
            )
        if claimed:
            await asyncio.gather(*(self._deliver(c) for c in claimed))
        return bool(claimed)

    async def _deliver(self, channel: ClaimedChannel) -> None:
        now = self.clock()
        async with self.engine.connect() as conn:
            rows = await outbox.pending_for(conn, channel.id, now=now, limit=self.config.max_group)
            keys = await load_signing_keys(conn, [channel.user_id], now, self.config.auth_secret)
        if not rows:
            async with self.engine.begin() as conn:
                await outbox.release(conn, channel.id, self.owner)
            return
        message = render([Event(r.id, r.event, r.payload) for r in rows], self.config.web_url)
        started = time.monotonic()
        try:
            await self._transport(channel, keys.get(channel.user_id, [])).send(message)
        except TransportError as exc:
            await self._failed(channel, rows, exc, started)
            return
        await self._sent(channel, rows, started)

    def _transport(self, channel: ClaimedChannel, keys: list[bytes]) -> Transport:
        try:
            parsed = parse_channel_url(decrypt_url(channel.url_encrypted, self.config.auth_secret))
        except (ChannelSecretError, InvalidChannelUrl) as exc:
            return _Broken(str(exc))
        return transport_for(
            parsed,
            dispatcher=self.dispatcher,
            keys=keys,
            timeout_s=self.config.timeout_s,
            executor=self._executor,
        )

    async def _sent(self, channel: ClaimedChannel, rows: list[Pending], started: float) -> None:
        async with self.engine.begin() as conn:
            kept = await outbox.finish_sent(
                conn,
                channel,
                [r.id for r in rows],
                owner=self.owner,
                now=self.clock(),
                gap=timedelta(seconds=self.config.gap_s),
                duration_ms=_ms(started),
            )
        metrics.SENDS.labels("ok").inc()
        for r in rows:
            metrics.EVENTS.labels(r.event, "sent").inc()
        log.info("notify_sent", channel=channel.id, events=len(rows), lease_kept=kept)

    async def _failed(
        self, channel: ClaimedChannel, rows: list[Pending], exc: TransportError, started: float
    ) -> None:
        attempt = channel.consecutive_failures + 1
        async with self.engine.begin() as conn:
            given_up = await outbox.finish_failed(
                conn,
                channel,
                rows,
                owner=self.owner,
                now=self.clock(),
                error=exc.message,
                retry_in=self.config.retry_in(attempt),
                max_attempts=self.config.max_attempts,
                permanent=exc.permanent,
                duration_ms=_ms(started),
            )
        metrics.SENDS.labels("failed" if given_up else "retry").inc()
        for r in rows:
            if exc.permanent or r.attempts + 1 >= self.config.max_attempts:
                metrics.EVENTS.labels(r.event, "failed").inc()
        log.warning(
            "notify_send_failed",
            channel=channel.id,
            events=len(rows),
            given_up=given_up,
            error=exc.message[:200],
        )

    async def prune(self) -> None:
        now = self.clock()
        async with self.engine.begin() as conn:
            if self.config.retention_days > 0:
                await outbox.prune(conn, now - timedelta(days=self.config.retention_days))
            if self.config.audit_retention_days > 0:
                await audit.prune(conn, now - timedelta(days=self.config.audit_retention_days))


class _Broken:
    """A channel whose URL cannot be used any more (AUTH_SECRET changed, Apprise dropped
    the service): every send fails permanently with the reason."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    async def send(self, message: Message) -> None:
        raise TransportError(self._reason, permanent=True)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
