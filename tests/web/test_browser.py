"""The pages in a real browser (Debian's Chromium, headless): a user's whole journey, live
updates, hostile content, isolation between users, accessibility (axe-core: no serious or
critical violation on any page), and screenshots in light and dark, desktop and phone.

One browser and one served app (with an in-process scheduler calling a local target server)
for the module; each test makes its own user, so the tests do not depend on their order.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import text
from starlette.datastructures import State
from starlette.routing import Mount

from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store import users
from cronicorn.web.live import STREAM_S, LiveHub
from support import until
from web.conftest import PASSWORD, SHOTS, Site

pytestmark = pytest.mark.slow

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 740}
TIMEOUT_MS = 20_000
HOSTILE = '"><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
_axe = Axe()
expect.set_options(timeout=TIMEOUT_MS)


async def assert_accessible(page: Page) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    results = await _axe.run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: {bad}"


class Watch:
    """What a page must never do: run injected script, open dialogs, break the CSP."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("dialog", lambda d: self.problems.append(f"dialog: {d.message}"))
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(f"CSP: {message.text}")


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        await ctx.close()


async def log_in(page: Page, site: Site, email: str, then: str = "/jobs") -> None:
    await page.goto(f"{site.base}/login?next={then}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(re.escape(site.base + then) + "$"))


async def create_job(page: Page, site: Site, name: str) -> str:
    await page.goto(f"{site.base}/jobs/new")
    await page.get_by_label("Name").fill(name)
    await page.get_by_role("button", name="Create job").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(name)
    return page.url.split("/jobs/")[1].split("?")[0]


async def add_endpoint(page: Page, job_id: str, site: Site, name: str, seconds: str) -> str:
    await page.goto(f"{site.base}/jobs/{job_id}/endpoints/new")
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("URL").fill(f"{site.target.base}/hook")
    await page.get_by_label("Interval (seconds)", exact=True).fill(seconds)
    await expect(page.locator("#preview li")).to_have_count(5)  # the live preview (htmx)
    await page.get_by_role("button", name="Add endpoint").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(name)
    return page.url.split("/endpoints/")[1].split("?")[0]


async def test_journey_log_in_create_watch_live_pause_resume_edit(
    site: Site, context: BrowserContext
) -> None:
    page = await context.new_page()
    watch = Watch(page)
    await page.goto(f"{site.base}/jobs")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await assert_accessible(page)
    await log_in(page, site, await site.user("journey"))
    await expect(page.get_by_text("No jobs yet")).to_be_visible()
    await assert_accessible(page)

    # A job form with an error shown next to its field, then the job.
    await page.goto(f"{site.base}/jobs/new")
    await page.get_by_role("button", name="Create job").click()
    await expect(page.locator("#e-name")).to_be_visible()
    await expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    await assert_accessible(page)
    job_id = await create_job(page, site, "Nightly reports")
    await expect(page.get_by_text("No endpoints yet")).to_be_visible()
    await assert_accessible(page)

    # An endpoint on the local target: its runs appear live, without a reload.
    await page.goto(f"{site.base}/jobs/{job_id}/endpoints/new")
    await assert_accessible(page)
    endpoint_id = await add_endpoint(page, job_id, site, "build report", "2")
    await expect(page.locator("#live-status")).to_have_text("Live")
    await page.evaluate("window.__sameDocument = true")
    rows = page.locator("#runs tbody tr")
    await expect(rows.first).to_be_visible()
    await expect(rows.first.locator(".badge")).to_have_text("Success")
    assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"
    await assert_accessible(page)

    # The run's body, pretty-printed.
    await rows.first.get_by_role("link").click()
    await expect(page.locator("#response-body")).to_have_text('{\n  "ok": true\n}')
    await assert_accessible(page)

    # Pause and resume.
    await page.goto(f"{site.base}/endpoints/{endpoint_id}")
    await page.get_by_role("button", name="Pause", exact=True).click()
    state = page.locator("#endpoint-state")
    await expect(state.locator(".badge").first).to_have_text("Paused")
    await page.get_by_role("button", name="Resume").click()
    await expect(state.locator(".badge").first).to_have_text("Active")

    # Run now: one more call of the target, recorded as a manual run (the 2 s schedule may
    # list a run of its own above it meanwhile).
    hits = site.target.hits
    await page.get_by_role("button", name="Run now").click()
    await expect(page.get_by_text("Run finished")).to_be_visible()
    manual = rows.filter(has=page.get_by_role("cell", name="test", exact=True))
    await expect(manual.first).to_be_visible()
    assert site.target.hits > hits

    # Edit with a validation error shown next to its field, then fixed.
    await page.get_by_role("link", name="Edit").click()
    await page.get_by_label("Interval (seconds)", exact=True).fill("soon")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#e-baseline_interval_s")).to_have_text("must be a number")
    await assert_accessible(page)
    await page.get_by_label("Interval (seconds)", exact=True).fill("3600")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("every 1 h")).to_be_visible()
    assert watch.problems == []


