"""`backup create`: one consistent dump plus a sealed manifest, published atomically.

Consistency: a REPEATABLE READ transaction exports its snapshot; pg_dump runs with
`--snapshot` and the exact row counts are taken by that same transaction, concurrently with
the dump, so the manifest describes precisely the data in the dump.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path

import psycopg

from cronicorn.backup import catalog, configbundle, pg
from cronicorn.backup.context import BackupContext, NullProgress, Progress
from cronicorn.backup.errors import BackupError, PassphraseRequired
from cronicorn.backup.files import Opener, Staging, disk_full, open_for_write
from cronicorn.backup.layout import free_name
from cronicorn.backup.manifest import (
    CONFIG_BUNDLE,
    DUMP_FILES,
    FileEntry,
    Format,
    Kind,
    Manifest,
    write_manifest,
)
from cronicorn.backup.runner import DumpJob, run_dump
from cronicorn.backup.tools import Tool


@dataclass(frozen=True)
class CreateOptions:
    fmt: Format = "custom"
    kind: Kind = "manual"
    dest: Path | None = None  # default: the context's backup directory
    config_dir: Path | None = None  # None: leave the configuration out
    require_config: bool = True  # no passphrase: refuse (CLI) or leave config out with a note
    name: str | None = None


@dataclass(frozen=True)
class Created:
    name: str
    path: Path
    manifest: Manifest
    recorded: bool


def create_backup(
    ctx: BackupContext,
    opts: CreateOptions = CreateOptions(),
    *,
    lock: pg.BackupLock | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    opener: Opener = open_for_write,
) -> Created:
    """Dump the database into a new backup directory; raise without leaving anything behind."""
    report = progress or NullProgress()
    plan = _config_plan(ctx, opts)
    with pg.connect(ctx.database_url) as conn:
        version, major = pg.server_version(conn)
    tool = ctx.finder.find("pg_dump", at_least=major, tls=pg.tls_required(ctx.database_url))
    root = opts.dest or ctx.backup_dir
    with pg.backup_lock(ctx.database_url, lock):
        try:
            name = opts.name or free_name(root, ctx.clock())
            staging = Staging(root, name, opener)
        except OSError as exc:
            raise disk_full(exc, root) from None
        try:
            manifest = _write(ctx, opts, staging, tool, version, plan, report, cancel)
            path = staging.publish()
        except OSError as exc:
            staging.discard()
            raise disk_full(exc, root) from None
        except BaseException:
            staging.discard()
            raise
    report.update(phase="recording")
    recorded = catalog.record(ctx.database_url, [(manifest, str(path))])
    return Created(name=name, path=path, manifest=manifest, recorded=recorded)


def _config_plan(ctx: BackupContext, opts: CreateOptions) -> tuple[list[Path], list[str]]:
    if opts.config_dir is None:
        return [], []
    files = configbundle.find_config(opts.config_dir)
    if not files or ctx.passphrase is not None:
        return files, []
    names = ", ".join(path.name for path in files)
    if opts.require_config:
        raise PassphraseRequired(
            f"found {names} in {opts.config_dir} but BACKUP_PASSPHRASE is not set: set it "
            "(12+ characters, stored away from this server) so they are kept encrypted, or "
            "pass --no-config to back up the database only"
        )
    return [], [f"configuration ({names}) left out: BACKUP_PASSPHRASE is not set"]


def _write(
    ctx: BackupContext,
    opts: CreateOptions,
    staging: Staging,
    tool: Tool,
    server: str,
    plan: tuple[list[Path], list[str]],
    report: Progress,
    cancel: threading.Event | None,
) -> Manifest:
    created_at = ctx.clock()
    config_files, notes = plan
    entry, revision, counts = _dump(ctx, opts.fmt, staging, tool, report, cancel)
    files = [entry]
    if config_files:
        assert ctx.passphrase is not None
        report.update(phase="encrypting configuration")
        bundle = configbundle.pack(config_files, ctx.passphrase)
        files.append(staging.write_bytes(CONFIG_BUNDLE, bundle))
    manifest = Manifest(
        name=staging.name,
        kind=opts.kind,
        created_at=created_at,
        app_version=ctx.app_version,
        revision=revision,
        server_version=server,
        pg_dump_version=tool.version,
        database=pg.database_name(ctx.database_url),
        format=opts.fmt,
        row_counts=counts,
        files=files,
        config_files=[path.name for path in config_files],
        notes=notes,
    ).sealed()
    write_manifest(staging.path, manifest)
    return manifest


def _dump(
    ctx: BackupContext,
    fmt: Format,
    staging: Staging,
    tool: Tool,
    report: Progress,
    cancel: threading.Event | None,
) -> tuple[FileEntry, str | None, dict[str, int]]:
    with pg.exported_snapshot(ctx.database_url) as (snap, snapshot_id):
        revision = pg.revision(snap)
        tables = pg.user_tables(snap)
        counter = _Counter(snap, tables)
        report.update(phase="dumping", done=0, total=len(tables), size=0)
        done = [0]

        def table_done(_name: str) -> None:
            done[0] += 1
            report.update(done=min(done[0], len(tables)))

        conninfo, env = pg.tool_conninfo(ctx.database_url, pg.APP_NAME)
        writer = staging.writer(DUMP_FILES[fmt])
        counter.start()
        try:
            job = DumpJob(
                tool=tool,
                conninfo=conninfo,
                env=env,
                fmt=fmt,
                snapshot=snapshot_id,
                exclude_schemas=tuple(pg.other_schemas(snap)),
            )
            run_dump(
                job,
                writer,
                on_table=table_done,
                on_bytes=lambda size: report.update(size=size),
                cancel=cancel,
            )
            entry = writer.close()
        except BaseException:
            writer.abort()
            counter.cancel()
            raise
        finally:
            counter.join()
        report.update(done=len(tables))
        return entry, revision, counter.result()


class _Counter:
    """Exact row counts on the snapshot's own connection, while pg_dump runs."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], tables: list[str]) -> None:
        self._conn, self._tables = conn, tables
        self._counts: dict[str, int] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._counts = pg.row_counts(self._conn, self._tables)
        except BaseException as exc:
            self._error = exc

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        with contextlib.suppress(psycopg.Error, AttributeError):
            self._conn.cancel_safe(timeout=5)

    def join(self) -> None:
        self._thread.join()

    def result(self) -> dict[str, int]:
        if self._counts is None:
            raise BackupError(f"counting rows in the dump's snapshot failed: {self._error}")
        return self._counts
