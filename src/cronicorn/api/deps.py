"""FastAPI dependencies shared by every router: the runtime, a connection, the caller.

`current_user` is THE authentication gate (session cookie, `Authorization: Bearer`, `x-api-key`);
routers never look at credentials themselves. Resource routers depend on `current_user` and
scope every query by `principal.user_id`: another user's resource is a 404.

One connection per request. `current_user` authenticates and counts the request against the
rate limit in one statement, in autocommit mode on the request's connection, before the
route's transaction begins: the counter's row lock lasts one statement, and a request that
later fails still counts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.routing import Mount

from cronicorn.api.cookies import CSRF_HEADER, session_cookies, session_token
from cronicorn.api.errors import ApiError
from cronicorn.api.ratelimit import Verdict, access_of, budget_for, limiter_for
from cronicorn.api.security import add_response_header
from cronicorn.auth import credentials
from cronicorn.auth.tokens import csrf_token, hash_token, is_api_key, same_secret
from cronicorn.domain import Quotas
from cronicorn.runtime import Runtime
from cronicorn.store import rate_limits
from cronicorn.store.audit import actor_of, set_actor
from cronicorn.store.credential_cache import CredentialCache, Entry, Kind
from cronicorn.store.rate_limits import window_start
from cronicorn.store.read_pool import ReadPool

Clock = Callable[[], datetime]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
AUTOCOMMIT = "AUTOCOMMIT"
READ_POOL_MAX = 8  # connections per process for `listing` routes (besides the engine's)
UNAUTHORIZED = "Authentication required: session cookie, Bearer token or x-api-key"


@dataclass(frozen=True)
class Principal:
    user_id: str
    is_admin: bool
    via: Literal["session", "bearer", "api_key"]
    credential_id: str  # session id or API key id (rate limits are keyed by it)


def utcnow() -> datetime:
    return datetime.now(UTC)


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hand-off per request for a dictionary lookup.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_clock(request: Request) -> Clock:
    """The app's clock (`set_clock` in tests), else the wall clock."""
    return clock_of(request)


def clock_of(request: Request) -> Clock:
    clock: Clock = getattr(request.app.state, "clock", utcnow)
    return clock


def set_clock(app: FastAPI, clock: Clock) -> None:
    """Drive time for the app and every FastAPI app mounted in it (tests, simulations)."""
    app.state.clock = clock
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, FastAPI):
            set_clock(route.app, clock)


