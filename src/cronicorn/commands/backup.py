"""`cronicorn backup create|list|verify|restore|prune|download`.

Thin: parse, build a `BackupContext`, call `cronicorn.backup`, print. Every failure is one
line on stderr naming the problem and the fix, with a non-zero exit status; progress goes
to stderr so `--json` output on stdout stays clean.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichBar
from rich.table import Table

from cronicorn.backup.context import BackupContext
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import BackupError
from cronicorn.backup.layout import Entry, scan
from cronicorn.backup.manifest import read_manifest
from cronicorn.backup.offsite import fetch, ship
from cronicorn.backup.prune import prune
from cronicorn.backup.restore import (
    RestoreOptions,
    pending_restore,
    recovery_hint,
    restore_backup,
    restore_config,
)
from cronicorn.backup.retention import Policy
from cronicorn.backup.service import summary
from cronicorn.backup.verify import verify_backup
from cronicorn.commands.common import EXIT_INTERRUPTED, err, fail, friendly, load_cli_settings, out
from cronicorn.config import Settings
from cronicorn.serve import database, install_sigterm

app = typer.Typer(
    help="Back up, verify, restore and prune the database (and encrypted configuration).",
    no_args_is_help=True,
)


class FormatChoice(StrEnum):
    custom = "custom"
    sql_gz = "sql-gz"


class ScratchChoice(StrEnum):
    auto = "auto"
    server = "server"
    same_server = "same-server"  # the old spelling of `server`
    embedded = "embedded"


def _settings() -> Settings:
    return load_cli_settings()


@contextlib.contextmanager
def _backup_context() -> Iterator[tuple[Settings, BackupContext]]:
    cfg = _settings()
    install_sigterm()
    with database(cfg) as url:
        yield cfg, BackupContext.from_settings(cfg, url)


class _Bar:
    """The rich progress bar behind the `Progress` protocol (stderr, transient)."""

    def __init__(self, enabled: bool) -> None:
        self._bar = RichBar(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[size]}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not enabled,
        )
        self._task = self._bar.add_task("starting", total=None, size="")

    def __enter__(self) -> _Bar:
        self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._bar.stop()

    def update(
        self,
        *,
        phase: str | None = None,
        done: int | None = None,
        total: int | None = None,
        size: int | None = None,
    ) -> None:
        fields: dict[str, Any] = {}
        if phase is not None:
            fields["description"] = phase
        if total is not None:
            fields["total"] = total
        if done is not None:
            fields["completed"] = done
        if size is not None:
            fields["size"] = _size(size)
        self._bar.update(self._task, **fields)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{int(seconds // span)}{unit}"
    return f"{int(seconds)}s"


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# -- create ------------------------------------------------------------------------------------
@app.command("create")
@friendly(BackupError, interrupted_exit=EXIT_INTERRUPTED)
def create_command(
    to: str | None = typer.Option(
        None, "--to", help="Write into this directory, or upload to s3://bucket/prefix."
    ),
    fmt: FormatChoice = typer.Option(
        FormatChoice.custom,
        "--format",
        help="custom (pg_dump -Fc) or sql-gz (plain SQL, gzip: restorable with plain psql).",
    ),
    config_dir: Path | None = typer.Option(
        None, "--config-dir", help="Where .env / docker-compose.override.yml live [default: .]"
    ),
    no_config: bool = typer.Option(False, "--no-config", help="Back up the database only."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Back up the database (and the encrypted configuration) into a new backup directory."""
    with _backup_context() as (_cfg, ctx):
        remote = to if to is not None and to.startswith("s3://") else None
        dest = Path(to).expanduser().resolve() if to is not None and remote is None else None
        opts = CreateOptions(
            fmt=fmt.value,
            dest=dest,
            config_dir=None if no_config else (config_dir or Path.cwd()),
        )
        with _Bar(enabled=not as_json) as bar:
            created = create_backup(ctx, opts, progress=bar)
            manifest = created.manifest
            if remote is not None:
                bar.update(phase=f"uploading to {remote}")
                manifest = ship(ctx, created.path, remote)
    now = datetime.now(UTC).timestamp()
    data = {**summary(_entry(created.path), now), "path": str(created.path)}
    data["rowCounts"] = manifest.row_counts
    data["files"] = [e.model_dump() for e in manifest.files]
    if as_json:
        _print_json(data)
        return
    rows = sum(manifest.row_counts.values())
    out.print(
        f"Backup [bold]{manifest.name}[/] written to {created.path} "
        f"({_size(manifest.size_bytes)}, {manifest.format}, revision {manifest.revision}, "
        f"{len(manifest.row_counts)} tables, {rows} rows)",
        highlight=False,
    )
    if manifest.config_files:
        out.print(f"  configuration: {', '.join(manifest.config_files)} (encrypted)")
    for note in manifest.notes:
        out.print(f"  note: {note}", highlight=False)
    if manifest.offsite:
        out.print(f"  off-site: {manifest.offsite.url} (upload verified)", highlight=False)


def _entry(path: Path) -> Entry:
    return Entry(path.name, path, read_manifest(path))


