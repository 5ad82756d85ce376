"""The dashboard, settings, AI planner and admin pages, over plain HTTP and in Debian's
Chromium: numbers that match the rows, a bad range explained (not a 500), an API key shown
once and dead after revoke, an AI session's tool calls and a suggestion applied to the
endpoint, admin pages hidden from everyone else, hostile names inert, no serious or critical
axe-core violation on any of these pages, and screenshots of the dashboard.

One served app and one browser for the module (fixtures in conftest.py); each test makes
its own users, so the order does not matter. Data the pages show is written through the
store (jobs, endpoints, planner sessions, suggestions) and, for run history, rows in `runs`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.auth import service
from cronicorn.domain.ids import new_id
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store import planner as planner_store
from cronicorn.store import suggestions as suggestion_store
from cronicorn.store import users, wakeups
from cronicorn.store.tables import runs
from web.conftest import PASSWORD, SHOTS, Site
from web.test_browser import DESKTOP, PHONE, TIMEOUT_MS, Watch, assert_accessible, log_in

pytestmark = pytest.mark.slow

HOSTILE = '"><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@dataclass(frozen=True)
class Seeded:
    email: str
    user_id: str
    job_id: str
    endpoint_id: str
    session_id: str
    suggestion_id: str


async def _user_id(conn: AsyncConnection, email: str) -> str:
    row = await users.get_by_email(conn, email)
    assert row is not None
    return row.id


async def seed(site: Site, prefix: str, *, name: str = "nightly export") -> Seeded:
    """A user with a job, an endpoint, 30 finished runs in the last day (20 ok, 10 failed,
    some late), one AI session with two tool calls and one pending suggestion."""
    email = await site.user(prefix)
    now = datetime.now(UTC)
    async with site.engine.begin() as conn:
        user_id = await _user_id(conn, email)
        job = await job_store.create(conn, user_id, name=name, description=None, now=now)
        config = {
            "name": name,
            "url": f"{site.target.base}/x",
            "baseline_interval_ms": 3_600_000,
            "min_interval_ms": 60_000,
        }
        endpoint = await endpoint_store.create(conn, user_id, job.id, config, now)
        await conn.execute(insert(runs), [_run(endpoint.id, user_id, now, i) for i in range(30)])
        session_id = new_id()
        await planner_store.start_session(
            conn, session_id=session_id, endpoint=endpoint, model="scripted", now=now
        )
        calls = [
            {"tool": "get_health", "args": {}, "result": {"successRate": 66.7, "note": name}},
            {
                "tool": "propose_interval",
                "args": {"intervalMs": 300_000, "reasoning": f"back off for {name}"},
                "result": {"suggested": True},
            },
        ]
        await planner_store.finish_session(
            conn,
            session_id,
            {
                "tool_calls": calls,
                "reasoning": f"Failures are clustered; slow down {name}.",
                "token_usage": 1234,
                "prompt_tokens": 1000,
                "completion_tokens": 234,
                "duration_ms": 2100,
                "outcome": "suggested",
            },
        )
        suggestion_id = await suggestion_store.record(
            conn,
            endpoint_id=endpoint.id,
            user_id=user_id,
            session_id=session_id,
            action="interval",
            args={"intervalMs": 300_000, "ttlMinutes": 120},
            reason=f"slow down {name}",
            expires_at=now + timedelta(hours=6),
            now=now,
        )
    return Seeded(email, user_id, job.id, endpoint.id, session_id, suggestion_id)


def _run(endpoint_id: str, user_id: str, now: datetime, i: int) -> dict[str, object]:
    due = now - timedelta(hours=23) + timedelta(minutes=40 * i)
    late = timedelta(seconds=2 if i % 3 else 30)
    return {
        "id": new_id(),
        "endpoint_id": endpoint_id,
        "user_id": user_id,
        "status": "failed" if i % 3 == 0 else "success",
        "source": "baseline-interval" if i % 2 else "ai-interval",
        "due_at": due,
        "started_at": due + late,
        "finished_at": due + late + timedelta(seconds=1),
        "duration_ms": 1000,
    }


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def sign_in(http: aiohttp.ClientSession, site: Site, email: str) -> None:
    form = {"email": email, "password": PASSWORD, "next": "/"}
    async with http.post(f"{site.base}/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()


async def page_text(http: aiohttp.ClientSession, url: str, status: int = 200) -> str:
    async with http.get(url, allow_redirects=False) as resp:
        html = await resp.text()
        assert resp.status == status, html[:800]
    return html.split('<main id="main"', 1)[1]


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        await ctx.close()


# -- over HTTP ------------------------------------------------------------------------------
async def test_dashboard_counts_the_rows_and_explains_a_bad_range(
    site: Site, http: aiohttp.ClientSession
) -> None:
    s = await seed(site, "dash")
    await sign_in(http, site, s.email)
    html = await page_text(http, f"{site.base}/?range=7d")
    assert re.search(
        r'<span class="n">30</span><span class="k">runs in range \(20 ok, 10 failed', html
    )
    assert '<span class="n">66.7%</span>' in html
    assert '<span class="n">1234</span><span class="k">AI tokens' in html
    assert '<td>Baseline interval</td><td class="num">15</td>' in html
    assert "10 scheduled runs" not in html
    assert "30 scheduled runs" in html
    assert "worst start 30.0 s after its slot" in html
    assert html.count('<li>\n    <span class="kind">') == 20  # a page of the timeline
    assert "Older (11 more)" in html  # 30 runs + 1 session, 20 shown
    older = re.search(r'href="(/\?[^"]*cursor=[^"]*)#activity">Older', html)
    assert older is not None, "Older follows the cursor"
    rest = await page_text(http, site.base + older[1].replace("&amp;", "&"))
    assert rest.count('<li>\n    <span class="kind">') == 11
    assert "Older (" not in rest
    assert re.search(r'events=all#activity">Newer</a>', rest)  # page 2's Newer: the newest
    sessions = await page_text(http, f"{site.base}/?range=24h&events=sessions")
    assert f'href="/ai-sessions/{s.session_id}"' in sessions
    assert "/runs/" not in sessions.split('id="activity"', 1)[1]
    # Another job's id, a reversed range, nonsense: the page says so and shows defaults.
    for query in ("range=custom&from=2026-02-01&to=2026-01-01", "range=x", "range=custom&from=a"):
        body = await page_text(http, f"{site.base}/?{query}&job=nope&offset=-3")
        assert 'class="flash bad" role="alert"' in body
        assert "Last 7 days" in body
    window = await page_text(http, f"{site.base}/?range=custom&from=2000-01-01&to=2000-01-31")
    assert "No activity in this range." in window
    assert "runs in range (0 ok, 0 failed)" in window


async def test_other_users_see_none_of_it_and_admin_pages_are_hidden(
    site: Site, http: aiohttp.ClientSession
) -> None:
    s = await seed(site, "owner")
    await sign_in(http, site, await site.user("stranger"))
    html = await page_text(http, f"{site.base}/?range=30d")
    assert "runs in range (0 ok, 0 failed)" in html
    assert "nightly export" not in html
    for path in (f"/endpoints/{s.endpoint_id}/ai", f"/ai-sessions/{s.session_id}"):
        theirs = await page_text(http, site.base + path, 404)
        unknown = await page_text(http, site.base + re.sub(r"[0-9a-f-]{36}", "0" * 8, path), 404)
        assert theirs == unknown
    for path in ("/admin/users", "/admin/backups", "/admin/audit"):
        assert "Page not found." in await page_text(http, site.base + path, 404)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', await _full(http, site.base + "/"))
    assert csrf is not None
    form = {"csrf": csrf.group(1), "endpoint": s.endpoint_id}
    async with http.post(
        f"{site.base}/suggestions/{s.suggestion_id}/apply", data=form, allow_redirects=False
    ) as resp:
        assert resp.status == 404
    async with site.engine.connect() as conn:
        pending = await suggestion_store.list_for_endpoint(
            conn, s.user_id, s.endpoint_id, datetime.now(UTC)
        )
    assert [p.status for p in pending] == ["pending"]


async def _full(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        return await resp.text()


async def test_password_change_checks_the_current_one(
    site: Site, http: aiohttp.ClientSession
) -> None:
    email = await site.user("pw")
    await sign_in(http, site, email)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', await _full(http, f"{site.base}/"))
    assert csrf is not None
    base = {"csrf": csrf.group(1), "new_password": "another long passphrase"}
    cases = [
        (
            {"current_password": "wrong wrong wrong", "confirm_password": base["new_password"]},
            "The current password is not right.",
        ),
        (
            {"current_password": PASSWORD, "confirm_password": "different"},
            "The two new passwords differ.",
        ),
    ]
    for extra, message in cases:
        async with http.post(f"{site.base}/settings/password", data={**base, **extra}) as resp:
            assert resp.status == 422
            assert message in await resp.text()
    good = {**base, "current_password": PASSWORD, "confirm_password": base["new_password"]}
    async with http.post(
        f"{site.base}/settings/password", data=good, allow_redirects=False
    ) as resp:
        assert resp.status == 303
    async with site.engine.begin() as conn:
        user = await service.authenticate_password(
            conn, email, "another long passphrase", datetime.now(UTC)
        )
    assert user.email == email


# -- in the browser -------------------------------------------------------------------------
async def test_api_key_is_shown_once_and_revoking_stops_it(
    site: Site, context: BrowserContext, http: aiohttp.ClientSession
) -> None:
    page = await context.new_page()
    await log_in(page, site, await site.user("keys"), then="/settings")
    await assert_accessible(page)
    await page.get_by_label("Key name").fill("deploy bot")
    await page.get_by_label("Expires").select_option("30")
    await page.get_by_role("button", name="Create key").click()
    key = (await page.locator("#new-api-key").inner_text()).strip()
    assert key.startswith("cron_")
    await assert_accessible(page)
    async with http.get(f"{site.base}/api/jobs", headers={"x-api-key": key}) as resp:
        assert resp.status == 200
    await page.goto(f"{site.base}/settings")
    await expect(page.locator("#new-api-key")).to_have_count(0)
    assert key not in await page.content()
    row = page.locator("#api-keys tr", has_text="deploy bot")
    page.once("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name="Revoke").click()
    await expect(page.get_by_text("API key revoked")).to_be_visible()
    await expect(page.locator("#api-keys tr", has_text="deploy bot")).to_have_count(0)
    async with http.get(f"{site.base}/api/jobs", headers={"x-api-key": key}) as resp:
        assert resp.status == 401
    await page.get_by_role("button", name="Generate signing key").click()
    shown = (await page.locator("#new-signing-key").inner_text()).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", shown)
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Rotate key").click()
    rotated = (await page.locator("#new-signing-key").inner_text()).strip()
    assert rotated != shown
    await expect(page.get_by_text("The previous key keeps signing until")).to_be_visible()


async def test_ai_session_and_applying_a_suggestion(site: Site, context: BrowserContext) -> None:
    s = await seed(site, "ai", name=HOSTILE)
    page = await context.new_page()
    watch = Watch(page)
    await log_in(page, site, s.email, then=f"/endpoints/{s.endpoint_id}/ai")
    await assert_accessible(page)
    await page.get_by_role("link", name=re.compile(r"\d{4}")).first.click()
    await expect(page.get_by_role("heading", name="Tool calls (2)")).to_be_visible()
    await page.get_by_text("Arguments").nth(1).click()
    await expect(page.locator("pre.body").nth(2)).to_contain_text('"intervalMs": 300000')
    await expect(page.get_by_text(f"back off for {HOSTILE}")).to_be_visible()
    await assert_accessible(page)
    await page.goto(f"{site.base}/endpoints/{s.endpoint_id}/ai")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.get_by_text("Suggestion applied")).to_be_visible()
    await expect(page.locator("#suggestions .badge")).to_have_text("Applied")
    async with site.engine.connect() as conn:
        endpoint = await endpoint_store.get(conn, s.user_id, s.endpoint_id)
    assert endpoint.hint_interval_ms == 300_000
    for path in ("/", "/?events=sessions", f"/ai-sessions/{s.session_id}"):
        await page.goto(site.base + path)
        await assert_accessible(page)
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("main img, main script:not([type='application/json'])").count() == 0
    assert watch.problems == []


async def test_admin_pages_for_admins(site: Site, context: BrowserContext) -> None:
    email = f"admin-{new_id()[:8]}@example.com"
    async with site.engine.begin() as conn:
        await service.create_user(conn, email=email, password=PASSWORD, is_admin=True)
    victim = await site.user("victim")
    page = await context.new_page()
    await log_in(page, site, email, then="/admin/users")
    await assert_accessible(page)
    row = page.locator("tr", has_text=victim)
    page.once("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name="Disable").click()
    await expect(page.get_by_text("User disabled and signed out.")).to_be_visible()
    await expect(page.locator("tr", has_text=victim).locator(".badge")).to_have_text("Disabled")
    for path in ("/admin/backups", "/admin/audit?entity=user&action=update"):
        response = await page.goto(site.base + path)
        assert response is not None
        assert response.status == 200
        await assert_accessible(page)
    await expect(page.locator("main tbody tr", has_text="update").first).to_be_visible()
    nul = await page.goto(site.base + "/admin/audit?actor=a%00b&entity_id=%00")
    assert nul is not None
    assert nul.status == 200  # PostgreSQL text holds no NUL: not a 500


async def test_dashboard_counters_update_live(site: Site, context: BrowserContext) -> None:
    s = await seed(site, "live")
    page = await context.new_page()
    await log_in(page, site, s.email, then="/?range=24h")
    counter = page.locator("#dash-live .stat", has_text="runs in range")
    await expect(counter).to_contain_text("runs in range (20 ok, 10 failed)")
    await expect(page.locator("#live-status")).to_have_text("Live")
    now = datetime.now(UTC)
    async with site.engine.begin() as conn:
        await conn.execute(insert(runs), [_run(s.endpoint_id, s.user_id, now, 31)])
        await wakeups.endpoint_changed(conn, s.user_id, s.endpoint_id)
    # The counters refresh at most every 15 s: the deadline is that throttle plus a busy
    # machine's page reload, not the default 20 s.
    await expect(counter).to_contain_text("runs in range (21 ok, 10 failed)", timeout=60_000)


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_dashboard_screenshots(site: Site, browser: Browser, scheme: str) -> None:
    """The dashboard at 1280 and 360 px in both schemes: charts drawn, no sideways scroll,
    no serious axe violation. The images go to SHOTS (WEB_SCREENSHOTS), never into the
    checkout: the best are copied into docs/images/ by hand."""
    s = await seed(site, f"shot-{scheme}", name="sales report")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        ctx = await browser.new_context(
            viewport=viewport, color_scheme=scheme, timezone_id="UTC", locale="en-GB"
        )
        ctx.set_default_timeout(TIMEOUT_MS)
        try:
            page: Page = await ctx.new_page()
            await log_in(page, site, s.email, then="/?range=24h")
            await expect(page.locator(".chart canvas")).to_have_count(3)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"dashboard scrolls sideways at {width}px"
            shot = f"dashboard-{name}-{scheme}.png"
            await page.screenshot(path=str(SHOTS / shot), full_page=name == "desktop")
            if name == "desktop":  # colour contrast per scheme; axe is seconds a run
                await assert_accessible(page)
                await page.goto(f"{site.base}/settings")
                await assert_accessible(page)
        finally:
            await ctx.close()


async def test_channels_are_checked_before_they_are_stored(
    site: Site, http: aiohttp.ClientSession
) -> None:
    await sign_in(http, site, await site.user("chan"))
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', await _full(http, f"{site.base}/"))
    assert csrf is not None
    hits = site.target.hits
    target = site.target.base.removeprefix("http://")
    refused = [
        ({"channel_name": "x", "channel_url": "nope://what"}, 'id="e-channel_url"'),
        ({"channel_name": "", "channel_url": f"json://{target}/n"}, 'id="e-channel_name"'),
        ({"channel_name": "meta", "channel_url": "json://169.254.169.254/x"}, "not allowed"),
    ]
    for form, message in refused:
        data = {"csrf": csrf.group(1), "channel_test": "on", **form}
        async with http.post(f"{site.base}/settings/channels", data=data) as resp:
            assert resp.status == 422
            assert message in await resp.text()
    good = {"csrf": csrf.group(1), "channel_name": "ops <b>", "channel_test": "on"}
    good["channel_url"] = f"json://{target}/notify?token=s3cret"
    async with http.post(f"{site.base}/settings/channels", data=good) as resp:
        html = await resp.text()
        assert resp.status == 200
    assert site.target.hits == hits + 1  # the test message
    assert "Channel added." in html
    assert "ops &lt;b&gt;" in html
    assert "s3cret" not in html
    delete = re.search(r'action="(/settings/channels/[^"]+/delete)"', html)
    assert delete is not None
    async with http.post(site.base + delete.group(1), data={"csrf": csrf.group(1)}) as resp:
        assert "Channel removed." in await resp.text()
        assert "No channels yet" in await resp.text()


async def test_a_decided_suggestion_cannot_be_applied(
    site: Site, http: aiohttp.ClientSession
) -> None:
    s = await seed(site, "decided")
    await sign_in(http, site, s.email)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', await _full(http, f"{site.base}/"))
    assert csrf is not None
    form = {"csrf": csrf.group(1), "endpoint": s.endpoint_id}
    expected = [("dismiss", "dismissed"), ("apply", "stale"), ("dismiss", "stale")]
    for decision, done in expected:
        url = f"{site.base}/suggestions/{s.suggestion_id}/{decision}"
        async with http.post(url, data=form, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"].endswith(f"?done={done}#suggestions")
    html = await page_text(http, f"{site.base}/endpoints/{s.endpoint_id}/ai?done=stale")
    assert "no longer pending" in html
    async with site.engine.connect() as conn:
        endpoint = await endpoint_store.get(conn, s.user_id, s.endpoint_id)
    assert endpoint.hint_interval_ms is None
