"""The admin-only MCP tools for account-level subscriptions (`getAccountNotify`,
`setAccountNotify`) over streamable HTTP on the real app: a non-admin gets the API's 403, an
admin subscribes their own channel (another user's is a 422 on `channels`), the REST route
reads the same settings, the change is audited under the API key that made it, and null
unsubscribes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import select, update

from api.api_support import serving
from conftest import PgServer
from cronicorn.store.db import make_async_engine
from cronicorn.store.tables import api_keys, audit_log, users
from mcp import Client
from notify.notify_support import stored_channel


@contextlib.asynccontextmanager
async def over_http(base: str, api_key: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}, timeout=60)
    transport = streamable_http_client(f"{base}/mcp", http_client=http)
    async with http, Client(transport, cache=None) as client:
        yield client


async def call(client: Client, name: str, arguments: dict[str, Any]) -> tuple[bool, Any]:
    result = await client.call_tool(name, arguments)
    assert result.structured_content is not None, (name, result.content)
    return result.is_error, result.structured_content


async def test_account_notify_tools_are_for_admins_and_match_the_api(
    pg_server: PgServer,
) -> None:
    url = pg_server.create_database()
    engine = make_async_engine(url, pool_size=2, max_overflow=2)
    try:
        async with serving(url, engine) as served:
            async with engine.begin() as conn:  # before any REST call (credential cache)
                await conn.execute(
                    update(users).where(users.c.id == served.a.user_id).values(is_admin=True)
                )
            admin, plain = served.a.headers["x-api-key"], served.b.headers["x-api-key"]
            mine = await stored_channel(engine, served.a.user_id, "ops")
            foreign = await stored_channel(engine, served.b.user_id, "b")
            async with over_http(served.base, plain) as b:
                tools = {t.name: t for t in (await b.list_tools()).tools}
                assert tools["getAccountNotify"].annotations.read_only_hint is True  # type: ignore[union-attr]
                assert tools["setAccountNotify"].input_schema["required"] == ["notify"]
                failed, body = await call(b, "getAccountNotify", {})
                assert (failed, body["error"]["status"]) == (True, 403)
                failed, body = await call(b, "setAccountNotify", {"notify": None})
                assert (failed, body["error"]["status"]) == (True, 403)
            async with over_http(served.base, admin) as a:
                assert (await call(a, "getAccountNotify", {}))[1] == {"notify": None}
                wanted = {"channels": [mine]}
                failed, body = await call(a, "setAccountNotify", {"notify": wanted})
                assert not failed, body
                expected = {"channels": [mine], "events": ["backup_failed"]}
                assert body == {"notify": expected}
                assert await served.a.call("GET", "/account/notify") == (200, {"notify": expected})
                stolen = {"channels": [foreign]}
                failed, body = await call(a, "setAccountNotify", {"notify": stolen})
                assert (failed, body["error"]["status"]) == (True, 422)
                assert body["error"]["details"][0]["path"] == "channels"
                assert (await call(a, "getAccountNotify", {}))[1] == {"notify": expected}
                assert (await call(a, "setAccountNotify", {"notify": None}))[1] == {"notify": None}
            async with engine.connect() as conn:
                key_id = await conn.scalar(
                    select(api_keys.c.id).where(api_keys.c.user_id == served.a.user_id)
                )
                actors = (
                    await conn.execute(
                        select(audit_log.c.actor_kind, audit_log.c.actor_id).where(
                            audit_log.c.entity == "user",
                            audit_log.c.entity_id == served.a.user_id,
                        )
                    )
                ).all()
            assert [tuple(r) for r in actors][-2:] == [("api_key", key_id)] * 2
    finally:
        await engine.dispose()
        pg_server.drop_database(url)
