"""The `backups` table: what processes sharing the database know about backups.

The backup directory (each manifest) is the truth; the table is an index for the API, the
health probe and other machines. Writes are best-effort: a backup complete on disk is not
undone because the index could not be updated (e.g. the database is at an older revision
without the `kind` column, or was just replaced by a restore, after which `sync` re-adds
what the directory holds).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.backup.manifest import Manifest
from cronicorn.errors import first_line
from cronicorn.logs import get_logger
from cronicorn.store.db import make_sync_engine
from cronicorn.store.migrate import current_revision, head_revision
from cronicorn.store.tables import backups, settings

log = get_logger("cronicorn.backup")

SLOT_KEY = "backup.last_scheduled_slot"


@contextlib.contextmanager
def _current_schema(url: str) -> Iterator[Connection | None]:
    """A transaction on the database, or None when its schema is not the code's head."""
    engine = make_sync_engine(url, application_name="cronicorn-backup")
    try:
        with engine.begin() as conn:
            yield conn if current_revision(conn) == head_revision() else None
    finally:
        engine.dispose()


def _row(manifest: Manifest, location: str) -> dict[str, Any]:
    verification = manifest.verification
    return {
        "name": manifest.name,
        "location": location,
        "format": manifest.format,
        "kind": manifest.kind,
        "created_at": manifest.created_at,
        "size_bytes": manifest.size_bytes,
        "revision": manifest.revision,
        "verified_at": verification.at if verification else None,
        "verify_ok": verification.ok if verification else None,
        "verify_report": verification.model_dump(mode="json") if verification else None,
        "offsite_url": manifest.offsite.url if manifest.offsite else None,
    }


def record(
    url: str, items: Iterable[tuple[Manifest, str]], *, same_location_only: bool = False
) -> bool:
    """Upsert backups (manifest, location); False when the index could not be written.

    `same_location_only`: an existing row is updated only if it describes the same location,
    so checking a copy elsewhere (`backup verify /some/copy`) never rewrites the entry of the
    backup in BACKUP_DIR that shares its name."""
    rows = [_row(manifest, location) for manifest, location in items]
    if not rows:
        return True
    try:
        with _current_schema(url) as conn:
            if conn is None:
                return False
            stmt = insert(backups).values(rows)
            excluded = {c: stmt.excluded[c] for c in rows[0] if c != "name"}
            where = backups.c.location == stmt.excluded.location if same_location_only else None
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["name"], set_=excluded, where=where)
            )
        return True
    except SQLAlchemyError as exc:
        log.warning("backup_catalog_not_updated", error=first_line(exc))
        return False


def forget(url: str, names: list[str]) -> None:
    if not names:
        return
    try:
        with _current_schema(url) as conn:
            if conn is not None:
                conn.execute(delete(backups).where(backups.c.name.in_(names)))
    except SQLAlchemyError as exc:
        log.warning("backup_catalog_not_updated", error=first_line(exc))


def claim_slot(conn: Connection, slot: datetime) -> bool:
    """Record `slot` as taken unless it (or a later one) already is: the caller holds the
    backup lock, so exactly one process wins each scheduled slot."""
    value = slot.isoformat()
    row = conn.execute(select(settings.c.value).where(settings.c.key == SLOT_KEY)).first()
    if row is not None and isinstance(row[0], str) and datetime.fromisoformat(row[0]) >= slot:
        return False
    if row is None:
        conn.execute(insert(settings).values(key=SLOT_KEY, value=value))
    else:
        conn.execute(
            update(settings)
            .where(settings.c.key == SLOT_KEY)
            .values(value=value, updated_at=func.now())
        )
    return True


def claim_scheduled_slot(url: str, slot: datetime) -> bool:
    engine = make_sync_engine(url, application_name="cronicorn-backup")
    try:
        with engine.begin() as conn:
            return claim_slot(conn, slot)
    finally:
        engine.dispose()


async def last_good(engine: AsyncEngine, *, verified_only: bool) -> datetime | None:
    """When the newest usable backup was made: verified ok, or (verification off) any
    completed one. Safety backups count: they are real backups too."""
    query = select(func.max(backups.c.created_at))
    if verified_only:
        query = query.where(backups.c.verify_ok.is_(True))
    async with engine.connect() as conn:
        value = (await conn.execute(query)).scalar()
    return value if isinstance(value, datetime) else None


async def newest_failed_verification(engine: AsyncEngine) -> dict[str, Any] | None:
    """The newest verified-or-failed backup, when its verification failed: its name and the
    failed checks (health's reason, until a newer backup verifies)."""
    query = (
        select(backups.c.name, backups.c.verify_ok, backups.c.verify_report)
        .where(backups.c.verify_ok.is_not(None))
        .order_by(backups.c.created_at.desc())
        .limit(1)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None or row[1] is not False:
        return None
    checks = row[2].get("checks", []) if isinstance(row[2], dict) else []
    reasons = [f"{c.get('name')}: {c.get('detail')}" for c in checks if c.get("ok") is False]
    return {"name": str(row[0]), "reason": "; ".join(reasons) or "verification failed"}
