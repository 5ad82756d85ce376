"""How a message leaves: Apprise for the 100+ services it knows, our dispatcher for JSON
webhooks (signed and SSRF-guarded like endpoint calls). A transport raises `TransportError`;
`permanent` means retrying cannot help (a refused address, an unloadable URL)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import apprise

from cronicorn.dispatch import Dispatcher, HttpRequest, UrlNotAllowed
from cronicorn.notify.apprise_log import captured
from cronicorn.notify.messages import EVENT_ID_HEADER, Message
from cronicorn.notify.urls import ChannelUrl


class TransportError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class Transport(Protocol):
    async def send(self, message: Message) -> None: ...


def scrub(text: str, url: str) -> str:
    """`text` without any piece of the channel URL that could be a secret (user, password,
    path segments, query values), for errors that are stored, shown and logged."""
    pieces = {url}
    rest = url.split("://", 1)[-1]
    for sep in ("@", ":", "/", "?", "&", "="):
        rest = rest.replace(sep, " ")
    pieces.update(p for p in rest.split() if len(p) >= 6)
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


class AppriseTransport:
    """Apprise is synchronous: sends run on a small thread pool, bounded by a deadline, so a
    hung service never holds the delivery loop (the thread finishes on its own)."""

    def __init__(
        self,
        channel: ChannelUrl,
        *,
        executor: ThreadPoolExecutor,
        dispatcher: Dispatcher,
        timeout_s: float,
    ) -> None:
        self._channel = channel
        self._executor = executor
        self._dispatcher = dispatcher
        self._timeout_s = timeout_s

    async def send(self, message: Message) -> None:
        if self._channel.host_check is not None:
            try:
                await self._dispatcher.check_url(self._channel.host_check)
            except UrlNotAllowed as exc:
                raise TransportError(f"address not allowed: {exc.reason}", permanent=True) from None
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._executor, _apprise_send, self._channel.url, message)
        try:
            ok, lines = await asyncio.wait_for(work, self._timeout_s)
        except TimeoutError:
            raise TransportError(f"timed out after {self._timeout_s:g} s") from None
        if not ok:
            reason = "; ".join(dict.fromkeys(lines)) or "the service refused the notification"
            raise TransportError(scrub(reason, self._channel.url)[:500])


def _apprise_send(url: str, message: Message) -> tuple[bool, list[str]]:
    with captured() as lines:
        # Sequential mode: the plugin sends (and logs) in this thread, where we capture.
        sender = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        if not sender.add(url):
            return False, lines or ["Apprise cannot load this URL"]
        if message.event_id:
            _add_header(sender, message.event_id)
        ok = sender.notify(title=message.title, body=message.body)
    return bool(ok), lines


def _add_header(sender: apprise.Apprise, event_id: str) -> None:
    """The event id as a header wherever the service carries custom headers (e-mail over
    SMTP, form/xml/json webhooks, ...), for receivers that deduplicate redeliveries."""
    for plugin in sender:
        headers = getattr(plugin, "headers", None)
        if isinstance(headers, dict):
            headers[EVENT_ID_HEADER] = event_id


class WebhookTransport:
    """POSTs the message's JSON (`{"events": [...], "count": n}`) with the user's signing
    headers; the dispatcher's guard checks every address it connects to."""

    def __init__(
        self,
        channel: ChannelUrl,
        *,
        dispatcher: Dispatcher,
        keys: Sequence[bytes],
        timeout_s: float,
    ) -> None:
        assert channel.webhook is not None
        self._channel = channel
        self._dispatcher = dispatcher
        self._keys = keys
        self._timeout_ms = int(timeout_s * 1000)

    async def send(self, message: Message) -> None:
        request = HttpRequest(
            url=self._channel.webhook or "",
            method="POST",
            headers=_with_event_id(dict(self._channel.headers), message.event_id),
            body_json={"title": message.title, "body": message.body, **message.payload},
            timeout_ms=self._timeout_ms,
            max_response_size_kb=4,
            signing_keys=self._keys,
        )
        result = await self._dispatcher.execute(request)
        if result.ok:
            return
        error = result.error_message or f"HTTP {result.status_code}"
        permanent = error.startswith("URL not allowed")
        raise TransportError(scrub(error, self._channel.url)[:500], permanent=permanent)


def _with_event_id(headers: dict[str, str], event_id: str) -> dict[str, str]:
    if event_id:
        headers[EVENT_ID_HEADER] = event_id
    return headers
