"""`cronicorn audit`: the audit log for operators (every user's changes), newest first."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.commands.common import fail
from cronicorn.commands.users import run_db
from cronicorn.store import audit as audit_store
from cronicorn.store.audit import ENTITIES, Entry


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: not an ISO-8601 date or date-time: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _json(e: Entry) -> dict[str, object]:
    return {
        "id": str(e.id),
        "at": e.at.isoformat(),
        "actor": {"kind": e.actor_kind, "id": e.actor_id, "name": e.actor_name},
        "owner": e.user_id,
        "action": e.action,
        "entity": e.entity,
        "entityId": e.entity_id,
        "changes": e.changes,
        "requestId": e.request_id,
    }


def _line(e: Entry) -> str:
    actor = e.actor_kind + (f":{e.actor_name or e.actor_id}" if e.actor_name or e.actor_id else "")
    fields = ", ".join(sorted(e.changes)) or "-"
    at = e.at.isoformat(timespec="seconds")
    return f"{e.id}  {at}  {actor}  {e.action} {e.entity} {e.entity_id}  [{fields}]"


def audit(
    entity: str | None = typer.Option(None, "--entity", help=f"One of: {', '.join(ENTITIES)}."),
    entity_id: str | None = typer.Option(None, "--entity-id", help="The changed thing's id."),
    actor: str | None = typer.Option(
        None,
        "--actor",
        help="Actor kind (user, api_key, device, planner, rule, system), id or name.",
    ),
    owner: str | None = typer.Option(None, "--owner", help="Only this user's things (user id)."),
    since: str | None = typer.Option(None, "--since", help="ISO-8601 date or date-time (UTC)."),
    before: str | None = typer.Option(None, "--before", help="Entries with an id below this."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document with the entries."),
) -> None:
    """Show who changed what (jobs, endpoints, hints, pauses, rules, channels, keys, users,
    backups), newest first. Page with --before <last id shown>."""
    if entity is not None and entity not in ENTITIES:
        fail(f"--entity must be one of: {', '.join(ENTITIES)}")
    if before is not None and not (before.isascii() and before.isdigit()):
        fail("--before takes an entry id (digits)")
    filters = audit_store.Filters(
        owner=owner,
        entity=entity,
        entity_id=entity_id,
        actor=actor,
        since=_when(since, "--since"),
    )

    async def work(engine: AsyncEngine) -> list[Entry]:
        async with engine.connect() as conn:
            return await audit_store.list_entries(
                conn, filters, before_id=int(before) if before else None, limit=limit
            )

    entries = run_db(work)
    if as_json:
        typer.echo(json.dumps({"entries": [_json(e) for e in entries]}, indent=2, default=str))
        return
    for e in entries:
        typer.echo(_line(e))
