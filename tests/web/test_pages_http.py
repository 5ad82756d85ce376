"""The pages over plain HTTP (no browser): sign-in with the API's session cookie, CSRF and
Origin checks on every form, the CSP and cache headers, content-hash static URLs, the same
404 for another user's ids, and escaping of hostile names. Cheap enough to run per test."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from api.api_support import add_run
from cronicorn.store import audit, users
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store.outcomes import RECENT_SQL
from cronicorn.store.wakeups import endpoint_changed
from cronicorn.web.live import LiveHub
from support import plan_scans
from web.conftest import PASSWORD, Site

HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def sign_in(http: aiohttp.ClientSession, site: Site, email: str) -> str:
    form = {"email": email, "password": PASSWORD, "next": "/jobs"}
    async with http.post(f"{site.base}/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == "/jobs"
    return await csrf_of(http, f"{site.base}/jobs")


async def csrf_of(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        html = await resp.text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


async def test_signed_out_pages_go_to_login_and_the_api_reference_stays(
    site: Site, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{site.base}/jobs?status=paused", allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/login?next=%2Fjobs%3Fstatus%3Dpaused"
    async with http.get(f"{site.base}/login") as resp:
        html = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
    assert 'name="password"' in html
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    async with http.get(f"{site.base}/api/reference") as resp:
        assert resp.status == 200
    async with http.get(f"{site.base}/api/nope") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_static_files_are_served_by_content_hash(
    site: Site, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{site.base}/login") as resp:
        html = await resp.text()
    urls = re.findall(r'(?:src|href)="(/static/[0-9a-f]{12}/[^"]+)"', html)
    assert {u.rsplit("/", 1)[1] for u in urls} >= {"app.css", "app.js", "htmx-2.0.11.min.js"}
    for url in urls:
        async with http.get(f"{site.base}{url}") as resp:
            assert resp.status == 200
            assert "immutable" in resp.headers["Cache-Control"]
    stale = re.sub(r"/static/[0-9a-f]{12}/", "/static/000000000000/", urls[0])
    async with http.get(f"{site.base}{stale}") as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-cache"
    async with http.get(f"{site.base}/static/000000000000/../app.py") as resp:
        assert resp.status == 404


async def test_login_refuses_wrong_password_and_foreign_origin(
    site: Site, http: aiohttp.ClientSession
) -> None:
    email = await site.user()
    bad = {"email": email, "password": "wrong password!", "next": "/"}
    async with http.post(f"{site.base}/login", data=bad, allow_redirects=False) as resp:
        assert resp.status == 401
        assert "Wrong email or password" in await resp.text()
    good = {"email": email, "password": PASSWORD, "next": "//evil.example/x"}
    headers = {"Origin": "https://evil.example"}
    async with http.post(
        f"{site.base}/login", data=good, headers=headers, allow_redirects=False
    ) as resp:
        assert resp.status == 403
    async with http.post(f"{site.base}/login", data=good, allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/"  # never an open redirect
        assert "cronicorn_session" in resp.cookies


async def test_forms_need_the_csrf_token_and_our_origin(
    site: Site, http: aiohttp.ClientSession
) -> None:
    csrf = await sign_in(http, site, await site.user())
    form = {"name": "nightly", "ai_mode": "auto"}
    async with http.post(f"{site.base}/jobs/new", data=form, allow_redirects=False) as resp:
        assert resp.status == 403
    async with http.post(
        f"{site.base}/jobs/new", data={**form, "csrf": "forged"}, allow_redirects=False
    ) as resp:
        assert resp.status == 403
    async with http.post(
        f"{site.base}/jobs/new",
        data={**form, "csrf": csrf},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 403
    async with http.post(
        f"{site.base}/jobs/new", data={**form, "csrf": csrf}, allow_redirects=False
    ) as resp:
        assert resp.status == 303
        assert re.fullmatch(r"/jobs/[0-9a-f-]{36}\?done=created", resp.headers["Location"])


async def test_another_users_ids_are_the_same_404_as_unknown_ones(
    site: Site, http: aiohttp.ClientSession
) -> None:
    owner = await site.user("owner")
    async with site.engine.begin() as conn:
        row = await _owned_endpoint(conn, owner)
    csrf = await sign_in(http, site, await site.user("other"))
    for path in (f"/jobs/{row[0]}", f"/endpoints/{row[1]}", f"/endpoints/{row[1]}/edit"):
        async with http.get(f"{site.base}{path}") as resp:
            theirs = (resp.status, _main(await resp.text()))
        unknown = re.sub(r"[0-9a-f-]{36}", "00000000-0000-7000-8000-000000000000", path)
        async with http.get(f"{site.base}{unknown}") as resp:
            assert (resp.status, _main(await resp.text())) == theirs
        assert theirs[0] == 404
    async with http.post(
        f"{site.base}/endpoints/{row[1]}/pause", data={"csrf": csrf}, allow_redirects=False
    ) as resp:
        assert resp.status == 404
    async with site.engine.connect() as conn:
        endpoint = await endpoint_store.get(conn, await _id_of(conn, owner), row[1])
    assert endpoint.paused_until is None


async def test_hostile_names_are_escaped(site: Site, http: aiohttp.ClientSession) -> None:
    email = await site.user()
    await sign_in(http, site, email)
    async with site.engine.begin() as conn:
        user_id = await _id_of(conn, email)
        job = await job_store.create(
            conn, user_id, name=HOSTILE, description=HOSTILE, now=datetime.now(UTC)
        )
    for path in ("/jobs", f"/jobs/{job.id}"):
        async with http.get(f"{site.base}{path}") as resp:
            html = await resp.text()
        assert "<script>alert(2)" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def _main(html: str) -> str:
    return html.split('<main id="main"', 1)[1]


async def _id_of(conn: AsyncConnection, email: str) -> str:
    row = await users.get_by_email(conn, email)
    assert row is not None
    return row.id


async def _owned_endpoint(conn: AsyncConnection, email: str) -> tuple[str, str]:
    """A job with one endpoint owned by `email`: (job id, endpoint id)."""
    user_id, now = await _id_of(conn, email), datetime.now(UTC)
    job = await job_store.create(conn, user_id, name="theirs", description=None, now=now)
    config = {"name": "secret", "url": "https://example.com/x", "baseline_interval_ms": 3_600_000}
    endpoint = await endpoint_store.create(conn, user_id, job.id, config, now)
    return job.id, endpoint.id


async def test_bulk_pause_and_resume_touch_only_the_chosen_endpoints_of_the_job(
    site: Site, http: aiohttp.ClientSession
) -> None:
    stranger = await site.user("stranger")
    async with site.engine.begin() as conn:
        _, theirs = await _owned_endpoint(conn, stranger)
    email = await site.user("bulk")
    csrf = await sign_in(http, site, email)
    async with site.engine.begin() as conn:
        job_id, first = await _owned_endpoint(conn, email)
        user_id, now = await _id_of(conn, email), datetime.now(UTC)
        config = {"name": "two", "url": "https://example.com/2", "baseline_interval_ms": 3_600_000}
        second = (await endpoint_store.create(conn, user_id, job_id, config, now)).id
    form = aiohttp.FormData({"csrf": csrf, "action": "pause"})
    form.add_field("endpoint", first)
    form.add_field("endpoint", theirs)  # another user's id: ignored
    async with http.post(
        f"{site.base}/jobs/{job_id}/endpoints/bulk", data=form, allow_redirects=False
    ) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == f"/jobs/{job_id}?done=paused"
    paused = await _paused(site, {first: email, second: email, theirs: stranger})
    assert paused == {first: True, second: False, theirs: False}
    form = aiohttp.FormData({"csrf": csrf, "action": "resume"})
    form.add_field("endpoint", first)
    async with http.post(
        f"{site.base}/jobs/{job_id}/endpoints/bulk", data=form, allow_redirects=False
    ) as resp:
        assert resp.headers["Location"] == f"/jobs/{job_id}?done=resumed"
    assert (await _paused(site, {first: email}))[first] is False


async def _paused(site: Site, owners: dict[str, str]) -> dict[str, bool]:
    out = {}
    async with site.engine.connect() as conn:
        for endpoint_id, email in owners.items():
            row = await endpoint_store.get(conn, await _id_of(conn, email), endpoint_id)
            out[endpoint_id] = row.paused_until is not None
    return out


async def test_live_events_reach_only_the_owners_streams(site: Site) -> None:
    """NOTIFY cronicorn_runs '<user> <endpoint>' goes to that user's streams only; a
    listener that reconnects tells every stream to resync."""
    hub = LiveHub(site.app.state.runtime.database_url)
    async with hub.subscribe("alice") as alice, hub.subscribe("bob") as bob:
        await asyncio.wait_for(hub.listening.wait(), 10)
        async with site.engine.begin() as conn:
            await endpoint_changed(conn, "alice", "e1")
        assert await asyncio.wait_for(alice.get(), 10) == "e1"
        assert bob.empty()
    assert not hub.listening.is_set()  # the last stream gone: the LISTEN connection closed


async def test_recent_outcomes_read_each_endpoint_by_index(site: Site) -> None:
    async with site.engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        plan = await conn.scalar(
            text("EXPLAIN (FORMAT JSON) " + str(RECENT_SQL.text)),
            {"ids": ["a", "b"], "user_id": "u", "per": 20},
        )
    scans = plan_scans(plan[0]["Plan"])
    on_index = {kind for kind, index in scans if index == "ix_runs_endpoint_id_started_at"}
    # index-only since 0014 covers status
    assert on_index & {"Index Scan", "Index Scan Backward", "Index Only Scan"}, scans


async def _signed_in_with_runs(
    site: Site, http: aiohttp.ClientSession, name: str, runs: list[tuple[datetime, str]]
) -> str:
    """A new user, signed in, with one endpoint that has these (start, status) runs: its id."""
    email = await site.user(name)
    await sign_in(http, site, email)
    async with site.engine.begin() as conn:
        _, endpoint_id = await _owned_endpoint(conn, email)
        user_id = await _id_of(conn, email)
        for at, status in runs:
            await add_run(
                conn, user_id=user_id, endpoint_id=endpoint_id, started_at=at, status=status
            )
    return endpoint_id


async def test_run_history_filters_by_status_and_day(
    site: Site, http: aiohttp.ClientSession
) -> None:
    day1 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    history = ((day1, "success"), (day1, "failed"), (day1 + timedelta(1), "success"))
    # distinct instants
    runs = [(at + timedelta(minutes=len(status)), status) for at, status in history]
    endpoint_id = await _signed_in_with_runs(site, http, "history", runs)
    base = f"{site.base}/endpoints/{endpoint_id}"
    expected = {"": 3, "?status=failed": 1, "?since=2025-03-11": 1, "?until=2025-03-10": 2}
    for query, rows in expected.items():
        async with http.get(base + query) as resp:
            html = (await resp.text()).split('id="runs"', 1)[1]
        assert html.count('<a href="/runs/') == rows, query
    async with http.get(base + "?status=skipped&since=2025-03-11") as resp:
        assert "No runs match these filters" in await resp.text()


async def test_run_history_pages_go_back_and_forth_by_cursor(
    site: Site, http: aiohttp.ClientSession
) -> None:
    """Older and Newer both name a run, so a deep page costs what the first does either way;
    Newer from page 3 shows page 2's runs, and from page 2 the newest runs again."""
    start = datetime.now(UTC) - timedelta(hours=2)  # any instant: the history has no window
    # three pages of 25, 25 and 10 (ties by id: tests/store/test_runs_plans.py)
    runs = [(start + timedelta(minutes=n), "success") for n in range(60)]
    endpoint_id = await _signed_in_with_runs(site, http, "pages", runs)

    async def page(url: str) -> tuple[list[str], str]:
        async with http.get(site.base + url.replace("&amp;", "&")) as resp:
            assert resp.status == 200
            html = (await resp.text()).split('id="runs"', 1)[1]
        nav = html.split('aria-label="Run history pages"', 1)[1]
        return re.findall(r'<a href="/runs/([^"]+)">', html), nav

    def link(nav: str, label: str) -> str:
        found = re.search(rf'<a href="([^"]+)">{label}</a>', nav)
        assert found is not None, nav
        return found.group(1)

    first, nav1 = await page(f"/endpoints/{endpoint_id}")
    second, nav2 = await page(link(nav1, "Older"))
    third, nav3 = await page(link(nav2, "Older"))
    assert [len(first), len(second), len(third)] == [25, 25, 10]
    assert len(set(first + second + third)) == 60
    assert "page 3 of 3" in nav3
    newer = link(nav3, "Newer")
    assert "before=" in newer
    assert "page=2" in newer
    again, nav2_again = await page(newer)
    assert again == second
    assert "page 2 of 3" in nav2_again
    assert "before=" not in link(nav2_again, "Newer")  # page 1 is the newest runs
    newest, _ = await page(link(nav2_again, "Newer"))
    assert newest == first
    stale, nav_stale = await page(f"/endpoints/{endpoint_id}?page=2&before=not-a-cursor")
    assert stale == second  # a stale or hand-made cursor falls back to the number
    assert "page 2 of 3" in nav_stale


