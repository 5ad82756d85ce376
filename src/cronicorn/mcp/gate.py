"""Who is calling `/mcp`: the REST API's credentials (API key or Bearer token), its rate limits.

One MCP message is one HTTP request (stateless streamable HTTP), authenticated and counted like
a REST request by `auth.credentials` (the logic behind `api.deps.current_user`). A tool call
that writes counts against the write budget, everything else against the read budget, as a
POST or a GET would on `/api`. Session cookies are not accepted here: MCP clients send
headers, and a cookie-free endpoint needs no CSRF check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cronicorn.auth import credentials
from cronicorn.runtime import Runtime
from cronicorn.store.auth_gate import Access
from cronicorn.store.rate_limits import window_start

Clock = Callable[[], datetime]
WINDOW = timedelta(seconds=60)
UNAUTHORIZED = (
    "Authentication required: Authorization: Bearer <API key or device token>, or x-api-key"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Caller:
    """The authenticated user a tool acts for; every store call is scoped by `user_id`."""

    user_id: str
    is_admin: bool
    credential_id: str
    via: credentials.Via
    clock: Clock


@dataclass(frozen=True)
class Refusal:
    """Why the request was refused, as the API would answer it."""

    status: Literal[401, 429]
    message: str
    headers: dict[str, str]


def secret_of(headers: dict[str, str]) -> tuple[str, credentials.Via] | None:
    """The credential a client sent: `x-api-key` wins over `Authorization: Bearer`."""
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        return api_key, "api_key"
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), "bearer"
    return None


async def authenticate(
    runtime: Runtime, headers: dict[str, str], access: Access, clock: Clock
) -> Caller | Refusal:
    """The caller behind the headers, counted in its rate-limit window, or why not."""
    sent = secret_of(headers)
    if sent is None:
        return Refusal(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
    now = clock()
    async with runtime.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        identity = await credentials.authenticate(
            conn,
            sent[0],
            via=sent[1],
            access=access,
            now=now,
            ttl=timedelta(days=runtime.settings.session_ttl_days),
        )
    if identity is None:
        return Refusal(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
    settings = runtime.settings
    limit = settings.rate_limit_read_rpm if access == "read" else settings.rate_limit_write_rpm
    if identity.count > limit:
        reset = max(1, math.ceil((window_start(now) + WINDOW - now).total_seconds()))
        return Refusal(
            429,
            f"Too many requests: at most {limit} per minute; retry in {reset} s",
            {"Retry-After": str(reset)},
        )
    return Caller(identity.user_id, identity.is_admin, identity.credential_id, identity.via, clock)
