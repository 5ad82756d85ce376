"""The gate's credential cache and local rate-limit budget (`store.credential_cache`,
`api.ratelimit.LocalBudget`), with two served apps on one database as two API processes.

The apps' caches keep entries for an hour and their clock is fixed, so nothing here passes
because an entry aged out: a refusal can only come from the invalidation (or the fallback
when the listening connection is gone). Each test checks first that the credential IS
cached in both processes, so a refusal after the change is the cache being emptied.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Mount

from auth.auth_support import T0, Clock
from conftest import PgServer
from cronicorn.api.deps import set_clock
from cronicorn.api.ratelimit import LocalBudget
from cronicorn.app import create_app
from cronicorn.auth.service import create_user_with_api_key
from cronicorn.auth.tokens import hash_token
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.store import api_keys, login_sessions, users
from cronicorn.store.coalesce import Coalesced
from cronicorn.store.credential_cache import CredentialCache
from cronicorn.store.db import make_async_engine
from support import serve_app

pytestmark = pytest.mark.xdist_group("auth_cache")

READ_LIMIT = 40
Two = tuple[list[str], list[CredentialCache], AsyncEngine]


@pytest.fixture(scope="module")
async def two(pg_server: PgServer) -> AsyncIterator[Two]:
    """Two apps (two processes' worth of caches, pools and budgets) on one database."""
    url = pg_server.create_database()
    engine = make_async_engine(url, pool_size=2, max_overflow=2)
    values = {"DATABASE_URL": url, "AUTH_SECRET": "s" * 40, "RATE_LIMIT_READ_RPM": READ_LIMIT}
    caches = [CredentialCache(url, ttl=timedelta(hours=1)) for _ in range(2)]
    apps = [create_app(Runtime.create(load_settings(**values), url)) for _ in range(2)]
    for app, cache in zip(apps, caches, strict=True):
        set_clock(app, Clock())  # T0 for good: one rate-limit window, no entry ages out
        api = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/api")
        api.state.credential_cache = cache
    try:
        async with serve_app(apps[0]) as one, serve_app(apps[1]) as other:
            yield [one, other], caches, engine
    finally:
        await engine.dispose()
        pg_server.drop_database(url)


async def _statuses(bases: list[str], headers: dict[str, str]) -> list[int]:
    async with aiohttp.ClientSession() as http:
        out = []
        for base in bases:
            async with http.get(f"{base}/api/jobs", headers=headers) as resp:
                out.append(resp.status)
        return out


def _cached_in_both(caches: list[CredentialCache], secret: str) -> bool:
    return all(cache.lookup(hash_token(secret), T0) is not None for cache in caches)


async def test_a_revoked_key_or_disabled_user_is_refused_by_every_process_at_once(
    two: Two,
) -> None:
    bases, caches, engine = two
    for change in ("revoke key", "disable user"):
        user_id, key = await create_user_with_api_key(engine, f"{uuid.uuid4()}@example.com")
        headers = {"x-api-key": key}
        assert await _statuses(bases * 2, headers) == [200] * 4  # a lookup, then the cache
        assert _cached_in_both(caches, key)
        async with engine.begin() as conn:  # as the CLI does: a third process
            if change == "revoke key":
                (found,) = await api_keys.list_for_user(conn, user_id)
                await api_keys.revoke(conn, found.id, T0, user_id=None)
            else:
                await users.set_disabled(conn, user_id, T0, T0)
        assert await _statuses(bases, headers) == [401, 401], change


async def test_a_revoked_session_is_refused_by_every_process_at_once(two: Two) -> None:
    bases, caches, engine = two
    token = f"tok-{uuid.uuid4()}"
    async with engine.begin() as conn:
        user = await users.create(
            conn, email=f"{uuid.uuid4()}@example.com", name="s", password_hash=None
        )
        await login_sessions.create(
            conn,
            user_id=user.id,
            token_hash=hash_token(token),
            kind="device",
            expires_at=T0 + timedelta(days=1),
            now=T0,
        )
    headers = {"Authorization": f"Bearer {token}"}
    assert await _statuses(bases * 2, headers) == [200] * 4
    assert _cached_in_both(caches, token)
    async with engine.begin() as conn:
        assert await login_sessions.revoke_all_for_user(conn, user.id, T0) == 1
    assert await _statuses(bases, headers) == [401, 401]


async def test_the_read_limit_holds_across_processes_with_reserved_chunks(two: Two) -> None:
    bases, _, engine = two
    _, key = await create_user_with_api_key(engine, f"{uuid.uuid4()}@example.com")
    statuses = await _statuses([bases[0]] * 30 + [bases[1]] * 30, {"x-api-key": key})
    admitted = statuses.count(200)
    # Never more than the limit; at most the first process's last chunk (limit // 8 at
    # most) is stranded unused when the second one runs dry.
    assert READ_LIMIT - READ_LIMIT // 8 <= admitted <= READ_LIMIT
    assert statuses[:admitted] == [200] * admitted
    assert set(statuses[admitted:]) == {429}
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT count FROM rate_limits WHERE bucket LIKE 'key:%'"))
        assert max(rows.scalars()) >= READ_LIMIT  # reservations are in the shared count


async def test_without_its_listener_a_process_serves_nothing_from_the_cache(two: Two) -> None:
    """Runs last in the module: the listeners come back only after `RETRY_S`."""
    bases, caches, engine = two
    user_id, key = await create_user_with_api_key(engine, f"{uuid.uuid4()}@example.com")
    headers = {"x-api-key": key}
    assert await _statuses(bases * 2, headers) == [200] * 4
    assert _cached_in_both(caches, key)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'cronicorn-credentials%'"
                " AND datname = current_database()"
            )
        )
        # Revoked behind the caches' back (no announce): only a lookup can see it.
        await conn.execute(
            text("UPDATE api_keys SET revoked_at = now() WHERE user_id = :u"), {"u": user_id}
        )
    assert await _statuses(bases, headers) == [401, 401]


