"""`backup prune`: apply the retention plan to the backup directory.

A backup is first renamed to a hidden `.NAME.deleting` and only then removed, so a deletion
cut short never leaves something that looks like a whole backup. Damaged backups (unreadable
manifest) are never deleted automatically: an operator should look at them. Leftovers of
crashed backups (`.NAME.partial`) are removed when no backup is running and they are old.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cronicorn.backup import catalog, pg
from cronicorn.backup.context import BackupContext
from cronicorn.backup.errors import BackupBusy
from cronicorn.backup.layout import partials, scan
from cronicorn.backup.restore import pending_restore, safety_backups
from cronicorn.backup.retention import Candidate, Plan, Policy, plan

STALE_PARTIAL_S = 3600


@dataclass(frozen=True)
class Pruned:
    plan: Plan
    deleted: list[str]
    damaged: list[str]
    leftovers: list[str]
    dry_run: bool


def candidates(backup_dir: Path) -> tuple[list[Candidate], list[str]]:
    found, damaged = [], []
    for entry in scan(backup_dir):
        if entry.manifest is None:
            damaged.append(entry.name)
            continue
        check = entry.manifest.verification
        found.append(Candidate(entry.name, entry.manifest.created_at, bool(check and check.ok)))
    return found, damaged


def prune(
    ctx: BackupContext,
    policy: Policy,
    *,
    dry_run: bool = False,
    lock: pg.BackupLock | None = None,
) -> Pruned:
    found, damaged = candidates(ctx.backup_dir)
    pinned = frozenset(safety_backups(pending_restore(ctx.backup_dir)))
    result = plan(found, policy, pinned)
    if dry_run:
        return Pruned(result, [], damaged, [], dry_run=True)
    deleted = [name for name in result.delete if _remove(ctx.backup_dir, name)]
    catalog.forget(ctx.database_url, deleted)
    leftovers = _remove_leftovers(ctx, lock)
    return Pruned(result, deleted, damaged, leftovers, dry_run=False)


def _remove(root: Path, name: str) -> bool:
    doomed = root / f".{name}.deleting"
    try:
        os.rename(root / name, doomed)
    except FileNotFoundError:
        return False
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def _remove_leftovers(ctx: BackupContext, lock: pg.BackupLock | None) -> list[str]:
    removed: list[str] = []
    cutoff = time.time() - STALE_PARTIAL_S
    with contextlib.suppress(BackupBusy), pg.backup_lock(ctx.database_url, lock):
        for path in partials(ctx.backup_dir):
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        for path in ctx.backup_dir.glob(".*.deleting"):
            shutil.rmtree(path, ignore_errors=True)
    return removed
