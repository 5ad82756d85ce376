"""`/api/channels` and subscriptions over real HTTP, with real receivers: a JSON webhook, an
ntfy-style server and an SMTP server on 127.0.0.1. One served app for the module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, Served, serving
from conftest import PgServer
from cronicorn.auth.service import create_user_with_api_key
from cronicorn.store.db import make_async_engine
from cronicorn.store.tables import channels
from notify.receivers import Receiver, http_receiver, smtp_server


@pytest.fixture(scope="module")
async def rx() -> AsyncIterator[Receiver]:
    async with http_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
async def app(pg_server: PgServer) -> AsyncIterator[tuple[Served, AsyncEngine]]:
    url = pg_server.create_database()
    engine = make_async_engine(url, pool_size=3, max_overflow=3)
    try:
        async with serving(url, engine, NOTIFY_TIMEOUT_S=1) as served:
            yield served, engine
    finally:
        await engine.dispose()
        pg_server.drop_database(url)


def hook(rx: Receiver, path: str, **query: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"json://{rx.base[len('http://') :]}{path}" + (f"?{q}" if q else "")


async def test_a_webhook_channel_is_tested_stored_encrypted_and_never_shown(
    app: tuple[Served, AsyncEngine], rx: Receiver
) -> None:
    served, engine = app
    url = hook(rx, "/created", token="s3cr3t-t0ken-value")
    status, body = await served.a.call("POST", "/channels", {"name": "Ops", "url": url})
    assert status == 201, body
    assert body["kind"] == "json"
    assert "s3cr3t-t0ken-value" not in str(body)
    assert len(rx.at("/created")) == 1  # the test message
    assert rx.at("/created")[0].json["events"][0]["event"] == "test"
    async with engine.connect() as conn:
        stored = (await conn.execute(select(channels.c.url_encrypted))).scalars().all()
    assert all(b"s3cr3t" not in bytes(blob) for blob in stored)
    status, listed = await served.a.call("GET", "/channels")
    assert status == 200
    assert [c["id"] for c in listed["channels"]] == [body["id"]]
    assert "s3cr3t-t0ken-value" not in str(listed)
    # another user's channel is a 404 everywhere
    for method, path, payload in (
        ("GET", f"/channels/{body['id']}", None),
        ("PATCH", f"/channels/{body['id']}", {"name": "x"}),
        ("POST", f"/channels/{body['id']}/test", None),
        ("DELETE", f"/channels/{body['id']}", None),
    ):
        status, answer = await served.b.call(method, path, payload)
        assert status == 404, (method, path, answer)
    status, renamed = await served.a.call("PATCH", f"/channels/{body['id']}", {"name": "Ops 2"})
    assert status == 200
    assert renamed["name"] == "Ops 2"
    status, tested = await served.a.call("POST", f"/channels/{body['id']}/test")
    assert status == 200
    assert tested == {"ok": True}
    status, _ = await served.a.call("DELETE", f"/channels/{body['id']}")
    assert status == 204
    status, _ = await served.a.call("GET", f"/channels/{body['id']}")
    assert status == 404


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("foo://nothing", "Unparseable URL"),
        ("slack://only-one-token", "Could not load Slack URL"),
        ("not a url at all", "Unsupported URL"),
    ],
)
async def test_urls_apprise_cannot_load_are_422_with_its_reason(
    app: tuple[Served, AsyncEngine], url: str, reason: str
) -> None:
    served, _ = app
    status, body = await served.a.call("POST", "/channels", {"name": "bad", "url": url})
    assert status == 422, body
    assert reason in body["error"]["message"]
    assert body["error"]["details"][0]["path"] == "url"


async def test_a_webhook_to_a_metadata_address_is_refused(
    app: tuple[Served, AsyncEngine],
) -> None:
    served, _ = app
    for url in ("json://169.254.169.254/latest/meta-data", "ntfy://169.254.169.254/topic"):
        status, body = await served.a.call(
            "POST", "/channels", {"name": "meta", "url": url, "test": False}
        )
        assert status == 422, body
        assert "not allowed" in body["error"]["message"]
    status, listed = await served.a.call("GET", "/channels")
    assert all(c["name"] != "meta" for c in listed["channels"])


async def test_a_failed_or_timed_out_test_stores_nothing(
    app: tuple[Served, AsyncEngine], rx: Receiver
) -> None:
    served, _ = app
    rx.status["/broken"] = 500
    rx.hang.add("/slow")
    status, body = await served.a.call(
        "POST", "/channels", {"name": "x", "url": hook(rx, "/broken")}
    )
    assert status == 422
    assert body["error"]["code"] == "channel_test_failed"
    assert "500" in body["error"]["message"]
    status, body = await served.a.call("POST", "/channels", {"name": "y", "url": hook(rx, "/slow")})
    assert status == 422
    assert "timed out" in body["error"]["message"].lower()
    status, listed = await served.a.call("GET", "/channels")
    assert {c["name"] for c in listed["channels"]}.isdisjoint({"x", "y"})


async def test_ntfy_and_email_channels_send_through_apprise(
    app: tuple[Served, AsyncEngine], rx: Receiver
) -> None:
    served, _ = app
    ntfy = f"ntfy://{rx.base[len('http://') :]}/alerts"
    status, body = await served.a.call("POST", "/channels", {"name": "phone", "url": ntfy})
    assert status == 201, body
    assert any("Test notification" in str(h.json) + h.body.decode() for h in rx.hits)
    with smtp_server() as (port, box):
        mail = f"mailto://ops:pw-zz9@127.0.0.1:{port}?to=ops@example.com&from=cron@example.com"
        status, body = await served.a.call("POST", "/channels", {"name": "mail", "url": mail})
        assert status == 201, body
        assert body["urlPreview"].count("pw-zz9") == 0
        assert len(box.messages) == 1
        assert "Test notification" in box.messages[0]["data"]
        assert box.messages[0]["to"] == ["ops@example.com"]


async def test_subscriptions_name_only_own_channels(
    app: tuple[Served, AsyncEngine], rx: Receiver
) -> None:
    served, _ = app
    status, job = await served.a.call("POST", "/jobs", {"name": "nightly"})
    assert status == 201, job
    _, mine = await served.a.call(
        "POST", "/channels", {"name": "sub", "url": hook(rx, "/sub"), "test": False}
    )
    _, theirs = await served.b.call(
        "POST", "/channels", {"name": "sub", "url": hook(rx, "/sub"), "test": False}
    )
    settings = {"channels": [mine["id"]], "onFailureAfter": 3, "reminderHours": 6}
    status, body = await served.a.call("PUT", f"/jobs/{job['id']}/notify", {"notify": settings})
    assert status == 200, body
    assert body["notify"]["onFailureAfter"] == 3
    assert body["notify"]["onRecovery"] is True
    status, body = await served.a.call("GET", f"/jobs/{job['id']}/notify")
    assert body["notify"]["channels"] == [mine["id"]]
    bad = {"channels": [theirs["id"]]}
    status, body = await served.a.call("PUT", f"/jobs/{job['id']}/notify", {"notify": bad})
    assert status == 422
    assert body["error"]["details"][0]["path"] == "channels"
    status, _ = await served.b.call("PUT", f"/jobs/{job['id']}/notify", {"notify": None})
    assert status == 404
    wrong = {"channels": [mine["id"]], "onFailureAfter": "3"}
    status, _ = await served.a.call("PUT", f"/jobs/{job['id']}/notify", {"notify": wrong})
    assert status == 422


async def test_account_subscriptions_are_for_admins_and_audited(
    app: tuple[Served, AsyncEngine], rx: Receiver
) -> None:
    served, engine = app
    admin_id, key = await create_user_with_api_key(engine, "root@example.com", is_admin=True)
    admin = Client(served.base, served.a.http, {"x-api-key": key}, admin_id)
    _, mine = await admin.call(
        "POST", "/channels", {"name": "pager", "url": hook(rx, "/pager"), "test": False}
    )
    _, theirs = await served.b.call(
        "POST", "/channels", {"name": "b-pager", "url": hook(rx, "/b"), "test": False}
    )
    status, body = await served.b.call("PUT", "/account/notify", {"notify": {"channels": []}})
    assert status == 403, body
    assert (await served.b.call("GET", "/account/notify"))[0] == 403
    bad = {"notify": {"channels": [theirs["id"]]}}
    status, body = await admin.call("PUT", "/account/notify", bad)
    assert status == 422
    assert body["error"]["details"][0]["path"] == "channels"
    status, body = await admin.call(
        "PUT", "/account/notify", {"notify": {"channels": [mine["id"]], "events": ["nope"]}}
    )
    assert status == 422
    assert await admin.call("GET", "/account/notify") == (200, {"notify": None})
    wanted = {"channels": [mine["id"]], "events": ["backup_failed"]}
    status, body = await admin.call(
        "PUT", "/account/notify", {"notify": {"channels": [mine["id"]]}}
    )
    assert (status, body) == (200, {"notify": wanted})
    assert await admin.call("GET", "/account/notify") == (200, {"notify": wanted})
    status, body = await admin.call("GET", "/audit", entity="user", entityId=admin_id)
    [entry] = [e for e in body["entries"] if "account_notify" in e["changes"]]
    assert entry["changes"]["account_notify"] == {"from": None, "to": wanted}
    assert entry["actor"]["kind"] == "api_key"
    assert await admin.call("PUT", "/account/notify", {"notify": None}) == (200, {"notify": None})
    assert await admin.call("GET", "/account/notify") == (200, {"notify": None})
