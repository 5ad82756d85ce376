"""Endpoints for every face (`/api/jobs/{jobId}/endpoints`, the endpoint pages, the MCP
endpoint tools): add, read, list, edit, archive, delete.

A URL passes the dispatcher's SSRF check whenever it is set (`services/urls`), so a URL that
could never run is refused now rather than failing every run later; the store checks the
whole row (`domain/endpoint_config`), the quotas, and plans and wakes the schedulers. Config
and changes are snake_case, as the request models dump them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.dispatch import Dispatcher
from cronicorn.domain import Quotas
from cronicorn.services.urls import ensure_url_allowed
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store.endpoints import EndpointRow


async def create_endpoint(
    conn: AsyncConnection,
    user_id: str,
    job_id: str,
    config: Mapping[str, Any],
    now: datetime,
    *,
    dispatcher: Dispatcher,
    quotas: Quotas,
) -> EndpointRow:
    """Add an endpoint to the caller's live job; its first run is planned now."""
    await ensure_url_allowed(dispatcher, config["url"])
    return await endpoint_store.create(conn, user_id, job_id, dict(config), now, quotas=quotas)


async def get_endpoint(
    conn: AsyncConnection, user_id: str, endpoint_id: str, *, job_id: str | None = None
) -> EndpointRow:
    """The caller's endpoint; with `job_id` it must also be that job's (else `NotFound`)."""
    return await endpoint_store.get(conn, user_id, endpoint_id, job_id=job_id)


async def list_endpoints(conn: AsyncConnection, user_id: str, job_id: str) -> list[EndpointRow]:
    """Every endpoint of the caller's job, archived ones included, oldest first."""
    return await endpoint_store.list_for_job(conn, user_id, job_id)


async def update_endpoint(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    changes: Mapping[str, Any],
    now: datetime,
    *,
    dispatcher: Dispatcher,
    quotas: Quotas,
    job_id: str | None = None,
) -> EndpointRow:
    """Only the fields given change (None clears one); replanned when the schedule moves.
    An endpoint that is not the caller's (or not `job_id`'s) is `NotFound` before its new
    URL is looked at."""
    await endpoint_store.get(conn, user_id, endpoint_id, job_id=job_id)
    if changes.get("url") is not None:
        await ensure_url_allowed(dispatcher, changes["url"])
    return await endpoint_store.update_config(
        conn, user_id, endpoint_id, dict(changes), now, job_id=job_id, quotas=quotas
    )


async def archive_endpoint(
    conn: AsyncConnection, user_id: str, endpoint_id: str, now: datetime, *, job_id: str
) -> EndpointRow:
    """Soft delete: it stops running, its runs stay readable. Idempotent."""
    return await endpoint_store.archive(conn, user_id, endpoint_id, now, job_id=job_id)


async def delete_endpoint(
    conn: AsyncConnection, user_id: str, endpoint_id: str, *, job_id: str
) -> None:
    """For good, with its runs and AI sessions."""
    await endpoint_store.delete_endpoint(conn, user_id, endpoint_id, job_id=job_id)
