"""FastAPI dependencies shared by every router: the runtime, a connection, the caller.

`current_user` is THE authentication gate (session cookie, `Authorization: Bearer`, `x-api-key`);
routers never look at credentials themselves. Resource routers depend on `current_user` and
scope every query by `principal.user_id`: another user's resource is a 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.api.errors import ApiError
from cronicorn.runtime import Runtime


@dataclass(frozen=True)
class Principal:
    user_id: str
    is_admin: bool
    via: Literal["session", "bearer", "api_key"]
    credential_id: str  # session id or API key id (rate limits are keyed by it)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_conn(
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> AsyncIterator[AsyncConnection]:
    """One transaction per request: committed on success, rolled back on any error."""
    async with runtime.engine.begin() as conn:
        yield conn


async def current_user(request: Request) -> Principal:
    """Authenticate the caller or raise 401. Implemented by the accounts work (auth/)."""
    raise ApiError(401, "Authentication required: session cookie, Bearer token or x-api-key")


async def require_admin(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "Administrator rights required")
    return principal


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ConnDep = Annotated[AsyncConnection, Depends(get_conn)]
UserDep = Annotated[Principal, Depends(current_user)]
AdminDep = Annotated[Principal, Depends(require_admin)]
