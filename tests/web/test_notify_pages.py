"""Notifications and hints from the pages, over plain HTTP against the served app (real
sign-in, CSRF): a job's and an endpoint's subscriptions saved through `notify.service` with
errors next to their fields and nothing half-saved, an endpoint inheriting or overriding its
job's, interval and one-shot hints with the endpoint's bounds shown on the form, clearing
them, an admin's backup failure alerts on the settings page (a 404 for anyone else), and the
viewer named in the audit log. One app (no scheduler) for the module."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update

from conftest import PgServer
from cronicorn.store.tables import audit_log, endpoints, jobs, users
from notify.notify_support import stored_channel
from web.conftest import Site, site_on
from web.test_pages_http import sign_in

pytestmark = pytest.mark.xdist_group("web_notify_pages")


@pytest.fixture(scope="module")
async def site(pg_server: PgServer) -> AsyncIterator[Site]:
    url = pg_server.create_database()
    try:
        async with site_on(url, scheduler=False) as served:
            yield served
    finally:
        pg_server.drop_database(url)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def user_id_of(site: Site, email: str) -> str:
    async with site.engine.connect() as conn:
        found = await conn.scalar(select(users.c.id).where(users.c.email == email))
    assert isinstance(found, str)
    return found


async def post(
    http: aiohttp.ClientSession, url: str, data: list[tuple[str, str]] | dict[str, str]
) -> tuple[int, str, str]:
    """(status, Location, page text) of a form post."""
    async with http.post(url, data=data, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def page(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        assert resp.status == 200, url
        return unescape(await resp.text())


def error_of(html: str, field: str) -> str:
    """The error shown under a field (empty when none)."""
    found = re.search(rf'id="e-{field}">([^<]*)<', html)
    return unescape(found.group(1)) if found else ""


async def stored_notify(site: Site, table: Any, key: str) -> Any:
    async with site.engine.connect() as conn:
        return await conn.scalar(select(table.c.notify).where(table.c.id == key))


def endpoint_form(csrf: str, name: str, **extra: str) -> dict[str, str]:
    form = {
        "csrf": csrf,
        "name": name,
        "url": "http://127.0.0.1:9/work",
        "method": "GET",
        "kind": "interval",
        "baseline_interval_s": "60",
        "timezone": "UTC",
        "ai_mode": "inherit",
        "overlap": "skip",
    }
    return {**form, **extra}


async def test_job_form_subscribes_and_refuses_without_half_saving(
    site: Site, http: aiohttp.ClientSession
) -> None:
    email, stranger = await site.user("notify"), await site.user("stranger")
    owner = await user_id_of(site, email)
    ops = await stored_channel(site.engine, owner, "ops-room")
    theirs = await stored_channel(site.engine, await user_id_of(site, stranger), "theirs")
    csrf = await sign_in(http, site, email)
    assert f'value="{ops}"' in await page(http, f"{site.base}/jobs/new")

    base = {"csrf": csrf, "name": "billing", "ai_mode": "auto", "notify_channel": ops}
    status, _, html = await post(
        http, f"{site.base}/jobs/new", {**base, "notify_failure_after": "0"}
    )
    assert status == 422
    assert "greater than or equal to 1" in error_of(html, "notify_failure_after")
    async with site.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).where(jobs.c.user_id == owner)) == 0

    good = {
        **base,
        "notify_failure_after": "3",
        "notify_recovery": "on",
        "notify_reminder_hours": "6",
        "notify_slower_than_ms": "30000",
    }
    status, where, _ = await post(http, f"{site.base}/jobs/new", good)
    assert status == 303
    job_id = where.split("/")[2].split("?")[0]
    expected = {
        "channels": [ops],
        "onFailureAfter": 3,
        "onRecovery": True,
        "reminderHours": 6,
        "slowerThanMs": 30000,
    }
    assert await stored_notify(site, jobs, job_id) == expected
    shown = await page(http, f"{site.base}/jobs/{job_id}")
    assert "ops-room" in shown
    assert "after 3 in a row" in shown
    edit = await page(http, f"{site.base}/jobs/{job_id}/edit")
    assert re.search(rf'value="{ops}" checked', edit)

    # another user's channel: refused next to the field, and the rename is not kept either
    forged = [*good.items(), ("notify_channel", theirs)]
    forged = [(k, v) for k, v in forged if k != "name"] + [("name", "renamed")]
    status, _, html = await post(http, f"{site.base}/jobs/{job_id}/edit", forged)
    assert status == 422
    assert theirs in error_of(html, "notify_channel")
    async with site.engine.connect() as conn:
        assert await conn.scalar(select(jobs.c.name).where(jobs.c.id == job_id)) == "billing"
    assert await stored_notify(site, jobs, job_id) == expected

    # no channel ticked: no subscription; the audit log names the signed-in user
    plain = {"csrf": csrf, "name": "billing", "ai_mode": "auto"}
    status, _, _ = await post(http, f"{site.base}/jobs/{job_id}/edit", plain)
    assert status == 303
    assert await stored_notify(site, jobs, job_id) is None
    async with site.engine.connect() as conn:
        actors = await conn.execute(
            select(audit_log.c.actor_kind, audit_log.c.actor_id, audit_log.c.changes).where(
                audit_log.c.entity == "job", audit_log.c.entity_id == job_id
            )
        )
        rows = actors.all()
    assert {(kind, actor) for kind, actor, _ in rows} == {("user", owner)}
    assert any("notify" in changes for _, _, changes in rows)


async def test_endpoint_inherits_or_overrides_its_job(
    site: Site, http: aiohttp.ClientSession
) -> None:
    email = await site.user("inherit")
    owner = await user_id_of(site, email)
    ops = await stored_channel(site.engine, owner, "ops")
    csrf = await sign_in(http, site, email)
    job = {"csrf": csrf, "name": "etl", "ai_mode": "auto", "notify_channel": ops}
    _, where, _ = await post(http, f"{site.base}/jobs/new", job)
    job_id = where.split("/")[2].split("?")[0]

    own = endpoint_form(csrf, "silent", notify_mode="own", notify_failure_after="2")
    status, where, html = await post(http, f"{site.base}/jobs/{job_id}/endpoints/new", own)
    assert status == 303, html
    endpoint_id = where.split("/")[2].split("?")[0]
    assert (await stored_notify(site, endpoints, endpoint_id))["channels"] == []
    assert "none: silenced" in await page(http, f"{site.base}/endpoints/{endpoint_id}")

    bad = endpoint_form(csrf, "", notify_mode="own", notify_reminder_hours="soon")
    status, _, html = await post(http, f"{site.base}/endpoints/{endpoint_id}/edit", bad)
    assert status == 422
    assert error_of(html, "notify_reminder_hours") == "must be a number"
    assert error_of(html, "name")  # the endpoint's own errors are shown at the same time

    inherit = endpoint_form(csrf, "silent", notify_mode="inherit")
    status, _, _ = await post(http, f"{site.base}/endpoints/{endpoint_id}/edit", inherit)
    assert status == 303
    assert await stored_notify(site, endpoints, endpoint_id) is None
    shown = await page(http, f"{site.base}/endpoints/{endpoint_id}")
    assert "From the job" in shown
    assert "ops" in shown
    assert f'href="/endpoints/{endpoint_id}/ai"' in shown


async def test_hints_from_the_endpoint_page(site: Site, http: aiohttp.ClientSession) -> None:
    email = await site.user("hints")
    csrf = await sign_in(http, site, email)
    _, where, _ = await post(http, f"{site.base}/jobs/new", {"csrf": csrf, "name": "j"})
    job_id = where.split("/")[2].split("?")[0]
    bounded = endpoint_form(csrf, "bounded", min_interval_s="10", max_interval_s="600")
    _, where, _ = await post(http, f"{site.base}/jobs/{job_id}/endpoints/new", bounded)
    endpoint_id = where.split("/")[2].split("?")[0]
    url = f"{site.base}/endpoints/{endpoint_id}"

    async def hints() -> tuple[Any, ...]:
        async with site.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        endpoints.c.hint_interval_ms,
                        endpoints.c.hint_interval_expires_at,
                        endpoints.c.hint_oneshot_at,
                    ).where(endpoints.c.id == endpoint_id)
                )
            ).one()
        return tuple(row)

    status, _, html = await post(
        http, f"{url}/hints/interval", {"csrf": csrf, "hint_interval_s": "5"}
    )
    assert status == 422
    assert error_of(html, "hint_interval_s") == "below the endpoint's minimum (10000 ms)"
    assert 'value="5"' in html  # the form keeps what was typed
    status, _, html = await post(
        http, f"{url}/hints/interval", {"csrf": csrf, "hint_interval_s": "900"}
    )
    assert "exceeds the endpoint's maximum" in error_of(html, "hint_interval_s")
    assert await hints() == (None, None, None)

    before = datetime.now(UTC)
    form = {"csrf": csrf, "hint_interval_s": "20", "hint_ttl_min": "30", "hint_reason": "busy"}
    status, where, _ = await post(http, f"{url}/hints/interval", form)
    assert (status, where) == (303, f"/endpoints/{endpoint_id}?done=hinted")
    interval, expires, _ = await hints()
    assert interval == 20_000
    assert before + timedelta(minutes=30) <= expires <= datetime.now(UTC) + timedelta(minutes=30)

    shot = {"csrf": csrf, "oneshot_in_min": "5", "oneshot_ttl_min": "1"}
    status, _, html = await post(http, f"{url}/hints/oneshot", shot)
    assert status == 422
    assert "expire before it runs" in error_of(html, "oneshot_ttl_min")
    status, _, html = await post(http, f"{url}/hints/oneshot", {"csrf": csrf, "oneshot_in_min": ""})
    assert error_of(html, "oneshot_in_min")
    status, _, _ = await post(http, f"{url}/hints/oneshot", {"csrf": csrf, "oneshot_in_min": "5"})
    assert status == 303
    assert (await hints())[2] is not None
    shown = await page(http, url)
    assert "every 20.0 s" in shown
    assert "One-shot" in shown

    status, where, _ = await post(http, f"{url}/clear-hints", {"csrf": csrf})
    assert (status, where) == (303, f"/endpoints/{endpoint_id}?done=cleared")
    assert await hints() == (None, None, None)


async def test_backup_alerts_on_the_settings_page_are_for_admins(
    site: Site, http: aiohttp.ClientSession
) -> None:
    email, stranger = await site.user("admin"), await site.user("other")
    admin = await user_id_of(site, email)
    ops = await stored_channel(site.engine, admin, "pager")
    theirs = await stored_channel(site.engine, await user_id_of(site, stranger), "theirs")
    csrf = await sign_in(http, site, email)
    form = [("csrf", csrf), ("account_channel", ops), ("account_event", "backup_failed")]
    assert 'id="account-notify"' not in await page(http, f"{site.base}/settings")
    status, _, _ = await post(http, f"{site.base}/settings/account-notify", form)
    assert status == 404

    async with site.engine.begin() as conn:
        await conn.execute(update(users).where(users.c.id == admin).values(is_admin=True))
    assert 'id="account-notify"' in await page(http, f"{site.base}/settings")
    status, where, _ = await post(http, f"{site.base}/settings/account-notify", form)
    assert (status, where) == (303, "/settings?done=account-notify#account-notify")
    async with http.get(f"{site.base}/api/account/notify") as resp:  # the API reads the same
        assert (await resp.json())["notify"] == {"channels": [ops], "events": ["backup_failed"]}
    assert re.search(rf'value="{ops}" checked', await page(http, f"{site.base}/settings"))

    status, _, html = await post(
        http, f"{site.base}/settings/account-notify", [*form, ("account_channel", theirs)]
    )
    assert status == 422
    assert theirs in error_of(html, "account_channel")
    status, _, html = await post(http, f"{site.base}/settings/account-notify", [form[0], form[1]])
    assert status == 422
    assert error_of(html, "account_event")  # a channel but no event
    status, _, _ = await post(http, f"{site.base}/settings/account-notify", [form[0]])
    assert status == 303
    async with http.get(f"{site.base}/api/account/notify") as resp:
        assert (await resp.json())["notify"] is None