async def test_connection_lost_is_shown_and_recovers(site: Site, context: BrowserContext) -> None:
    """Streams end now and then by design (the browser reopens them at once): the page says
    the connection is lost only when reopening fails, and says Live again once it works."""
    hub = live_hub(site)
    hub.stream_s = 1.0
    try:
        page = await context.new_page()
        await log_in(page, site, await site.user("offline"))
        status = page.locator("#live-status")
        await expect(status).to_have_text("Live")
        await page.route("**/events", lambda route: route.abort())
        await expect(status).to_have_text("Connection lost: retrying")
        await page.unroute("**/events")
        await expect(status).to_have_text("Live")
    finally:
        hub.stream_s = STREAM_S


def live_hub(site: Site) -> LiveHub:
    for route in site.app.routes:
        if isinstance(route, Mount) and isinstance(getattr(route.app, "state", None), State):
            hub = getattr(route.app.state, "live", None)
            if isinstance(hub, LiveHub):
                return hub
    raise AssertionError("no web app mounted")


async def test_hostile_bodies_and_names_never_execute(site: Site, context: BrowserContext) -> None:
    page = await context.new_page()
    watch = Watch(page)
    await log_in(page, site, await site.user("hostile"))
    job_id = await create_job(page, site, HOSTILE)
    site.target.reply = {"status": 200, "text": HOSTILE + "<b>bold?</b>"}
    try:
        endpoint_id = await add_endpoint(page, job_id, site, HOSTILE, "2")
        rows = page.locator("#runs tbody tr")
        await expect(rows.first.locator(".badge")).to_have_text("Success")
        await rows.first.get_by_role("link").click()
        await expect(page.locator("#response-body")).to_have_text(HOSTILE + "<b>bold?</b>")
    finally:
        site.target.reply = {"status": 200, "body": {"ok": True}}
    for path in ("/jobs", f"/jobs/{job_id}", f"/endpoints/{endpoint_id}"):
        await page.goto(site.base + path)
        await expect(page.get_by_text(HOSTILE).first).to_be_visible()
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("main img, main script, main b").count() == 0
    assert watch.problems == []


async def test_a_second_user_cannot_see_the_first_users_job(
    site: Site, browser: Browser, context: BrowserContext
) -> None:
    page = await context.new_page()
    await log_in(page, site, await site.user("first"))
    job_id = await create_job(page, site, "private job")
    other = await browser.new_context(viewport=DESKTOP)
    try:
        stranger = await other.new_page()
        await log_in(stranger, site, await site.user("second"))
        await expect(stranger.get_by_text("private job")).to_have_count(0)
        response = await stranger.goto(f"{site.base}/jobs/{job_id}")
        assert response is not None
        assert response.status == 404
        await expect(stranger.get_by_role("heading", level=1)).to_have_text("Not found")
        await expect(stranger.get_by_text("private job")).to_have_count(0)
        await assert_accessible(stranger)
    finally:
        await other.close()


@pytest.fixture(scope="module")
async def shots_user(site: Site) -> str:
    """A user with one job, one endpoint on the local target and a finished run (made
    through the store: the journey test covers making them through the pages)."""
    email = await site.user("shots")
    async with site.engine.begin() as conn:
        user = await users.get_by_email(conn, email)
        assert user is not None
        now = datetime.now(UTC)
        job = await job_store.create(conn, user.id, name="Shop reports", description=None, now=now)
        config = {"name": "sales report", "url": f"{site.target.base}/hook"}
        config["baseline_interval_ms"] = 2000
        await endpoint_store.create(conn, user.id, job.id, config, now)

    async def ran() -> bool:
        async with site.engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM runs WHERE user_id = :u AND status = 'success'"),
                {"u": user.id},
            )
        return bool(found)

    await until(ran, timeout=30, what="the first run of the screenshot endpoint")
    return email


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_screenshots_light_and_dark_desktop_and_phone(
    site: Site, browser: Browser, shots_user: str, scheme: str
) -> None:
    """Pages at 1280 and 360 px wide, in both colour schemes: no sideways scrolling of the
    page itself on a phone, no serious axe violation (contrast included) in either scheme
    (axe runs on the desktop layout; the phone's DOM is the same)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        ctx = await browser.new_context(
            viewport=viewport, color_scheme=scheme, timezone_id="UTC", locale="en-GB"
        )
        ctx.set_default_timeout(TIMEOUT_MS)
        try:
            page = await ctx.new_page()
            await log_in(page, site, shots_user)
            for label, path in await _pages(page, site):
                await page.goto(site.base + path)
                if name == "desktop":
                    await assert_accessible(page)
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], f"{label} scrolls sideways at {width}px"
                await page.screenshot(path=str(SHOTS / f"{label}-{name}-{scheme}.png"))
        finally:
            await ctx.close()


async def _pages(page: Page, site: Site) -> list[tuple[str, str]]:
    await page.goto(f"{site.base}/jobs")
    job = await page.locator("#jobs-table a").first.get_attribute("href")
    await page.goto(site.base + str(job))
    endpoint = await page.locator("#job-endpoints td a").first.get_attribute("href")
    await page.goto(site.base + str(endpoint))
    run = await page.locator("#runs tbody a").first.get_attribute("href")
    return [
        ("jobs", "/jobs"),
        ("job", str(job)),
        ("endpoint", str(endpoint)),
        ("run", str(run)),
    ]
