"""The local rate-limit budget (`api.ratelimit.LocalBudget`) under concurrent requests: one
reservation of a bucket in flight per process, so the requests that find the process's
reservation spent while another renews it wait for that one instead of each reserving a
chunk (which added more to the shared count than was left of the limit: refusals while the
process held unused requests). The cached gate itself, as the hot lists' fast path calls it
(`deps.gate_from_cache`, renewals on the read pool) and as the framework does (`deps._gate`,
on the request's connection), many requests at once; then whole apps over HTTP, two on one
database as two API processes.

Every app's clock is fixed (one window for good) and credential cache entries last an hour.
Whatever the interleaving, a process refuses only once the window is spent and admits only
what it was granted, so every count below is exact: nothing depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.routing import Mount

from auth.auth_support import T0, Clock
from conftest import PgServer
from cronicorn.api.deps import _gate, gate_from_cache, read_pool_of, set_clock
from cronicorn.api.errors import ApiError
from cronicorn.api.ratelimit import SHARE, LocalBudget, Verdict
from cronicorn.app import create_app
from cronicorn.auth.service import create_user_with_api_key
from cronicorn.auth.tokens import hash_token
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.store.credential_cache import CredentialCache
from cronicorn.store.db import make_async_engine
from support import serve_app

LIMIT = 150  # the read limit
CLIENTS = 20  # concurrent connections


@dataclass
class Site:
    bases: list[str]
    apis: list[FastAPI]  # each app's API, as the mount hands requests to it
    engine: AsyncEngine


@pytest.fixture(scope="module")
async def site(pg_server: PgServer) -> AsyncIterator[Site]:
    """Two apps (two processes' worth of caches, pools and budgets) on one database."""
    url = pg_server.create_database()
    engine = make_async_engine(url, pool_size=2, max_overflow=2)
    values = {"DATABASE_URL": url, "AUTH_SECRET": "s" * 40, "RATE_LIMIT_READ_RPM": LIMIT}
    apps = [create_app(Runtime.create(load_settings(**values), url)) for _ in range(2)]
    apis = []
    for app in apps:
        set_clock(app, Clock())
        api = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/api")
        api.state.credential_cache = CredentialCache(url, ttl=timedelta(hours=1))
        apis.append(api)
    try:
        async with serve_app(apps[0]) as one, serve_app(apps[1]) as other:
            yield Site([one, other], apis, engine)
    finally:
        await engine.dispose()
        pg_server.drop_database(url)


async def _concurrently(urls: list[str], key: str) -> list[list[int]]:
    """GET every url, `CLIENTS` at a time: each client's statuses, in its order."""
    headers = {"x-api-key": key}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def client(mine: list[str]) -> list[int]:
            out = []
            for url in mine:
                async with http.get(url, headers=headers) as resp:
                    await resp.read()
                    out.append(resp.status)
            return out

        return await asyncio.gather(*(client(urls[i::CLIENTS]) for i in range(CLIENTS)))


def _flat(clients: list[list[int]]) -> list[int]:
    return list(itertools.chain.from_iterable(clients))


async def _key(engine: AsyncEngine) -> str:
    _, key = await create_user_with_api_key(engine, f"{uuid.uuid4()}@example.com")
    return key


async def _shared_count_of(engine: AsyncEngine, key: str) -> int:
    """The key's read count in the window, as every process's reservations left it."""
    async with engine.connect() as conn:
        count = await conn.scalar(
            text(
                "SELECT r.count FROM rate_limits r JOIN api_keys k"
                " ON r.bucket = 'key:' || k.id || ':' || 'read' WHERE k.key_hash = :hash"
            ),
            {"hash": hash_token(key)},
        )
    return int(count or 0)


def _request(api: FastAPI, key: str) -> Request:
    """A read as the API app sees it (what `api.fast_lists` hands the gate, too)."""
    headers = [(b"x-api-key", key.encode())]
    return Request({"type": "http", "app": api, "method": "GET", "headers": headers})


@pytest.mark.parametrize("path", ["fast", "framework"])
async def test_requests_that_find_the_reservation_spent_share_one_renewal(
    site: Site, path: str
) -> None:
    """`BURST` requests at once, far fewer than what is left of the limit: every one is
    admitted, and the shared count runs ahead of what was admitted by less than one chunk
    (before: each request that found the reservation spent reserved a chunk of
    1/`SHARE` of what was left, more than all of it together, and the later ones got 429)."""
    api, engine = site.apis[0], site.engine
    runtime = api.state.runtime
    key = await _key(engine)
    warm = 20  # the credential cached, the process's chunks sized by what it used
    assert _flat(await _concurrently([site.bases[0] + "/api/jobs"] * warm, key)) == [200] * warm
    burst = (LIMIT - warm) // 2

    async def fast() -> bool:
        pool = read_pool_of(api, runtime)
        return await gate_from_cache(_request(api, key), runtime, pool) is not None

    async def framework() -> bool:
        async with runtime.engine.connect() as conn:
            await _gate(_request(api, key), runtime, conn)
        return True

    async def one() -> bool | int:
        try:
            return await (fast() if path == "fast" else framework())
        except ApiError as exc:
            return exc.status

    verdicts = await asyncio.gather(*(one() for _ in range(burst)))
    assert verdicts == [True] * burst
    assert 0 <= await _shared_count_of(engine, key) - (warm + burst) < (LIMIT - warm) // SHARE


async def test_one_process_admits_exactly_the_limit_then_refuses(site: Site) -> None:
    """Over HTTP, `LIMIT + CLIENTS` requests on `CLIENTS` connections to one process (the
    fast path, and the framework for what it hands on): exactly `LIMIT` admitted, and no
    client is refused before one of its requests that is admitted."""
    key = await _key(site.engine)
    clients = await _concurrently([site.bases[0] + "/api/jobs"] * (LIMIT + CLIENTS), key)
    statuses = _flat(clients)
    assert statuses.count(200) == LIMIT
    assert statuses.count(429) == CLIENTS
    for mine in clients:
        assert mine == sorted(mine), "200s, then 429s"


async def test_two_processes_admit_the_limit_together_then_refuse_with_no_upsert(
    site: Site,
) -> None:
    """Requests spread over two processes: together they admit exactly the limit (each
    gets more requests than it can have been granted, so none strands a reservation); a
    process that knows the window spent refuses without adding to the shared count."""
    bases, engine = site.bases, site.engine
    key = await _key(engine)
    statuses = _flat(await _concurrently([f"{base}/api/jobs" for base in bases] * LIMIT, key))
    assert statuses.count(200) == LIMIT
    assert set(statuses) == {200, 429}
    spent = await _shared_count_of(engine, key)
    assert spent >= LIMIT
    statuses = _flat(await _concurrently([f"{b}/api/jobs" for b in bases] * CLIENTS, key))
    assert set(statuses) == {429}
    assert await _shared_count_of(engine, key) == spent, "refused with no upsert"


# -- pure parts -----------------------------------------------------------------------------
@pytest.mark.parametrize("ending", ["error", "cancelled"])
async def test_a_renewal_that_fails_or_is_cancelled_wakes_its_waiters(ending: str) -> None:
    """The renewal's waiters wake whatever ends it, and renew one at a time themselves."""
    budget, shared, in_flight, most, calls = LocalBudget(), 0, 0, 0, 0
    ends = asyncio.Event()

    async def reserve(want: int) -> int:
        nonlocal shared, in_flight, most, calls
        calls += 1
        in_flight += 1
        most = max(most, in_flight)
        try:
            if calls == 1:  # the first renewal hangs, then fails (or is cancelled)
                await ends.wait()
                raise ConnectionError("the database went away")
            await asyncio.sleep(0)  # a round trip: the waiters get to run meanwhile
            shared += want
            return shared
        finally:
            in_flight -= 1

    def admit() -> asyncio.Task[Verdict]:
        return asyncio.create_task(budget.admit("key:k:read", LIMIT, T0, reserve))

    first = admit()
    await asyncio.sleep(0)  # one turn of the loop: the first request is renewing
    waiters = [admit() for _ in range(10)]
    await asyncio.sleep(0)  # and the others wait for it
    assert in_flight == 1
    assert not any(w.done() for w in waiters)
    if ending == "error":
        ends.set()
        with pytest.raises(ConnectionError):
            await first
    else:
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    verdicts = await asyncio.wait_for(asyncio.gather(*waiters), timeout=10)
    assert [v.allowed for v in verdicts] == [True] * 10
    assert most == 1, "one renewal at a time"
    # The failed renewal added nothing; every request since reserved was used or is held.
    assert shared == 10 + budget.shares["key:k:read"].left


async def test_a_request_renews_on_its_own_once_a_renewal_takes_longer_than_wait_s() -> None:
    """No request waits on another's renewal for good (`RENEWAL_WAIT_S`): one stuck (say
    behind a lock) is given up on, and the stuck one still lands."""
    budget, stuck, shared = LocalBudget(wait_s=0.05), asyncio.Event(), 0

    async def reserve(want: int) -> int:
        nonlocal shared
        shared += want
        count = shared
        if count == 1:  # the first renewal is stuck until the test lets it go
            await stuck.wait()
        return count

    first = asyncio.create_task(budget.admit("key:k:read", LIMIT, T0, reserve))
    await asyncio.sleep(0)  # one turn of the loop: the first request is renewing
    second = await asyncio.wait_for(budget.admit("key:k:read", LIMIT, T0, reserve), timeout=10)
    assert second.allowed
    assert not first.done()
    stuck.set()
    assert (await first).allowed
