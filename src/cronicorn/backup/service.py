"""The one entry point the API may use (architecture rule: `api` imports no other backup
module). Plain data in and out; the blocking work runs in threads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cronicorn.backup import pg
from cronicorn.backup.context import BackupContext
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import BackupBusy, BackupError, BackupNotFound
from cronicorn.backup.layout import SAFE_NAME, Entry, free_name, scan
from cronicorn.backup.verify import VerifyReport, verify_backup
from cronicorn.logs import get_logger
from cronicorn.runtime import Runtime

__all__ = [
    "BackupBusy",
    "BackupError",
    "BackupNotFound",
    "list_backups",
    "start_backup",
    "summary",
    "verify",
]

log = get_logger("cronicorn.backup")
_RUNNING: set[asyncio.Task[None]] = set()


def summary(entry: Entry, now_ts: float) -> dict[str, Any]:
    """One backup as JSON (camelCase, like the rest of the API)."""
    m = entry.manifest
    if m is None:
        return {"name": entry.name, "problem": entry.problem}
    check = m.verification
    return {
        "name": m.name,
        "kind": m.kind,
        "format": m.format,
        "createdAt": m.created_at.isoformat(),
        "ageSeconds": max(0, round(now_ts - m.created_at.timestamp())),
        "sizeBytes": m.size_bytes,
        "revision": m.revision,
        "appVersion": m.app_version,
        "configIncluded": bool(m.config_files),
        "verified": check.ok if check else None,
        "verifiedAt": check.at.isoformat() if check else None,
        "offsiteUrl": m.offsite.url if m.offsite else None,
        "problem": None,
    }


def _context(runtime: Runtime) -> BackupContext:
    return BackupContext.from_settings(runtime.settings, runtime.database_url)


def list_backups(runtime: Runtime) -> list[dict[str, Any]]:
    ctx = _context(runtime)
    now = ctx.clock().timestamp()
    return [summary(entry, now) for entry in scan(ctx.backup_dir)]


async def start_backup(runtime: Runtime) -> str:
    """Take the lock now (BackupBusy if held), then dump in the background; the name is
    known up front so the caller can poll the list for it."""
    ctx = _context(runtime)
    lock = await asyncio.to_thread(pg.try_backup_lock, ctx.database_url)
    try:
        name = free_name(ctx.backup_dir, ctx.clock())
    except BaseException:
        pg.release_backup_lock(lock)
        raise
    task = asyncio.create_task(asyncio.to_thread(_create, ctx, name, lock))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return name


def _create(ctx: BackupContext, name: str, lock: pg.BackupLock) -> None:
    opts = CreateOptions(kind="manual", name=name, config_dir=Path.cwd(), require_config=False)
    try:
        create_backup(ctx, opts, lock=lock)
        log.info("backup_created", name=name, via="api")
    except BackupError as exc:
        log.error("backup_failed", name=name, via="api", error=str(exc))
    finally:
        pg.release_backup_lock(lock)


async def verify(runtime: Runtime, name: str, scratch: str | None = None) -> dict[str, Any]:
    """`scratch` (auto | server | embedded) overrides BACKUP_VERIFY_SCRATCH."""
    if not SAFE_NAME.match(name):
        raise BackupNotFound(f"no backup named {name!r}")
    ctx = _context(runtime)
    report: VerifyReport = await asyncio.to_thread(
        verify_backup, ctx, name, scratch=scratch or ctx.verify_scratch
    )
    return {
        "name": report.name,
        "ok": report.ok,
        "scratch": report.scratch,
        "at": report.at.isoformat(),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
    }