async def test_the_timeline_pages_back_by_cursor_too(
    site: Site, http: aiohttp.ClientSession
) -> None:
    """The dashboard's activity: Newer from page 3 names the run page 2 ends at (no offset
    that reads every newer event again) and shows page 2's events; page 2's is the newest."""
    now = datetime.now(UTC)
    # three pages of 20, 20 and 5, within the last day
    runs = [(now - timedelta(hours=1, minutes=n), "success") for n in range(45)]
    await _signed_in_with_runs(site, http, "timeline", runs)

    async def page(url: str) -> tuple[list[str], str]:
        async with http.get(site.base + url.replace("&amp;", "&")) as resp:
            assert resp.status == 200
            html = (await resp.text()).split('id="activity-list"', 1)[1]
        return re.findall(r'<a href="/runs/([^"]+)">', html), html

    def link(html: str, label: str) -> str:
        found = re.search(rf'<a class="button" href="([^"]+)">{label}', html)
        assert found is not None, html[-800:]
        return found.group(1)

    first, html1 = await page("/?range=24h")
    second, html2 = await page(link(html1, "Older"))
    third, html3 = await page(link(html2, "Older"))
    assert [len(first), len(second), len(third)] == [20, 20, 5]
    assert len(set(first + second + third)) == 45
    newer = link(html3, "Newer")
    assert "before=" in newer
    assert "offset=" not in newer
    again, html2_again = await page(newer)
    assert again == second
    assert "Older (5 more)" in html2_again  # the counts know where the page is
    back = link(html2_again, "Newer")
    assert "before=" not in back
    newest, _ = await page(back)
    assert newest == first


