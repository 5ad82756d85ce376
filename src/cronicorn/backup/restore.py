"""`backup restore`: replace the database with a backup, safely.

Order: everything that can be checked without touching data is checked first (files,
revision, privileges, client tools, connected Cronicorn processes); then a safety backup of
what is there now; then the database is emptied and refilled IN PLACE, in one transaction
(never DROP DATABASE: a managed server's owner role may not create it again, and Supabase's
database is the very `postgres` we are connected to); then row counts, migrations forward
(an older backup is upgraded to this code's schema) and the result. Stopped anywhere, the
database holds the old data or the restored data. A marker file records a restore in flight
and pins every safety backup taken for it until a restore succeeds.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cronicorn.backup import catalog, configbundle, inplace, pg
from cronicorn.backup.context import BackupContext, NullProgress, Progress
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import BackupError, PassphraseRequired, RestoreFailed
from cronicorn.backup.files import atomic_write
from cronicorn.backup.layout import locate, scan
from cronicorn.backup.loading import (
    LoadTools,
    count_mismatches,
    find_load_tools,
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


def safety_backups(marker: dict[str, Any] | None) -> list[str]:
    """Every safety backup a marker points at (older markers held just one)."""
    if not marker:
        return []
    names = marker.get("safety_backups") or []
    legacy = marker.get("safety_backup")
    listed = [str(n) for n in names if n] if isinstance(names, list) else []
    return listed + ([str(legacy)] if legacy and str(legacy) not in listed else [])


def recovery_hint(marker: dict[str, Any]) -> str:
    database, kept = marker.get("database"), safety_backups(marker)
    target = "" if marker.get("default_database") else f" --target-db {database}"
    state = (
        "The load runs in one transaction, so the database holds either its previous data or "
        "the backup's, never a mix"
    )
    if kept:
        return (
            f"{state}. The data from before is kept in safety backup {kept[-1]}: run "
            f"`cronicorn backup restore {kept[-1]} --force{target}` to go back to it, or fix "
            "the cause and run the restore again"
        )
    return (
        f"{state}. No safety backup was taken (the database was empty, or --no-safety-backup): "
        "fix the cause and run the restore again"
    )


@dataclass(frozen=True)
class _Plan:
    database: str
    target: BackupContext
    exists: bool
    tools: LoadTools


def _preflight(ctx: BackupContext, manifest: Manifest, database: str) -> _Plan:
    """Everything a restore needs, checked before anything is touched: the database, the
    right to create it (only if missing) or to empty and refill it, and the client tools."""
    target = replace(ctx, database_url=pg.with_database(ctx.database_url, database))
    exists = pg.database_exists(ctx.database_url, database)
    if not exists:
        if not pg.may_create_databases(ctx.database_url):
            raise BackupError(
                f"database {database!r} does not exist and the database user may not create "
                "one (no CREATEDB): create it as an admin (owned by this user), or restore "
                "into an existing database the user owns; nothing was changed"
            )
        probe_url = ctx.database_url
    else:
        probe_url = target.database_url
        with pg.connect(probe_url) as conn, pg.database_errors("checking privileges"):
            inplace.require_privileges(conn, database)
    tools = find_load_tools(manifest, probe_url, ctx.finder)
    if exists:
        with pg.connect(probe_url) as conn:
            _, major = pg.server_version(conn)
        ctx.finder.find("pg_dump", at_least=major, tls=pg.tls_required(probe_url))
    return _Plan(database=database, target=target, exists=exists, tools=tools)


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
    plan = _preflight(ctx, manifest, opts.target_db or pg.database_name(ctx.database_url))
    if not plan.exists:
        report.update(phase=f"creating database {plan.database}")
        pg.create_database(ctx.database_url, plan.database)
    target = plan.target
    with pg.backup_lock(target.database_url) as lock:
        if not opts.force:
            pg.refuse_if_busy(lock.conn, plan.database)
        safety = None
        if opts.safety_backup and pg.has_tables(target.database_url):
            report.update(phase="safety backup of the current database")
            safety = create_backup(target, CreateOptions(kind="safety"), lock=lock).name
        marker = _mark(ctx, manifest, plan.database, opts, safety)
        try:
            if opts.force:
                pg.disconnect_cronicorn(lock.conn, plan.database)
            result = _replace(target, path, manifest, plan, report)
        except BaseException as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise RestoreFailed(
                f"restore of {manifest.name} into database {plan.database!r} did not finish "
                f"({reason}). {recovery_hint(marker)}"
            ) from exc
        (ctx.backup_dir / MARKER).unlink(missing_ok=True)
    return replace(result, safety_backup=safety, seconds=round(time.monotonic() - started, 2))


def _mark(
    ctx: BackupContext, manifest: Manifest, database: str, opts: RestoreOptions, safety: str | None
) -> dict[str, Any]:
    """Record the restore in flight. A retried restore adds its safety backup to those of
    earlier attempts: every one stays pinned (prune keeps them) until a restore succeeds."""
    kept = safety_backups(pending_restore(ctx.backup_dir))
    marker = {
        "backup": manifest.name,
        "database": database,
        "default_database": opts.target_db is None,
        "safety_backups": kept + ([safety] if safety and safety not in kept else []),
        "started_at": ctx.clock().isoformat(),
    }
    ctx.backup_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(ctx.backup_dir / MARKER, json.dumps(marker).encode())
    return marker


def _replace(
    target: BackupContext,
    path: Path,
    manifest: Manifest,
    plan: _Plan,
    report: Progress,
) -> Restored:
    url = target.database_url
    report.update(phase=f"loading {manifest.dump_file} (one transaction)")
    load(manifest, path, url, plan.tools)
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
        database=plan.database,
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
