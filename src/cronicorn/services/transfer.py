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

from pydantic import ValidationError
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
    TransferEndpoint,
    TransferJob,
    TransferNotify,
)
from cronicorn.store import channels as channel_store
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
class _Named:
    """Export side of `notify`: channel ids become names; the channels named are listed
    (name and kind only: a channel's URL holds secrets and never leaves)."""

    def __init__(self, channels: list[channel_store.Channel], stored: dict[str, Any]) -> None:
        self.channels = {c.id: c for c in channels}
        self.stored = stored
        self.used: dict[str, channel_store.Channel] = {}

    def notify(self, key: str) -> dict[str, Any] | None:
        value = self.stored.get(key)
        if not isinstance(value, dict):
            return None
        ids = value.get("channels")
        if not isinstance(ids, list):
            ids = []
        named = [self.channels[i] for i in ids if isinstance(i, str) and i in self.channels]
        self.used.update((c.id, c) for c in named)
        try:  # a deleted channel is left out; a hand-written malformed value is not exported
            model = TransferNotify.model_validate({**value, "channels": [c.name for c in named]})
        except ValidationError:
            return None
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)

    def listed(self) -> list[dict[str, str]]:
        return [
            {"name": c.name, "kind": c.kind}
            for c in sorted(self.used.values(), key=lambda c: c.name.lower())
        ]


async def export_document(conn: AsyncConnection, user_id: str, now: datetime) -> dict[str, Any]:
    """Non-archived jobs and their non-archived endpoints, unset fields left out; `notify`
    settings name their channels, listed under `channels` (name and kind only)."""
    named = _Named(
        await channel_store.list_for(conn, user_id), await channel_store.all_notify(conn, user_id)
    )
    jobs_out = []
    for job, _count in reversed(await job_store.list_with_counts(conn, user_id)):
        if job.status == "archived":
            continue
        rows = await endpoint_store.list_for_job(conn, user_id, job.id)
        endpoints = [
            _with_notify(
                EndpointCreate.model_validate(
                    {camel(k): v for k, v in config_of(row).items()}
                ).model_dump(mode="json", by_alias=True, exclude_none=True),
                named.notify(row.id),
            )
            for row in rows
            if row.archived_at is None
        ]
        entry: dict[str, Any] = {"name": job.name, "status": job.status, "aiMode": job.ai_mode}
        _with_notify(entry, named.notify(job.id))
        entry["endpoints"] = endpoints
        if job.description is not None:
            entry["description"] = job.description
        jobs_out.append(entry)
    doc: dict[str, Any] = {"version": 1, "exportedAt": iso_ms(now)}
    if channels := named.listed():
        doc["channels"] = channels
    doc["jobs"] = jobs_out
    return doc


def _with_notify(entry: dict[str, Any], notify: dict[str, Any] | None) -> dict[str, Any]:
    if notify is not None:
        entry["notify"] = notify
    return entry


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
    channel_ids = await _channel_ids(conn, user_id, doc)
    report = ImportReport(
        dry_run=dry_run, created=Tally(), updated=Tally(), unchanged=Tally(), actions=[]
    )
    try:
        async with conn.begin_nested():
            await endpoint_store.lock_all_of(conn, user_id)
            for index, job in enumerate(doc.jobs):
                await _import_job(conn, user_id, job, index, now, report, quotas, channel_ids)
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


def _references(doc: TransferDocument) -> list[tuple[str, str]]:
    """(path, channel name) of every channel the document's `notify` settings name."""
    found: list[tuple[str, str]] = []
    for i, job in enumerate(doc.jobs):
        if job.notify is not None:
            found += [(f"jobs.{i}.notify.channels", name) for name in job.notify.channels]
        for j, endpoint in enumerate(job.endpoints):
            if endpoint.notify is not None:
                path = f"jobs.{i}.endpoints.{j}.notify.channels"
                found += [(path, name) for name in endpoint.notify.channels]
    return found