# -- pure parts -----------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 300),
    picks=st.lists(st.integers(0, 3), min_size=1, max_size=400),
    processes=st.integers(1, 4),
)
def test_reservations_never_admit_more_than_the_limit(
    limit: int, picks: list[int], processes: int
) -> None:
    shared = 0  # the database's counter
    budgets = [LocalBudget() for _ in range(processes)]
    admitted = 0
    for pick in picks:
        budget = budgets[pick % processes]
        verdict = budget.take("key:k:read", limit, T0)
        if verdict is None:
            want = budget.want("key:k:read", limit, T0)
            shared += want
            verdict = budget.granted("key:k:read", limit, T0, shared, want)
        admitted += verdict.allowed
        assert 0 <= verdict.remaining <= limit
    assert admitted <= limit
    if processes == 1:  # one process strands nothing: exactly the limit, as before
        assert admitted == min(len(picks), limit)


async def test_a_shared_probe_answers_only_with_a_probe_started_after_the_call() -> None:
    started: list[int] = []
    release = asyncio.Event()

    async def probe() -> int:
        started.append(len(started) + 1)
        await release.wait()
        return started[-1]

    shared = Coalesced(probe)
    first = asyncio.create_task(shared())
    while not started:
        await asyncio.sleep(0)
    second, third = asyncio.create_task(shared()), asyncio.create_task(shared())
    await asyncio.sleep(0)
    release.set()
    assert await first == 1
    assert await second == await third == 2  # they asked while probe 1 ran: one probe more
    assert len(started) == 2


async def test_a_health_probe_is_joined_while_it_runs_and_started_afresh_after() -> None:
    started: list[int] = []
    release = asyncio.Event()

    async def probe() -> int:
        started.append(len(started) + 1)
        await release.wait()
        return started[-1]

    shared = Coalesced(probe, join_running=True)
    first = asyncio.create_task(shared())
    while not started:
        await asyncio.sleep(0)
    joined = asyncio.create_task(shared())
    release.set()
    assert await first == await joined == 1  # its answer came after `joined` asked
    assert await shared() == 2  # nothing in flight any more: a probe of its own
