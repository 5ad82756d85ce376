"""Shipping a finished backup to its off-site target, and fetching one back."""

from __future__ import annotations

from pathlib import Path

from cronicorn.backup import catalog
from cronicorn.backup.context import BackupContext
from cronicorn.backup.manifest import Manifest, Offsite, read_manifest, write_manifest
from cronicorn.backup.targets import open_target


def ship(ctx: BackupContext, path: Path, target_url: str) -> Manifest:
    """Upload and prove the copy; only then is the backup marked off-site."""
    manifest = read_manifest(path)
    location = open_target(target_url, ctx.s3).upload(path, manifest)
    offsite = Offsite(url=location, at=ctx.clock(), verified=True)
    updated = manifest.model_copy(update={"offsite": offsite})
    write_manifest(path, updated)
    catalog.record(ctx.database_url, [(updated, str(path))])
    return updated


def fetch(ctx: BackupContext, name: str, source_url: str) -> Path:
    """Download a backup from a target into the backup directory (checked file by file)."""
    existing = ctx.backup_dir / name
    if existing.is_dir():
        return existing
    return open_target(source_url, ctx.s3).download(name, ctx.backup_dir)


def remote_names(ctx: BackupContext, url: str) -> list[str]:
    return open_target(url, ctx.s3).names()