async def _channel_ids(
    conn: AsyncConnection, user_id: str, doc: TransferDocument
) -> dict[str, str]:
    """The importing user's channel ids by (lower-cased) name; every name the document uses
    must be one of them, else the whole document is refused (422) with all missing names:
    channels are not exported (their URLs hold secrets), so they are created first."""
    references = _references(doc)
    if not references:
        return {}
    ids = {c.name.lower(): c.id for c in await channel_store.list_for(conn, user_id)}
    missing = [(path, name) for path, name in references if name.lower() not in ids]
    if missing:
        kinds = {c.name.lower(): c.kind for c in doc.channels if c.kind}
        names = ", ".join(
            repr(n) + (f" ({kinds[n.lower()]})" if n.lower() in kinds else "")
            for n in dict.fromkeys(name for _, name in missing)
        )
        raise Invalid(
            missing[0][0],
            f"no channel named {names} in this account: channels are not exported (their "
            "URLs hold secrets); create them under these names first, then import again",
        )
    return ids


def _stored_notify(notify: TransferNotify | None, ids: dict[str, str]) -> dict[str, Any] | None:
    """The document's settings as `jobs.notify` / `endpoints.notify` hold them (ids)."""
    if notify is None:
        return None
    channels = list(dict.fromkeys(ids[name.lower()] for name in notify.channels))
    return {**notify.stored(), "channels": channels}


async def _sync_notify(
    conn: AsyncConnection,
    user_id: str,
    kind: str,
    key: str,
    notify: TransferNotify | None,
    ids: dict[str, str],
    now: datetime,
) -> bool:
    """Make the row's `notify` exactly the document's (absent: none); True if it changed."""
    desired = _stored_notify(notify, ids)
    if await channel_store.read_notify(conn, user_id, kind, key) == desired:
        return False
    await channel_store.write_notify(conn, user_id, kind, key, desired, now)
    return True


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
    channel_ids: dict[str, str],
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
    changed_notify = await _sync_notify(conn, user_id, "job", job_id, job.notify, channel_ids, now)
    if changed_notify and action != "create":
        changes.append("notify")
    current_status = existing.status if existing is not None else "active"
    if job.status != current_status:
        changes.append("status")
    if changes and action == "unchanged":
        action = "update"
    _tally(report, Action(kind="job", job=job.name, name=job.name, action=action, changes=changes))
    for j, endpoint in enumerate(job.endpoints):
        try:
            await _import_endpoint(
                conn, user_id, job_id, job.name, endpoint, now, report, quotas, channel_ids
            )
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
    endpoint: TransferEndpoint,
    now: datetime,
    report: ImportReport,
    quotas: Quotas,
    channel_ids: dict[str, str],
) -> None:
    desired = endpoint.model_dump()
    desired = {name: desired.get(name, DEFAULTS.get(name)) for name in CONFIG_FIELDS}
    # As stored under the interval quota, so a second import of the same file is a no-op.
    desired = endpoint_store.apply_interval_quota(desired, quotas)
    existing = await endpoint_store.find_live_by_name(conn, user_id, job_id, endpoint.name)
    if existing is None:
        row = await endpoint_store.create(conn, user_id, job_id, desired, now, quotas=quotas)
        await _sync_notify(conn, user_id, "endpoint", row.id, endpoint.notify, channel_ids, now)
        action, changed = "create", []
    else:
        current = config_of(existing)
        diff = {k: v for k, v in desired.items() if v != current[k]}
        if diff:
            await endpoint_store.update_config(conn, user_id, existing.id, diff, now, quotas=quotas)
        changed = [camel(k) for k in diff]
        key = existing.id
        if await _sync_notify(conn, user_id, "endpoint", key, endpoint.notify, channel_ids, now):
            changed.append("notify")
        action = "update" if changed else "unchanged"
    _tally(
        report,
        Action(kind="endpoint", job=job_name, name=endpoint.name, action=action, changes=changed),
    )
