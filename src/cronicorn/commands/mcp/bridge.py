"""`cronicorn mcp`: stdio for desktop agents, bridged to the server's `/mcp`.

The tools exist once, on the server (`cronicorn.mcp`); this process only relays, and imports
none of it: every list, call, resource and prompt goes to `CRONICORN_API_URL`'s `/mcp` as the
caller (API key, or a device token from `device.py`), and the answer comes back unchanged, so
stdio and HTTP agents see the same tools, schemas and errors. A token the server stops
accepting mid-session is replaced by approving the device again, then the request is retried
once.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from cronicorn import __version__
from cronicorn.commands.mcp import device
from mcp import Client

DEFAULT_API_URL = "http://localhost:3333/api"


@dataclass(frozen=True)
class BridgeConfig:
    api: str  # the server's base URL, without `/api`
    api_key: str | None
    credentials: Path
    open_browser: bool

    @property
    def mcp_url(self) -> str:
        return f"{self.api}/mcp"

    def with_overrides(self, *, api_url: str | None, api_key: str | None) -> BridgeConfig:
        return replace(
            self,
            api=api_base(api_url) if api_url else self.api,
            api_key=api_key.strip() or None if api_key else self.api_key,
        )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BridgeConfig:
        values = dict(os.environ if env is None else env)
        key = values.get("CRONICORN_API_KEY", "").strip() or None
        home = Path(values.get("HOME") or Path.home())
        return cls(
            api=api_base(values.get("CRONICORN_API_URL", "") or DEFAULT_API_URL),
            api_key=key,
            credentials=device.credentials_path(home),
            open_browser=values.get("CRONICORN_NO_BROWSER", "") not in {"1", "true", "yes"},
        )


def api_base(url: str) -> str:
    """`https://host/api/` and `https://host` both mean `https://host` (the original's users
    have `/api` in CRONICORN_API_URL; ours may not)."""
    base = url.strip().rstrip("/")
    if base.endswith("/api"):
        base = base[: -len("/api")]
    return base


class BearerAuth(httpx2.Auth):
    """Sends the token; on a 401 with a device token, signs in again and retries once."""

    def __init__(self, token: str, renew: Callable[[], Awaitable[str]] | None) -> None:
        self.token = token
        self.renew = renew

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401 and self.renew is not None:
            self.token = await self.renew()
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


async def authenticate(config: BridgeConfig, http: httpx2.AsyncClient) -> BearerAuth:
    if config.api_key is not None:
        return BearerAuth(config.api_key, None)

    async def renew() -> str:
        device.say("Cronicorn: the server refused the stored token; approve this device again")
        return await device.signed_in(
            http, config.api, config.credentials, open_browser=config.open_browser, renew=True
        )

    token = await device.signed_in(
        http, config.api, config.credentials, open_browser=config.open_browser
    )
    return BearerAuth(token, renew)


def relay(remote: Client, url: str) -> Server[Any]:
    """A stdio server whose every handler asks the remote server."""

    async def list_tools(
        _: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await remote.list_tools(cursor=params.cursor if params else None)

    async def call_tool(
        _: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            return await remote.call_tool(params.name, params.arguments)
        except httpx2.HTTPError as exc:
            text = f"Cannot reach Cronicorn at {url}: {exc}"
            return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)

    async def list_resources(
        _: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return await remote.list_resources(cursor=params.cursor if params else None)

    async def read_resource(
        _: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await remote.read_resource(str(params.uri))

    async def list_prompts(
        _: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return await remote.list_prompts(cursor=params.cursor if params else None)

    async def get_prompt(
        _: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        return await remote.get_prompt(params.name, params.arguments)

    return Server(
        "cronicorn",
        version=__version__,
        title="Cronicorn",
        instructions=remote.instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )


async def serve_stdio(config: BridgeConfig) -> None:
    """Sign in, connect to the server, then relay stdio until the agent closes it."""
    async with create_mcp_http_client() as signin:
        auth = await authenticate(config, signin)
        http = create_mcp_http_client(auth=auth)
        transport = streamable_http_client(config.mcp_url, http_client=http)
        async with http, Client(transport, cache=None) as remote:
            await _relay_stdio(remote, config.mcp_url)


async def _relay_stdio(remote: Client, url: str) -> None:
    server = relay(remote, url)
    device.say(f"Cronicorn MCP: relaying stdio to {url}")
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


class BridgeError(Exception):
    """Why the bridge could not start or stopped: one line for the operator."""


def run(config: BridgeConfig) -> None:
    """Serve until stdin closes; known failures become one `BridgeError` line."""
    try:
        anyio.run(serve_stdio, config)
    except BaseExceptionGroup as group:
        raise _known(group) from None
    except (device.SignInError, httpx2.HTTPError, MCPError) as exc:
        raise _known(exc) from None


def _known(exc: BaseException) -> BaseException:
    """The first cause worth a line (task groups wrap errors in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, device.SignInError):
        return BridgeError(f"sign-in failed: {exc}")
    if isinstance(exc, httpx2.HTTPError):
        return BridgeError(f"cannot reach the Cronicorn server: {exc}")
    if isinstance(exc, MCPError):
        return BridgeError(f"the Cronicorn server refused MCP: {exc}")
    return exc