# -- list --------------------------------------------------------------------------------------
@app.command("list")
@friendly(BackupError, interrupted_exit=EXIT_INTERRUPTED)
def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List backups in BACKUP_DIR, newest first."""
    cfg = _settings()
    now = datetime.now(UTC).timestamp()
    items = [summary(entry, now) for entry in scan(cfg.backup_dir)]
    marker = pending_restore(cfg.backup_dir)
    if as_json:
        _print_json({"backupDir": str(cfg.backup_dir), "backups": items, "pendingRestore": marker})
        return
    if marker:
        _warn_pending(marker)
    if not items:
        out.print(f"No backups in {cfg.backup_dir}", highlight=False)
        return
    table = Table(title=str(cfg.backup_dir), title_justify="left", box=box.SIMPLE_HEAD)
    columns = ("name", "created (UTC)", "age", "size", "format", "kind", "revision", "verified")
    for column in (*columns, "off-site"):
        table.add_column(column, no_wrap=column != "off-site")
    for item in items:
        table.add_row(*_list_row(item))
    # piped output keeps whole rows (grep-able) instead of wrapping at 80 columns
    (out if out.is_terminal else Console(width=240)).print(table)


def _list_row(item: dict[str, Any]) -> list[str]:
    if item.get("problem"):
        return [item["name"], "-", "-", "-", "-", "-", "-", "DAMAGED", item["problem"][:60]]
    verified = {True: "yes", False: "FAILED", None: "no"}[item["verified"]]
    created = item["createdAt"][:16].replace("T", " ")
    return [
        item["name"],
        created,
        _age(item["ageSeconds"]),
        _size(item["sizeBytes"]),
        item["format"],
        item["kind"],
        str(item["revision"]),
        verified,
        "yes" if item["offsiteUrl"] else "no",
    ]


def _warn_pending(marker: dict[str, Any]) -> None:
    err.print(
        f"[bold yellow]warning:[/] a restore of {marker.get('backup')} into database "
        f"{marker.get('database')!r} started at {marker.get('started_at')} did not finish; the "
        f"database may be incomplete. {recovery_hint(marker)}",
        highlight=False,
        soft_wrap=True,
    )


# -- verify ------------------------------------------------------------------------------------
@app.command("verify")
@friendly(BackupError, interrupted_exit=EXIT_INTERRUPTED)
def verify_command(
    name: str = typer.Argument(..., help="Backup name (see `cronicorn backup list`) or path."),
    scratch: ScratchChoice | None = typer.Option(
        None,
        "--scratch",
        help="Restore into a temporary database on the same server, or a throwaway embedded "
        "one; auto: the server when the user may create databases [BACKUP_VERIFY_SCRATCH]",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check every file's checksum, then restore into a scratch database and compare."""
    with _backup_context() as (_cfg, ctx), _Bar(enabled=not as_json) as bar:
        chosen = scratch.value if scratch is not None else ctx.verify_scratch
        report = verify_backup(ctx, name, scratch=chosen, progress=bar)
    if as_json:
        _print_json(
            {
                "name": report.name,
                "ok": report.ok,
                "scratch": report.scratch,
                "at": report.at.isoformat(),
                "checks": [c.model_dump() for c in report.checks],
            }
        )
    else:
        out.print(f"Verifying [bold]{report.name}[/] (scratch: {report.scratch})", highlight=False)
        marks = {True: "[green]PASS[/]", False: "[bold red]FAIL[/]", None: "[dim]SKIP[/]"}
        for check in report.checks:
            out.print(f"  {marks[check.ok]}  {check.name}: {check.detail}", highlight=False)
        verdict = "[bold green]PASSED[/]" if report.ok else "[bold red]FAILED[/]"
        out.print(f"{report.name}: {verdict}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


# -- restore -----------------------------------------------------------------------------------
@app.command("restore")
@friendly(BackupError, interrupted_exit=EXIT_INTERRUPTED)
def restore_command(
    name: str = typer.Argument(..., help="Backup name (see `cronicorn backup list`) or path."),
    force: bool = typer.Option(
        False, "--force", help="Restore even while Cronicorn processes are connected."
    ),
    no_safety_backup: bool = typer.Option(
        False, "--no-safety-backup", help="Do not back up the current database first."
    ),
    target_db: str | None = typer.Option(
        None, "--target-db", help="Restore into this database instead of the configured one."
    ),
    config: bool = typer.Option(
        False, "--config", help="Restore only the configuration files (.env, compose override)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="With --config: replace files."),
    config_dir: Path | None = typer.Option(
        None, "--config-dir", help="With --config: where to write [default: .]"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Replace the database with a backup (a safety backup is taken first), then migrate.

    The configuration is restored only with --config, as a separate step.
    """
    if config:
        _restore_config(name, config_dir or Path.cwd(), overwrite, as_json)
        return
    with _backup_context() as (cfg, ctx):
        marker = pending_restore(cfg.backup_dir)
        if marker and not as_json:
            _warn_pending(marker)
        opts = RestoreOptions(force=force, safety_backup=not no_safety_backup, target_db=target_db)
        with _Bar(enabled=not as_json) as bar:
            done = restore_backup(ctx, name, opts, progress=bar)
    data = {
        "name": done.name,
        "database": done.database,
        "safetyBackup": done.safety_backup,
        "restoredRevision": done.restored_revision,
        "revision": done.revision,
        "migrationsApplied": done.migrations,
        "rowCounts": done.row_counts,
        "mismatches": done.mismatches,
        "jobs": done.jobs,
        "seconds": done.seconds,
        "ok": done.ok,
    }
    if as_json:
        _print_json(data)
    else:
        _print_restore(data)
    if not done.ok:
        raise typer.Exit(1)


def _print_restore(data: dict[str, Any]) -> None:
    out.print(
        f"Restored [bold]{data['name']}[/] into database {data['database']!r} "
        f"in {data['seconds']}s",
        highlight=False,
    )
    if data["safetyBackup"]:
        out.print(f"  safety backup of the previous database: {data['safetyBackup']}")
    applied = data["migrationsApplied"]
    migrations = f"upgraded by {', '.join(applied)}" if applied else "no migrations pending"
    out.print(f"  schema: revision {data['restoredRevision']} -> {data['revision']} ({migrations})")
    rows = sum(data["rowCounts"].values())
    if data["mismatches"]:
        out.print(f"  [bold red]row counts differ:[/] {'; '.join(data['mismatches'])}")
    else:
        out.print(f"  row counts: {len(data['rowCounts'])} tables, {rows} rows, as in the manifest")
    out.print(f"  SELECT count(*) FROM jobs: {data['jobs']}")
    out.print("Start Cronicorn again (`cronicorn up`); restore the configuration with --config.")


def _restore_config(name: str, dest: Path, overwrite: bool, as_json: bool) -> None:
    cfg = _settings()
    ctx = BackupContext.from_settings(cfg, cfg.database_url or "postgresql:///unused")
    done = restore_config(ctx, name, dest, overwrite=overwrite)
    if as_json:
        _print_json({"written": done.written, "unchanged": done.unchanged})
        return
    for path in done.written:
        out.print(f"wrote {path}", highlight=False)
    for path in done.unchanged:
        out.print(f"unchanged {path}", highlight=False)


# -- prune -------------------------------------------------------------------------------------
@app.command("prune")
@friendly(BackupError, interrupted_exit=EXIT_INTERRUPTED)
def prune_command(
    keep_daily: int | None = typer.Option(None, "--keep-daily", min=0, help="[BACKUP_KEEP_DAILY]"),
    keep_weekly: int | None = typer.Option(
        None, "--keep-weekly", min=0, help="[BACKUP_KEEP_WEEKLY]"
    ),
    keep_monthly: int | None = typer.Option(
        None, "--keep-monthly", min=0, help="[BACKUP_KEEP_MONTHLY]"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go; delete nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Delete backups that no retention rule keeps (grandfather-father-son)."""
    with _backup_context() as (cfg, ctx):
        policy = Policy(
            daily=cfg.backup_keep_daily if keep_daily is None else keep_daily,
            weekly=cfg.backup_keep_weekly if keep_weekly is None else keep_weekly,
            monthly=cfg.backup_keep_monthly if keep_monthly is None else keep_monthly,
        )
        result = prune(ctx, policy, dry_run=dry_run)
    if as_json:
        _print_json(
            {
                "dryRun": result.dry_run,
                "keep": result.plan.keep,
                "delete": result.plan.delete,
                "deleted": result.deleted,
                "damaged": result.damaged,
                "leftoversRemoved": result.leftovers,
            }
        )
        return
    for name, reasons in sorted(result.plan.keep.items(), reverse=True):
        out.print(f"keep    {name}  ({', '.join(reasons)})", highlight=False)
    verb = "would delete" if dry_run else "deleted"
    for name in result.plan.delete:
        out.print(f"{verb}  {name}", highlight=False)
    for name in result.damaged:
        out.print(f"damaged {name} (left alone: inspect it)", highlight=False)
    out.print(f"{len(result.plan.keep)} kept, {len(result.plan.delete)} {verb}", highlight=False)


# -- download ----------------------------------------------------------------------------------
@app.command("download")
@friendly(BackupError, interrupted_exit=EXIT_INTERRUPTED)
def download_command(
    name: str = typer.Argument(..., help="Backup name on the target."),
    source: str | None = typer.Option(
        None, "--from", help="s3://bucket/prefix or a directory [default: BACKUP_TARGET]"
    ),
) -> None:
    """Fetch a backup from off-site storage into BACKUP_DIR (e.g. on a new machine)."""
    cfg = _settings()
    url = source or cfg.backup_target
    if not url:
        fail("name the source with --from s3://bucket/prefix (or set BACKUP_TARGET)")
    ctx = BackupContext.from_settings(cfg, cfg.database_url or "postgresql:///unused")
    path = fetch(ctx, name, url)
    out.print(f"Downloaded {name} to {path} (every checksum verified)", highlight=False)