async def test_run_now_calls_the_target_once_and_never_an_archived_endpoint(
    site: Site, http: aiohttp.ClientSession
) -> None:
    email = await site.user("runnow")
    csrf = await sign_in(http, site, email)
    async with site.engine.begin() as conn:
        user_id, now = await _id_of(conn, email), datetime.now(UTC)
        job = await job_store.create(conn, user_id, name="manual", description=None, now=now)
        config = {"name": "m", "url": f"{site.target.base}/manual", "baseline_cron": "0 0 1 1 *"}
        endpoint = await endpoint_store.create(conn, user_id, job.id, config, now)
    url = f"{site.base}/endpoints/{endpoint.id}/run-now"
    hits = site.target.hits
    async with http.post(url, data={"csrf": csrf}, allow_redirects=False) as resp:
        assert resp.headers["Location"] == f"/endpoints/{endpoint.id}?done=ran"
    assert site.target.hits == hits + 1
    async with http.get(f"{site.base}/endpoints/{endpoint.id}") as resp:
        assert (await resp.text()).count('<a href="/runs/') == 1
    async with site.engine.begin() as conn:
        await endpoint_store.archive(conn, user_id, endpoint.id, now, job_id=job.id)
    async with http.post(url, data={"csrf": csrf}, allow_redirects=False) as resp:
        assert resp.headers["Location"] == f"/endpoints/{endpoint.id}?problem=archived"
    assert site.target.hits == hits + 1


