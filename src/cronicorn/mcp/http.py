"""`/mcp`: the MCP server over streamable HTTP, mounted on the API's ASGI app.

Stateless and JSON-answered: every POST carries one message and gets one JSON reply, and no
session lives in process memory, so any API worker (`--workers N`, several machines) can
answer any request, as for `/api`. Each request is authenticated and rate-limited before the
SDK sees it (`mcp.gate`); the caller rides in the ASGI scope to the tool handlers.

The MCP SDK (with OpenTelemetry, ~25 MB of an idle `cronicorn up`'s memory) and the tools are
imported on the first request to `/mcp`, not at start: most processes never serve one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from cronicorn.dispatch import DispatchConfig, Dispatcher
from cronicorn.mcp import gate
from cronicorn.requestid import current_request_id
from cronicorn.runtime import Runtime
from cronicorn.store.auth_gate import Access

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

CALLER_KEY = "cronicorn.caller"  # where the tool handlers (mcp.server) find the caller


@functools.cache
def _write_tools() -> frozenset[str]:
    from cronicorn.mcp.tools import ALL_TOOLS

    return frozenset(tool.name for tool in ALL_TOOLS if not tool.read_only)


def access_of(body: bytes) -> Access:
    """A call of a tool that writes counts as a write; any other message as a read."""
    try:
        message = json.loads(body)
    except ValueError:
        return "read"
    messages = message if isinstance(message, list) else [message]
    for item in messages:
        if not isinstance(item, dict) or item.get("method") != "tools/call":
            continue
        params = item.get("params")
        if isinstance(params, dict) and params.get("name") in _write_tools():
            return "write"
    return "read"


def _refusal(status: int, code: str, message: str, headers: dict[str, str]) -> JSONResponse:
    """The API's error envelope, for refusals before the MCP layer."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": None,
            "requestId": current_request_id(),
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


class McpEndpoint:
    """The ASGI app at `/mcp`; `running()` must wrap the hosting app's lifespan."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._dispatcher: Dispatcher | None = None
        self.max_body = runtime.settings.max_body_bytes
        self._manager: StreamableHTTPSessionManager | None = None
        self._wanted: asyncio.Event | None = None  # set by `running()`: a request wants the SDK
        self._ready = asyncio.Event()
        self._failure: BaseException | None = None

    def _build(self) -> StreamableHTTPSessionManager:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        from cronicorn.mcp.server import create_mcp_server

        return StreamableHTTPSessionManager(
            app=create_mcp_server(self.runtime, self.dispatcher),
            json_response=True,
            stateless=True,
            max_request_body_size=self.max_body,
        )

    async def _hold(self, wanted: asyncio.Event, stop: asyncio.Event) -> None:
        """Build and run the SDK's session manager once a request wants it, until `stop`:
        its task group is entered and left in this one task, as anyio requires."""
        waits = [asyncio.ensure_future(wanted.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        if stop.is_set():
            return
        try:
            manager = self._build()
            async with manager.run():
                self._manager = manager
                self._ready.set()
                await stop.wait()
        except Exception as exc:  # requests waiting get it; the app keeps serving the rest
            self._failure = exc
            self._ready.set()
            raise
        finally:
            self._manager = None

    async def _running_manager(self) -> StreamableHTTPSessionManager:
        if self._wanted is None:
            raise RuntimeError("/mcp is served only inside McpEndpoint.running()")
        self._wanted.set()
        await self._ready.wait()
        if self._manager is None:
            raise RuntimeError("the MCP server did not start") from self._failure
        return self._manager

    async def dispatcher(self) -> Dispatcher:
        """One dispatcher for the process's tool calls (SSRF checks, run now)."""
        if self._dispatcher is None:
            fresh = Dispatcher(DispatchConfig(allow_networks=self.runtime.settings.allow_networks))
            await fresh.start()
            if self._dispatcher is None:
                self._dispatcher = fresh
            else:
                await fresh.close()
        return self._dispatcher

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        stop = asyncio.Event()
        self._wanted = asyncio.Event()
        holder = asyncio.create_task(self._hold(self._wanted, stop), name="mcp")
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await holder
            self._wanted = None
            self._ready = asyncio.Event()
            if self._dispatcher is not None:
                await self._dispatcher.close()
                self._dispatcher = None

    def route(self) -> Route:
        """`POST /mcp` exactly (a Mount would redirect `/mcp` to `/mcp/`). Stateless: no
        session to delete and no server-to-client stream to open, so only POST is served
        (the SDK would hold a GET open for nothing)."""
        return Route("/mcp", self, methods=["POST"], include_in_schema=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive, self.max_body)
        if body is None:
            response = _refusal(413, "payload_too_large", "Request body too large", {})
            await response(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            outcome = await gate.authenticate(self.runtime, headers, access_of(body), _clock(scope))
        except (DBAPIError, PoolTimeout) as exc:  # as the API: 503 when the database refuses
            from cronicorn.mcp.errors import to_tool_error

            refusal = to_tool_error(exc)
            if refusal is None:
                raise
            retry = {"Retry-After": "1"}
            await _refusal(503, refusal.code, refusal.message, retry)(scope, receive, send)
            return
        if isinstance(outcome, gate.Refusal):
            code = "unauthorized" if outcome.status == 401 else "rate_limited"
            await _refusal(outcome.status, code, outcome.message, outcome.headers)(
                scope, receive, send
            )
            return
        scope = {**scope, CALLER_KEY: outcome}
        manager = await self._running_manager()
        await manager.handle_request(scope, _replay(body, receive), send)


def _clock(scope: Scope) -> gate.Clock:
    """The hosting app's clock (`api.deps.set_clock` in tests), else the wall clock."""
    app: Any = scope.get("app")
    clock = getattr(getattr(app, "state", None), "clock", None)
    return clock if callable(clock) else gate.utcnow


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the body read already, then the client's further messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
