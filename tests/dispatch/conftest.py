"""Fixtures for the dispatcher tests: real HTTP servers on 127.0.0.1, a raw TCP server for
misbehaving peers, and a DNS resolver whose answers a test chooses (its answers still go
through the dispatcher's SSRF guard)."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from cronicorn.dispatch import DispatchConfig, Dispatcher

LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.1/32")
HUGE_BYTES = 50 * 1024 * 1024
BOMB_BYTES = 20 * 1024 * 1024


class ChosenResolver(AbstractResolver):
    """Answers from a table: host -> list of answers, each answer a list of addresses (the
    last answer repeats). Unknown hosts fail like NXDOMAIN. Counts lookups per host."""

    def __init__(self, table: dict[str, Sequence[Sequence[str]]]) -> None:
        self.table = table
        self.calls: dict[str, int] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        n = self.calls.get(host, 0)
        self.calls[host] = n + 1
        answers = self.table.get(host)
        if not answers:
            raise OSError(socket.EAI_NONAME, f"Name or service not known: {host}")
        addresses = answers[min(n, len(answers) - 1)]
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for a in addresses
        ]

    async def close(self) -> None:
        return None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, list[str]]
    body: bytes


@dataclass
class Target:
    server: TestServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _app(seen: list[Seen]) -> web.Application:
    routes = web.RouteTableDef()

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read()
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        seen.append(Seen(request.method, request.path_qs, headers, body))
        return await handler(request)

    @routes.get("/json")
    async def json_ok(request: web.Request) -> web.Response:
        return web.json_response({"hello": "wörld", "n": [1, 2]})

    @routes.get("/text")
    async def text(request: web.Request) -> web.Response:
        return web.Response(text="plain text")

    @routes.get("/json-as-text")
    async def json_as_text(request: web.Request) -> web.Response:
        return web.Response(text='{"even": "without a json content type"}')

    @routes.get("/invalid-json")
    async def invalid_json(request: web.Request) -> web.Response:
        return web.Response(body=b'{"a": ', content_type="application/json")

    @routes.get("/nan")
    async def nan(request: web.Request) -> web.Response:
        return web.Response(body=b'{"a": NaN}', content_type="application/json")

    @routes.get("/empty")
    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    @routes.get("/error")
    async def error(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    @routes.get("/teapot")
    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=418, text="short and stout")

    @routes.get("/hang")
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="too late")

    @routes.get("/trickle")
    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"x")
            await asyncio.sleep(0.05)
        await resp.write_eof()
        return resp

    @routes.get("/huge")
    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        resp.content_length = HUGE_BYTES
        await resp.prepare(request)
        chunk = b"7" * 65536
        try:
            for _ in range(HUGE_BYTES // len(chunk)):
                await resp.write(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    bomb = gzip.compress(b"\0" * BOMB_BYTES, compresslevel=9)

    @routes.get("/gzip-bomb")
    async def gzip_bomb(request: web.Request) -> web.Response:
        headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain"}
        return web.Response(body=bomb, headers=headers)

    @routes.get("/redirect/{n}")
    async def redirect_n(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n <= 0:
            return web.json_response({"done": True})
        raise web.HTTPFound(f"/redirect/{n - 1}")

    @routes.get("/loop")
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    @routes.route("*", "/to")
    async def redirect_to(request: web.Request) -> web.Response:
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query["url"]})

    @routes.route("*", "/echo")
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "content_type": request.headers.get("Content-Type"),
                "body": body.decode("utf-8"),
            }
        )

    @routes.route("*", "/close")
    async def close(request: web.Request) -> web.Response:
        return web.json_response({"closing": True}, headers={"Connection": "close"})

    app = web.Application(middlewares=[record])
    app.add_routes(routes)
    return app


@pytest.fixture(scope="session")
async def target() -> AsyncIterator[Target]:
    seen: list[Seen] = []
    server = TestServer(_app(seen), host="127.0.0.1", handler_cancellation=True)
    await server.start_server()
    try:
        yield Target(server, seen)
    finally:
        await server.close()


@pytest.fixture
def loopback_config() -> DispatchConfig:
    return DispatchConfig(allow_networks=(LOOPBACK_V4,))


@pytest.fixture
async def dispatcher(loopback_config: DispatchConfig) -> AsyncIterator[Dispatcher]:
    async with Dispatcher(loopback_config) as d:
        yield d


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[RawHandler], Awaitable[int]]]:
    """Start a raw TCP server on 127.0.0.1 with the given connection handler; returns its port."""
    servers: list[asyncio.Server] = []

    async def start(handler: RawHandler) -> int:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def chosen_resolver() -> type[ChosenResolver]:
    """The resolver class whose answers a test chooses (see `ChosenResolver`)."""
    return ChosenResolver
