"""Import and export: a user's jobs and endpoints as one document, for every face (`GET
/api/export`, `POST /api/import`, `cronicorn export`/`import`, the dashboard, MCP).

Import is idempotent: jobs are matched by name (non-archived), endpoints by name within their
job; a match is updated to exactly the document's configuration (absent fields mean their
default), anything else is created, and nothing is ever deleted. The whole import is one
transaction: any invalid entry rejects the document with its path (`jobs.2.endpoints.0.url`).
A dry run does the same work inside a savepoint and rolls it back, so its report is exactly
what a real import would do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.dispatch import Dispatcher, url_refusal
from cronicorn.domain import NO_QUOTAS, Quotas
from cronicorn.schemas.common import camel, iso_ms
from cronicorn.schemas.endpoints import EndpointCreate
from cronicorn.schemas.transfer import (
    Action,
    ImportReport,
    Tally,
    TransferDocument,
    TransferJob,
)
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store.endpoints import CONFIG_FIELDS, DEFAULTS, config_of
from cronicorn.store.errors import Invalid

UrlCheck = Callable[[str], Awaitable[str | None]]
"""Returns why a URL is refused (SSRF guard), or None."""


def checked_by(dispatcher: Dispatcher) -> UrlCheck:
    """The dispatcher's SSRF guard as an import's URL check."""

    async def check(url: str) -> str | None:
        return await url_refusal(dispatcher, url)

    return check


class _Rollback(Exception):
    """Raised inside the dry-run savepoint to undo its writes."""


# -- export ---------------------------------------------------------------------------------
async def export_document(conn: AsyncConnection, user_id: str, now: datetime) -> dict[str, Any]:
    """Non-archived jobs and their non-archived endpoints, unset fields left out."""
    jobs_out = []
    for job, _count in reversed(await job_store.list_with_counts(conn, user_id)):
        if job.status == "archived":
            continue
        rows = await endpoint_store.list_for_job(conn, user_id, job.id)
        endpoints = [
            EndpointCreate.model_validate(
                {camel(k): v for k, v in config_of(row).items()}
            ).model_dump(mode="json", by_alias=True, exclude_none=True)
            for row in rows
            if row.archived_at is None
        ]
        entry: dict[str, Any] = {"name": job.name, "status": job.status, "aiMode": job.ai_mode}
        entry["endpoints"] = endpoints
        if job.description is not None:
            entry["description"] = job.description
        jobs_out.append(entry)
    return {"version": 1, "exportedAt": iso_ms(now), "jobs": jobs_out}


# -- import ---------------------------------------------------------------------------------
async def import_document(
    conn: AsyncConnection,
    user_id: str,
    doc: TransferDocument,
    now: datetime,
    *,
    check_url: UrlCheck,
    dry_run: bool = False,
    quotas: Quotas = NO_QUOTAS,
) -> ImportReport:
    """Apply the document in the caller's transaction (a savepoint rolled back if dry)."""
    await _check_urls(doc, check_url)
    report = ImportReport(
        dry_run=dry_run, created=Tally(), updated=Tally(), unchanged=Tally(), actions=[]
    )
    try:
        async with conn.begin_nested():
            await endpoint_store.lock_all_of(conn, user_id)
            for index, job in enumerate(doc.jobs):
                await _import_job(conn, user_id, job, index, now, report, quotas)
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass
    return report


async def _check_urls(doc: TransferDocument, check_url: UrlCheck) -> None:
    for i, job in enumerate(doc.jobs):
        for j, endpoint in enumerate(job.endpoints):
            reason = await check_url(endpoint.url)
            if reason is not None:
                raise Invalid(f"jobs.{i}.endpoints.{j}.url", f"URL not allowed: {reason}")


def _tally(report: ImportReport, action: Action) -> None:
    bucket = {"create": report.created, "update": report.updated, "unchanged": report.unchanged}
    tally = bucket[action.action]
    if action.kind == "job":
        tally.jobs += 1
    else:
        tally.endpoints += 1
    report.actions.append(action)


async def _import_job(
    conn: AsyncConnection,
    user_id: str,
    job: TransferJob,
    index: int,
    now: datetime,
    report: ImportReport,
    quotas: Quotas,
) -> None:
    existing = await job_store.find_by_name(conn, user_id, job.name)
    changes: list[str] = []
    if existing is None:
        job_id = (
            await job_store.create(
                conn,
                user_id,
                name=job.name,
                description=job.description,
                now=now,
                ai_mode=job.ai_mode,
            )
        ).id
        action = "create"
    else:
        job_id, action = existing.id, "unchanged"
        if existing.description != job.description:
            await job_store.update_fields(
                conn, user_id, job_id, {"description": job.description}, now
            )
            changes.append("description")
        if existing.ai_mode != job.ai_mode:
            await job_store.update_fields(conn, user_id, job_id, {"ai_mode": job.ai_mode}, now)
            changes.append("aiMode")
    current_status = existing.status if existing is not None else "active"
    if job.status != current_status:
        changes.append("status")
    if changes and action == "unchanged":
        action = "update"
    _tally(report, Action(kind="job", job=job.name, name=job.name, action=action, changes=changes))
    for j, endpoint in enumerate(job.endpoints):
        try:
            await _import_endpoint(conn, user_id, job_id, job.name, endpoint, now, report, quotas)
        except Invalid as exc:
            raise Invalid(f"jobs.{index}.endpoints.{j}.{camel(exc.field)}", exc.message) from None
    if job.status != current_status:
        await job_store.transition(conn, user_id, job_id, job.status, now)
        if job.status == "active":
            await endpoint_store.reschedule_job(conn, user_id, job_id, now)


async def _import_endpoint(
    conn: AsyncConnection,
    user_id: str,
    job_id: str,
    job_name: str,
    endpoint: EndpointCreate,
    now: datetime,
    report: ImportReport,
    quotas: Quotas,
) -> None:
    desired = endpoint.model_dump()
    desired = {name: desired.get(name, DEFAULTS.get(name)) for name in CONFIG_FIELDS}
    # As stored under the interval quota, so a second import of the same file is a no-op.
    desired = endpoint_store.apply_interval_quota(desired, quotas)
    existing = await endpoint_store.find_live_by_name(conn, user_id, job_id, endpoint.name)
    if existing is None:
        await endpoint_store.create(conn, user_id, job_id, desired, now, quotas=quotas)
        action, changed = "create", []
    else:
        current = config_of(existing)
        diff = {k: v for k, v in desired.items() if v != current[k]}
        if diff:
            await endpoint_store.update_config(conn, user_id, existing.id, diff, now, quotas=quotas)
        action = "update" if diff else "unchanged"
        changed = [camel(k) for k in diff]
    _tally(
        report,
        Action(kind="endpoint", job=job_name, name=endpoint.name, action=action, changes=changed),
    )
