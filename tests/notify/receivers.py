"""Real local receivers for notifications: an HTTP server (JSON webhooks, ntfy-style) and an
SMTP server (aiosmtpd), all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from fastapi import FastAPI, Request, Response

from support import free_port, serve_app


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    started: float = field(default_factory=time.monotonic)
    acked: bool = False  # answered 2xx (what counts as delivered)


@dataclass
class Receiver:
    """Records every request; `status[path]` answers other than 200, `hang` paths never
    answer within any sane deadline."""

    base: str = ""
    hits: list[Hit] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)  # answered only once `release` is set
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hold_first: bool = False  # hold the very first request (any path) until `release`
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # ends hangs (never a 2xx)

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]


@contextlib.asynccontextmanager
async def http_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT"])
    async def anything(path: str, request: Request) -> Response:
        body = await request.body()
        try:
            parsed = await request.json()
        except ValueError:
            parsed = None
        hit = Hit("/" + path, dict(request.headers), body, parsed)
        receiver.hits.append(hit)
        if "/" + path in receiver.held or (receiver.hold_first and len(receiver.hits) == 1):
            await receiver.release.wait()
            if receiver.hold_first:
                return Response(status_code=503, content=b"{}")  # never acknowledged
        if "/" + path in receiver.hang:
            # Past any send deadline in these tests; the receiver's shutdown waits for open
            # requests, so a hang still open when the test ends is cut short, unacknowledged.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.closing.wait(), 4)
            if receiver.closing.is_set():
                return Response(status_code=503, content=b"{}")
        status = receiver.status.get("/" + path, 200)
        hit.acked = status < 300
        return Response(status_code=status, content=b"{}")

    async with serve_app(app) as base:
        receiver.base = base
        try:
            yield receiver
        finally:
            receiver.closing.set()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "data": envelope.content.decode("utf-8", "replace"),
            }
        )
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, _Mailbox]]:
    box = _Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        auth_require_tls=False,
        authenticator=lambda *_: AuthResult(success=True),
    )
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()
