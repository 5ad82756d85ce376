"""A real chat-completions server on 127.0.0.1 (aiohttp), scripted per test.

Each request pops the next scripted reply (a `Reply`, or a function of the request body
that returns one); when the script runs out it answers with a plain `submit_analysis`.
Every request body is kept, so tests can check exactly what the planner sent.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw: str | None = None  # sent as is (e.g. a truncated JSON document)


Script = Reply | Callable[[dict[str, Any]], Any]
"""A reply, or a function of the request returning one (or an awaitable of one)."""
_counter = {"n": 0}


def call(
    name: str, args: dict[str, Any] | None = None, *, raw: str | None = None
) -> dict[str, Any]:
    _counter["n"] += 1
    text = raw if raw is not None else json.dumps(args or {})
    return {
        "id": f"call_{_counter['n']}",
        "type": "function",
        "function": {"name": name, "arguments": text},
    }


def completion(
    *calls: dict[str, Any],
    content: str | None = None,
    finish: str | None = None,
    usage: tuple[int, int] = (200, 30),
) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = list(calls)
    return Reply(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "scripted",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish or ("tool_calls" if calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": usage[0] + usage[1],
            },
        }
    )


def tools(*calls: dict[str, Any], **kw: Any) -> Reply:
    return completion(*calls, **kw)


def prose(text: str) -> Reply:
    return completion(content=text)


def submit(reasoning: str = "All normal.", **kw: Any) -> Reply:
    return tools(call("submit_analysis", {"reasoning": reasoning, **kw}))


def error(status: int, *, retry_after: str | None = None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"error": {"message": f"scripted {status}", "type": "server_error", "code": None}}
    return Reply(status=status, body=body, headers=headers)


@dataclass
class FakeModel:
    script: list[Script] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    default: Callable[[dict[str, Any]], Any] | None = None

    def add(self, *replies: Script) -> None:
        self.script.extend(replies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if self.script:
            item = self.script.pop(0)
        elif self.default is not None:
            item = self.default
        else:
            item = submit("Script exhausted: nothing to do.")
        reply = item(body) if callable(item) else item
        if inspect.isawaitable(reply):
            reply = await reply
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.raw is not None:
            return web.Response(
                status=reply.status,
                text=reply.raw,
                content_type="application/json",
                headers=reply.headers,
            )
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)


@asynccontextmanager
async def serving(model: FakeModel | None = None) -> AsyncIterator[FakeModel]:
    model = model or FakeModel()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", model.handle)
    # A reply held back (delay_s) is cancelled a second into cleanup, not awaited for up to
    # aiohttp's default 60 s: the session under test has already given up on it.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    model.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield model
    finally:
        await runner.cleanup()


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool messages of a request, parsed."""
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]