async def get_conn(
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> AsyncIterator[AsyncConnection]:
    """One connection per request: committed on success, rolled back on any error."""
    async with runtime.engine.connect() as conn:
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()


async def get_read_conn(
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> AsyncIterator[AsyncConnection]:
    """One autocommitted connection for a route that runs ONE read statement (lists): the
    gate's statement and the route's then cost one round trip each, with no BEGIN and no
    COMMIT around the read. Under READ COMMITTED a single statement sees the same snapshot
    either way. Never for a route that writes or reads twice and needs them to agree."""
    async with runtime.engine.connect() as conn:
        await conn.execution_options(isolation_level=AUTOCOMMIT)
        yield conn


def _credential(request: Request) -> tuple[str, credentials.Via] | None:
    """The secret the caller sent and how. Explicit headers win over the cookie: a caller
    that sends a key means that key (a malformed `Authorization` means no credential)."""
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        return api_key, "api_key"
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    if scheme:
        if scheme.lower() == "bearer" and bearer.strip():
            return bearer.strip(), "bearer"
        return None
    cookie = session_token(request)
    return None if cookie is None else (cookie, "session")


async def _identify(
    request: Request, conn: AsyncConnection, runtime: Runtime, now: datetime, isolated: bool
) -> _Caller:
    sent = _credential(request)
    caller: _Caller | None = None
    if sent is not None:
        secret, via = sent
        caller = await _authenticate(request, conn, runtime, now, secret, via, isolated)
    if caller is None or sent is None:
        raise ApiError(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    secret, via = sent
    if via == "session":
        identity = caller.identity
        _check_csrf(request, runtime, secret)
        if identity.refreshed and identity.expires_at is not None:
            _resend_cookies(request, runtime, secret, identity.expires_at, now)
    return caller


@dataclass(frozen=True)
class _Caller:
    identity: credentials.Identity
    verdict: Verdict  # this request against the credential's rate limit


async def _authenticate(
    request: Request,
    conn: AsyncConnection,
    runtime: Runtime,
    now: datetime,
    secret: str,
    via: credentials.Via,
    isolated: bool,
) -> _Caller | None:
    """From the process's credential cache when it holds the credential and is current
    (`store.credential_cache`: no lookup, the request counted against the local budget),
    else the one-statement lookup and count, remembered for the next requests."""
    kind = _kind_of(secret, via)
    token_hash = hash_token(secret)
    cache = credential_cache_for(request, runtime)
    access = access_of(request.method)
    limit = _limit_of(runtime, access)
    cached = await _from_cache(request, conn, cache, token_hash, kind, via, limit, now, isolated)
    if cached is not None:
        return cached
    generation = await cache.generation()
    identity = await credentials.authenticate(
        conn,
        secret,
        via=via,
        access=access,
        now=now,
        ttl=timedelta(days=runtime.settings.session_ttl_days),
        async_commit=isolated,
    )
    if identity is None:
        return None
    bucket = _bucket(kind, identity.credential_id, identity.user_id, access)
    verdict = budget_for(request).granted(bucket, limit, now, identity.count, 1)
    entry = Entry(
        kind,
        identity.credential_id,
        identity.user_id,
        identity.is_admin,
        identity.expires_at,
        now,
        time.monotonic(),
    )
    cache.remember(token_hash, entry, generation)
    return _Caller(identity, verdict)


async def _from_cache(
    request: Request,
    conn: AsyncConnection,
    cache: CredentialCache,
    token_hash: str,
    kind: Kind,
    via: credentials.Via,
    limit: int,
    now: datetime,
    isolated: bool,
) -> _Caller | None:
    """The cached credential once the cache is known current, counted against the local
    budget (an upsert only when the process's reservation runs out); None: look it up."""
    entry = await _current_entry(cache, token_hash, kind, now)
    if entry is None:
        return None
    bucket = _bucket(entry.kind, entry.credential_id, entry.user_id, access_of(request.method))
    window = window_start(now)

    def reserve(want: int) -> Awaitable[int]:
        return rate_limits.reserve(conn, bucket, window, want, async_commit=isolated)

    # In a transaction (not `isolated`) the connection may hold locks: no waiting on others.
    verdict = await budget_for(request).admit(bucket, limit, now, reserve, wait=isolated)
    via_now: credentials.Via = "api_key" if kind == "api_key" else via
    identity = credentials.Identity(
        entry.user_id, entry.is_admin, via_now, entry.credential_id, entry.expires_at
    )
    return _Caller(identity, verdict)


def _kind_of(secret: str, via: credentials.Via) -> Kind:
    is_key = via == "api_key" or (via == "bearer" and is_api_key(secret))  # as `credentials`
    return "api_key" if is_key else "session"


async def _current_entry(
    cache: CredentialCache, token_hash: str, kind: Kind, now: datetime
) -> Entry | None:
    """The cached entry, once every change committed before this call has reached it."""
    if cache.lookup(token_hash, now) is None or not await cache.current():
        return None
    entry = cache.lookup(token_hash, now)  # a change that came in emptied the cache
    return entry if entry is not None and entry.kind == kind else None


async def gate_from_cache(
    request: Request, runtime: Runtime, pool: ReadPool | None = None
) -> Principal | None:
    """The gate with no database connection, for reads: the credential cached and current,
    the request admitted (or refused, 429) from the local budget, no prune due. None when
    any of that needs the database: then the full gate (`_gate`) decides. The one cached
    gate: the dependencies call it, and so does `api.fast_lists` before the framework.

    With `pool`, a spent reservation is renewed by one autocommitted statement on it (as
    `_from_cache` renews it on the gate's connection) instead of returning None: under
    load that was ~3 % of the fast path's requests sent the framework's way, its p99 tail.
    A failed renewal returns None; the full gate then reserves again. Either way a request
    that finds the reservation spent while another renews it waits for that renewal
    (`LocalBudget.settle`: no connection held, none needed) instead of renewing too."""
    if request.method.upper() not in SAFE_METHODS:  # writes: CSRF, audit actor, a transaction
        return None
    sent = _credential(request)
    if sent is None:
        return None
    secret, via = sent
    now = clock_of(request)()
    kind = _kind_of(secret, via)
    entry = await _current_entry(
        credential_cache_for(request, runtime), hash_token(secret), kind, now
    )
    if entry is None or limiter_for(request).prune_due():
        return None
    access = access_of(request.method)
    bucket = _bucket(kind, entry.credential_id, entry.user_id, access)
    budget, limit = budget_for(request), _limit_of(runtime, access)
    verdict = await budget.settle(bucket, limit, now)
    if verdict is None:
        if pool is None:
            return None
        window = window_start(now)

        def reserve(want: int) -> Awaitable[int]:
            return rate_limits.reserve_autocommitted(pool, bucket, window, want)

        try:
            verdict = await budget.admit(bucket, limit, now, reserve)
        except DBAPIError:
            return None
    _admit(request, verdict)
    via_now: credentials.Via = "api_key" if kind == "api_key" else via
    return Principal(entry.user_id, entry.is_admin, via_now, entry.credential_id)


def _bucket(kind: Kind, credential_id: str, user_id: str, access: str) -> str:
    """The counter `store.auth_gate` bumps: each key its own, sessions their user's."""
    if kind == "api_key":
        return f"key:{credential_id}:{access}"
    return f"user:{user_id}:{access}"


def _limit_of(runtime: Runtime, access: str) -> int:
    settings = runtime.settings
    return settings.rate_limit_read_rpm if access == "read" else settings.rate_limit_write_rpm


def credential_cache_for(request: Request, runtime: Runtime) -> CredentialCache:
    """The app's credential cache (one per app and process, made on first use)."""
    cache: CredentialCache | None = getattr(request.app.state, "credential_cache", None)
    if cache is None:
        cache = request.app.state.credential_cache = CredentialCache(runtime.database_url)
    return cache


async def close_credential_cache(app: FastAPI) -> None:
    """Close the cache's listening connection, if one was made (process shutdown)."""
    cache: CredentialCache | None = getattr(app.state, "credential_cache", None)
    if cache is not None:
        await cache.close()


def _check_csrf(request: Request, runtime: Runtime, token: str) -> None:
    """Cookie-authenticated writes must echo the session's CSRF token in `X-CSRF-Token`."""
    if request.method.upper() in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    expected = csrf_token(runtime.auth_secret, token)
    if not sent or not same_secret(sent, expected):
        raise ApiError(
            403,
            "Missing or wrong X-CSRF-Token header (copy it from the cronicorn_csrf cookie)",
            code="csrf_failed",
        )


def _resend_cookies(
    request: Request, runtime: Runtime, token: str, expires_at: datetime, now: datetime
) -> None:
    csrf = csrf_token(runtime.auth_secret, token)
    for value in session_cookies(runtime.settings, token, csrf, expires_at, now):
        add_response_header(request, "set-cookie", value)


async def _limit(request: Request, conn: AsyncConnection, caller: _Caller, now: datetime) -> None:
    """Refuse with 429 and Retry-After once the budget is spent; else add the headers."""
    await limiter_for(request).maybe_prune(conn, now)
    _admit(request, caller.verdict)


def _admit(request: Request, verdict: Verdict) -> None:
    if not verdict.allowed:
        raise ApiError(
            429,
            f"Too many requests: at most {verdict.limit} per minute; retry in {verdict.reset_s} s",
            details={"retryAfter": verdict.reset_s},
            headers=verdict.headers(),
        )
    for name, value in verdict.headers().items():
        add_response_header(request, name, value)


async def optional_identity(
    request: Request, conn: AsyncConnection, runtime: Runtime
) -> credentials.Identity | None:
    """The caller's identity, or None where `current_user` would answer 401 (for routes
    such as `get-session` that answer anonymous callers too; the request is counted but
    not refused by the rate limit)."""
    try:
        async with _autocommit(conn) as isolated:
            caller = await _identify(request, conn, runtime, clock_of(request)(), isolated)
            return caller.identity
    except ApiError as exc:
        if exc.status == 401:
            return None
        raise


async def current_user(
    request: Request,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    conn: Annotated[AsyncConnection, Depends(get_conn, scope="function")],
) -> Principal:
    """Authenticate the caller (401 otherwise), check CSRF for cookie writes, count the
    request against the caller's rate limit (429 with Retry-After once it is spent)."""
    return await gate_from_cache(request, runtime) or await _gate(request, runtime, conn)


async def current_reader(
    request: Request,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    conn: Annotated[AsyncConnection, Depends(get_read_conn, scope="function")],
) -> Principal:
    """`current_user` on the read route's autocommitted connection (`get_read_conn`)."""
    return await gate_from_cache(request, runtime) or await _gate(request, runtime, conn)


@dataclass(frozen=True)
class Listing:
    """The caller of a one-statement read route, and the process's `ReadPool` to run it on."""

    user: Principal
    pool: ReadPool


async def listing(request: Request) -> Listing:
    """The gate for the hottest reads (issue 17): from the credential cache with no engine
    connection when it can (`gate_from_cache`, a spent reservation renewed on the read
    pool), else the full gate on an autocommitted connection; the route then runs its one
    statement on the read pool, not SQLAlchemy."""
    runtime: Runtime = request.app.state.runtime
    pool = read_pool_for(request, runtime)
    user = await gate_from_cache(request, runtime, pool)
    if user is None:
        async with runtime.engine.connect() as conn:
            await conn.execution_options(isolation_level=AUTOCOMMIT)
            user = await _gate(request, runtime, conn)
    return Listing(user, pool)


def read_pool_for(request: Request, runtime: Runtime) -> ReadPool:
    """The app's read pool (one per app and process, made on first use)."""
    return read_pool_of(request.app, runtime)


def read_pool_of(app: FastAPI, runtime: Runtime) -> ReadPool:
    """`app`'s read pool (the API's, also for `/api/health`'s probe before the framework)."""
    pool: ReadPool | None = getattr(app.state, "read_pool", None)
    if pool is None:
        settings = runtime.settings
        pool = app.state.read_pool = ReadPool(
            runtime.database_url,
            min(settings.db_pool_size, READ_POOL_MAX),
            application_name="cronicorn-api",
            connect_timeout_s=settings.db_connect_timeout_s,
        )
    return pool


async def close_read_pool(app: FastAPI) -> None:
    """Close the read pool's connections, if any were made (process shutdown)."""
    pool: ReadPool | None = getattr(app.state, "read_pool", None)
    if pool is not None:
        await pool.close()


async def _gate(request: Request, runtime: Runtime, conn: AsyncConnection) -> Principal:
    now = clock_of(request)()
    async with _autocommit(conn) as isolated:
        caller = await _identify(request, conn, runtime, now, isolated)
        await _limit(request, conn, caller, now)
    identity = caller.identity
    if request.method.upper() not in SAFE_METHODS:  # the audit triggers name this actor
        await set_actor(conn, actor_of(identity.via, identity.credential_id, identity.user_id))
    return Principal(identity.user_id, identity.is_admin, identity.via, identity.credential_id)


@contextlib.asynccontextmanager
async def _autocommit(conn: AsyncConnection) -> AsyncIterator[bool]:
    """Run the gate's statements in autocommit: each commits as it ends, so the rate-limit
    counter row (shared by every request of one credential) is locked only while the
    statement runs, not for a further round trip. The route then gets a transaction again.
    (If a dependency already opened a transaction, the gate simply joins it; on a connection
    already in autocommit, `get_read_conn`, there is nothing to switch.)"""
    sync = conn.sync_connection
    if sync is not None and sync.get_execution_options().get("isolation_level") == AUTOCOMMIT:
        yield True
        return
    if conn.in_transaction():
        yield False
        return
    await conn.execution_options(isolation_level=AUTOCOMMIT)
    try:
        yield True
    finally:
        await conn.commit()  # ends SQLAlchemy's bookkeeping; nothing is pending
        await conn.execution_options(isolation_level=conn.default_isolation_level)


async def require_admin(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "Administrator rights required")
    return principal


async def require_session(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
    """Only a signed-in browser (cookie) may do this: approving devices, for instance."""
    if principal.via != "session":
        raise ApiError(403, "This action needs a browser session (sign in on the web page)")
    return principal


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

# scope="function": commit BEFORE the response is sent. FastAPI's default for yield
# dependencies runs the exit code after the response, so a client could be told 201 while the
# row is not yet (or never) committed.
ConnDep = Annotated[AsyncConnection, Depends(get_conn, scope="function")]
UserDep = Annotated[Principal, Depends(current_user)]
# A read-only route with one statement: `ReadConnDep` and `ReaderDep` together (same connection).
ReadConnDep = Annotated[AsyncConnection, Depends(get_read_conn, scope="function")]
ReaderDep = Annotated[Principal, Depends(current_reader)]
# The caller and the read pool (`listing`): the cheapest gate, for the hottest list routes.
ListingDep = Annotated[Listing, Depends(listing)]
AdminDep = Annotated[Principal, Depends(require_admin)]
SessionDep = Annotated[Principal, Depends(require_session)]
ClockDep = Annotated[Clock, Depends(get_clock)]


async def get_quotas(runtime: RuntimeDep) -> Quotas:
    """The operator's per-user quotas (QUOTA_*; all off by default)."""
    return runtime.settings.quotas


QuotasDep = Annotated[Quotas, Depends(get_quotas)]
