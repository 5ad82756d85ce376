"""The MCP server: Cronicorn's tools, docs and prompts for AI agents, for one caller at a time.

`create_mcp_server(runtime, dispatcher)` builds a low-level SDK `Server` (the tools' schemas
come from our pydantic models, so the decorator layer would only get in the way). It is
served over streamable HTTP at `/mcp` by `mcp.http`; `cronicorn mcp` bridges stdio to it.
Each tool call runs in one transaction on its own connection, scoped to the caller that
`mcp.gate` authenticated for this HTTP request: commit on success, roll back on any error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError

from cronicorn import __version__
from cronicorn.dispatch import Dispatcher
from cronicorn.mcp import prompts, resources
from cronicorn.mcp.errors import error_result
from cronicorn.mcp.gate import Caller
from cronicorn.mcp.http import CALLER_KEY  # set on the scope by the HTTP face
from cronicorn.mcp.tooling import Call, Tool, reply
from cronicorn.mcp.tools import ALL_TOOLS
from cronicorn.runtime import Runtime
from cronicorn.store.audit import Actor, set_actor

INSTRUCTIONS = """\
Cronicorn runs HTTP calls on schedules that adapt. A job groups endpoints; an endpoint is one \
HTTP call (url, method, headers, JSON body) with a baseline schedule: baselineIntervalMs \
(milliseconds) or baselineCron (5-field cron, with timezone). minIntervalMs / maxIntervalMs \
are hard limits nothing (hints, AI, rules) can cross. A job's and an endpoint's description is \
plain-language guidance the AI planner reads. Hints steer an endpoint for a while and expire \
after their TTL (ttlMinutes): applyIntervalHint (run faster or slower), scheduleOneShot (one \
extra run), pauseResumeEndpoint (pause until a time; pausedUntil null resumes), clearHints \
(back to the baseline). Read what happened with listEndpointRuns, getRunDetails and \
getEndpointHealth; testEndpoint runs one at once. Times are ISO-8601 UTC. The docs are \
resources (file:///docs/...): start with the concepts and scheduling pages."""

CallerOf = Callable[[ServerRequestContext[Any, Any]], Caller]


def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
    """The caller `mcp.http` authenticated for the HTTP request carrying this message."""
    request = ctx.request
    caller = getattr(request, "scope", {}).get(CALLER_KEY) if request is not None else None
    if not isinstance(caller, Caller):
        raise MCPError(code=types.INVALID_REQUEST, message="Not authenticated")
    return caller


def create_mcp_server(
    runtime: Runtime,
    dispatcher: Callable[[], Awaitable[Dispatcher]],
    tools: list[Tool[Any]] | None = None,
) -> Server[Any]:
    by_name = {tool.name: tool for tool in (tools if tools is not None else ALL_TOOLS)}
    listing = types.ListToolsResult(tools=[tool.listing() for tool in by_name.values()])

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], _: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        caller_of(ctx)
        return listing

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = caller_of(ctx)
        tool = by_name.get(params.name)
        if tool is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        return await run_tool(runtime, dispatcher, caller, tool, params.arguments)

    schemas = {tool.name: tool.input_schema for tool in listing.tools}

    def input_schema(name: str) -> dict[str, Any] | None:
        """For the 2026 transport's header checks, which ask before every call."""
        return schemas.get(name)

    return Server(
        "cronicorn",
        version=__version__,
        title="Cronicorn",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=resources.list_resources,
        on_read_resource=resources.read_resource,
        on_list_prompts=prompts.list_prompts,
        on_get_prompt=prompts.get_prompt,
    )


def actor_of(caller: Caller) -> Actor:
    """As the API names its callers: an API key is that key, a bearer session token a device."""
    if caller.via == "api_key":
        return Actor("api_key", id=caller.credential_id, user_id=caller.user_id)
    return Actor("device", id=caller.credential_id, user_id=caller.user_id)


async def run_tool(
    runtime: Runtime,
    dispatcher: Callable[[], Awaitable[Dispatcher]],
    caller: Caller,
    tool: Tool[Any],
    arguments: dict[str, Any] | None,
) -> types.CallToolResult:
    """Validate, run in one transaction, answer; every failure is an `isError` result."""
    try:
        ids, body = tool.parse(arguments)
        async with runtime.engine.connect() as conn:
            call = Call(runtime, conn, caller.user_id, caller.clock(), dispatcher, ids)
            try:
                if not tool.read_only:  # the audit triggers name this actor, as for /api
                    await set_actor(conn, actor_of(caller))
                result = await tool.run(call, body)
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
        return reply(result)
    except Exception as exc:
        return error_result(tool.name, exc)
