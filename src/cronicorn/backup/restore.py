"""`backup restore`: replace the database with a backup, safely.

Order: everything that can be checked without touching data is checked first (files,
revision, tools, connected Cronicorn processes); then a safety backup of what is there now;
then drop, recreate, load (one transaction), compare row counts, migrate forward (an older
backup is upgraded to this code's schema) and check the result. A marker file records a
restore in flight, so one that is interrupted is reported — with the way back — by the next
`backup list` or `backup restore`.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cronicorn.backup import catalog, configbundle, pg
from cronicorn.backup.context import BackupContext, NullProgress, Progress
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import BackupError, PassphraseRequired, RestoreFailed
from cronicorn.backup.files import atomic_write
from cronicorn.backup.layout import locate, scan
from cronicorn.backup.loading import (
    count_mismatches,
    inspect,
    load,
    require_intact,
    require_known_revision,
)
from cronicorn.backup.manifest import CONFIG_BUNDLE, Manifest, read_manifest
from cronicorn.store.migrate import head_revision, upgrade

MARKER = ".restore-in-progress.json"


@dataclass(frozen=True)
class RestoreOptions:
    force: bool = False
    safety_backup: bool = True
    target_db: str | None = None


@dataclass(frozen=True)
class Restored:
    name: str
    database: str
    safety_backup: str | None
    restored_revision: str | None
    revision: str | None
    migrations: list[str]
    row_counts: dict[str, int]
    mismatches: list[str]
    jobs: int | None
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.revision == head_revision()


def pending_restore(backup_dir: Path) -> dict[str, Any] | None:
    """The record of a restore that did not finish, if any."""
    try:
        data = json.loads((backup_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recovery_hint(marker: dict[str, Any]) -> str:
    database, safety = marker.get("database"), marker.get("safety_backup")
    target = "" if marker.get("default_database") else f" --target-db {database}"
    if safety:
        return (
            f"Your data from before the restore is in safety backup {safety}: run "
            f"`cronicorn backup restore {safety} --force{target}` to go back to it, or fix the "
            "cause and run the restore again"
        )
    return (
        "No safety backup was taken (the database was empty, or --no-safety-backup): fix the "
        "cause and run the restore again"
    )


def restore_backup(
    ctx: BackupContext,
    name: str,
    opts: RestoreOptions = RestoreOptions(),
    *,
    progress: Progress | None = None,
) -> Restored:
    report = progress or NullProgress()
    started = time.monotonic()
    path = locate(ctx.backup_dir, name)
    manifest = read_manifest(path)
    report.update(phase="checking the backup")
    require_intact(path, manifest)
    require_known_revision(manifest)
    database = opts.target_db or pg.database_name(ctx.database_url)
    target = replace(ctx, database_url=pg.with_database(ctx.database_url, database))
    with pg.backup_lock(target.database_url) as lock:
        exists = pg.database_exists(ctx.database_url, database)
        if exists and not opts.force:
            pg.refuse_if_busy(ctx.database_url, database)
        safety = None
        if exists and opts.safety_backup and pg.has_tables(target.database_url):
            report.update(phase="safety backup of the current database")
            kept = create_backup(target, CreateOptions(kind="safety"), lock=lock)
            safety = kept.name
        marker = {
            "backup": manifest.name,
            "database": database,
            "default_database": opts.target_db is None,
            "safety_backup": safety,
            "started_at": ctx.clock().isoformat(),
        }
        ctx.backup_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(ctx.backup_dir / MARKER, json.dumps(marker).encode())
        try:
            result = _replace(target, path, manifest, database, opts, report)
        except BaseException as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise RestoreFailed(
                f"restore of {manifest.name} into database {database!r} stopped halfway "
                f"({reason}); the database is incomplete. {recovery_hint(marker)}"
            ) from exc
        (ctx.backup_dir / MARKER).unlink(missing_ok=True)
    return replace(result, safety_backup=safety, seconds=round(time.monotonic() - started, 2))


def _replace(
    target: BackupContext,
    path: Path,
    manifest: Manifest,
    database: str,
    opts: RestoreOptions,
    report: Progress,
) -> Restored:
    url = target.database_url
    report.update(phase=f"dropping and recreating database {database}")
    pg.recreate_database(url, database, force=opts.force)
    report.update(phase=f"loading {manifest.dump_file}")
    load(manifest, path, url, target.finder)
    report.update(phase="checking row counts")
    loaded = inspect(url)
    mismatches = count_mismatches(manifest.row_counts, loaded.row_counts)
    report.update(phase="applying migrations")
    migrated = upgrade(url)
    after = inspect(url)
    report.update(phase="indexing local backups")
    entries = [(e.manifest, str(e.path)) for e in scan(target.backup_dir) if e.manifest]
    catalog.record(url, entries)
    return Restored(
        name=manifest.name,
        database=database,
        safety_backup=None,
        restored_revision=loaded.revision,
        revision=after.revision,
        migrations=migrated.applied,
        row_counts=loaded.row_counts,
        mismatches=mismatches,
        jobs=after.jobs,
        seconds=0.0,
    )


@dataclass(frozen=True)
class ConfigRestored:
    written: list[Path]
    unchanged: list[Path]


def restore_config(
    ctx: BackupContext, name: str, dest: Path, *, overwrite: bool = False
) -> ConfigRestored:
    """Write the backup's `.env` / `docker-compose.override.yml` into `dest`."""
    path = locate(ctx.backup_dir, name)
    manifest = read_manifest(path)
    if not manifest.config_files:
        raise BackupError(f"{manifest.name} holds no configuration (it was made without it)")
    require_intact(path, manifest)
    if ctx.passphrase is None:
        raise PassphraseRequired(
            "BACKUP_PASSPHRASE is not set: set it to the passphrase used when this backup was "
            "made to decrypt its configuration"
        )
    files = configbundle.unpack((path / CONFIG_BUNDLE).read_bytes(), ctx.passphrase)
    done = configbundle.write_config(files, dest, overwrite=overwrite)
    return ConfigRestored(written=done.written, unchanged=done.unchanged)


def clear_marker(backup_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (backup_dir / MARKER).unlink()