async def test_page_writes_name_the_signed_in_user_in_the_audit_log(
    site: Site, http: aiohttp.ClientSession
) -> None:
    email = await site.user("audited")
    csrf = await sign_in(http, site, email)
    form = {"name": "audited job", "ai_mode": "auto", "csrf": csrf}
    async with http.post(f"{site.base}/jobs/new", data=form, allow_redirects=False) as resp:
        job_id = resp.headers["Location"].split("/")[2].split("?")[0]
    async with site.engine.connect() as conn:
        user_id = await _id_of(conn, email)
        entries = await audit.list_entries(
            conn, audit.Filters(entity="job", entity_id=job_id), before_id=None, limit=10
        )
    assert [(e.action, e.actor_kind, e.actor_id) for e in entries] == [("create", "user", user_id)]


async def test_endpoint_page_and_form_preview_explain_the_rules(
    site: Site, http: aiohttp.ClientSession
) -> None:
    email = await site.user("ruler")
    csrf = await sign_in(http, site, email)
    async with site.engine.begin() as conn:
        job_id, sibling = await _owned_endpoint(conn, email)
        rules = [
            {
                "name": "deep queue",
                "when": {"jsonPath": "$.queue.depth", "op": ">", "value": 100},
                "then": {"action": "interval", "intervalMs": 1000, "ttlMinutes": 10},
            },
            {
                "when": {"status": [503]},
                "then": {"action": "pause", "forMinutes": 5, "target": sibling},
            },
        ]
        config = {
            "name": "monitor",
            "url": "https://example.com/m",
            "baseline_interval_ms": 60_000,
            "min_interval_ms": 5_000,
            "rules": rules,
        }
        user_id = await _id_of(conn, email)
        monitor = await endpoint_store.create(conn, user_id, job_id, config, datetime.now(UTC))
    deep = (
        "rule &#39;deep queue&#39;: when $.queue.depth &gt; 100, interval 1 s for 10 min "
        "(clamped to min 5 s)"
    )
    paused = f"rule 2: when status 503, pause for 5 min on sibling &#39;secret&#39; ({sibling})"
    async with http.get(f"{site.base}/endpoints/{monitor.id}") as resp:
        html = _main(await resp.text())
    assert deep in html, html
    assert paused in html
    form = {
        "csrf": csrf,
        "endpoint_id": monitor.id,
        "kind": "interval",
        "baseline_interval_s": "60",
        "min_interval_s": "2",  # the draft's own clamp
        "rules": json.dumps(rules),
    }
    async with http.post(f"{site.base}/endpoints/preview", data=form) as resp:
        fragment = await resp.text()
    assert resp.status == 200, fragment
    assert deep.replace("min 5 s", "min 2 s") in fragment, fragment
    assert paused in fragment
    async with http.post(f"{site.base}/endpoints/preview", data={**form, "rules": "[{"}) as resp:
        fragment = await resp.text()
    assert "<li>" in fragment  # the runs, without rules while their JSON is unfinished
    assert "response rules" not in fragment
