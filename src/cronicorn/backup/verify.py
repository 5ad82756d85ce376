"""`backup verify`: prove a backup restores, not just that its files exist.

Checks, in order: the manifest's seal, every file's size and sha256, the configuration
bundle (when a passphrase is at hand), that this Cronicorn knows the schema revision, then a
real restore into a scratch database (a temporary database on the same server, or a
throwaway embedded server) whose revision, exact row counts and `SELECT count(*) FROM jobs`
must match the manifest. The result is written into the manifest and the `backups` table.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from cronicorn.backup import catalog, configbundle, pg
from cronicorn.backup.context import BackupContext, NullProgress, Progress
from cronicorn.backup.errors import BackupError, CorruptBackup
from cronicorn.backup.layout import locate
from cronicorn.backup.loading import (
    check_files,
    count_mismatches,
    find_load_tools,
    inspect,
    known_revision,
    load,
)
from cronicorn.backup.manifest import (
    CONFIG_BUNDLE,
    Check,
    Manifest,
    Verification,
    read_manifest,
    write_manifest,
)
from cronicorn.backup.tools import ToolFinder

Scratch = Literal["auto", "server", "embedded"]
SCRATCH_CHOICES: tuple[Scratch, ...] = ("auto", "server", "embedded")


def resolve_scratch(ctx: BackupContext, scratch: str) -> Literal["server", "embedded"]:
    """auto: a temporary database on the same server when the role may create databases
    (CREATEDB), else a throwaway embedded server, which needs no rights on the server at
    all. `same-server` is the old spelling of `server`."""
    if scratch in ("server", "same-server"):
        return "server"
    if scratch == "embedded":
        return "embedded"
    if scratch != "auto":
        raise BackupError(f"unknown scratch {scratch!r}: use auto, server or embedded")
    try:
        return "server" if pg.may_create_databases(ctx.database_url) else "embedded"
    except BackupError:
        return "embedded"


@dataclass(frozen=True)
class VerifyReport:
    name: str
    ok: bool
    scratch: str
    at: datetime
    checks: list[Check]


def verify_backup(
    ctx: BackupContext,
    name: str,
    *,
    scratch: str = "auto",
    progress: Progress | None = None,
) -> VerifyReport:
    report = progress or NullProgress()
    path = locate(ctx.backup_dir, name)
    scratch = resolve_scratch(ctx, scratch)
    try:
        manifest = read_manifest(path)
    except CorruptBackup as exc:
        check = Check(name="manifest", ok=False, detail=str(exc))
        return VerifyReport(
            name=path.name, ok=False, scratch=scratch, at=ctx.clock(), checks=[check]
        )
    report.update(phase="checking files")
    checks = [Check(name="manifest", ok=True, detail="readable, seal intact")]
    checks += check_files(path, manifest)
    checks.append(_config_check(ctx, path, manifest))
    checks.append(_revision_check(manifest))
    if all(c.ok is not False for c in checks):
        report.update(phase=f"restoring into a scratch database ({scratch})")
        checks += _restore_checks(ctx, path, manifest, scratch)
    else:
        checks.append(Check(name="restore", ok=None, detail="skipped: the files are not intact"))
    ok = all(c.ok is not False for c in checks)
    at = ctx.clock()
    verification = Verification(at=at, ok=ok, scratch=scratch, checks=checks)
    _record(ctx, path, manifest.model_copy(update={"verification": verification}))
    return VerifyReport(name=manifest.name, ok=ok, scratch=scratch, at=at, checks=checks)


def _config_check(ctx: BackupContext, path: Path, manifest: Manifest) -> Check:
    if not manifest.config_files:
        return Check(name="configuration", ok=None, detail="none in this backup")
    if manifest.entry(CONFIG_BUNDLE) is None or not (path / CONFIG_BUNDLE).is_file():
        return Check(name="configuration", ok=False, detail=f"{CONFIG_BUNDLE} is missing")
    if ctx.passphrase is None:
        return Check(name="configuration", ok=None, detail="not decrypted: no BACKUP_PASSPHRASE")
    try:
        files = configbundle.unpack((path / CONFIG_BUNDLE).read_bytes(), ctx.passphrase)
    except BackupError as exc:
        return Check(name="configuration", ok=False, detail=str(exc))
    return Check(name="configuration", ok=True, detail=f"decrypts: {', '.join(sorted(files))}")


def _revision_check(manifest: Manifest) -> Check:
    if known_revision(manifest.revision):
        return Check(name="schema revision", ok=True, detail=f"{manifest.revision} is known")
    return Check(
        name="schema revision",
        ok=False,
        detail=f"{manifest.revision} is unknown here: made by a newer Cronicorn "
        f"({manifest.app_version})",
    )


def _restore_checks(
    ctx: BackupContext, path: Path, manifest: Manifest, scratch: str
) -> list[Check]:
    try:
        with _scratch_database(ctx, scratch) as (url, finder):
            load(manifest, path, url, find_load_tools(manifest, url, finder))
            contents = inspect(url)
    except BackupError as exc:
        return [Check(name="restore", ok=False, detail=str(exc))]
    checks = [
        Check(name="restore", ok=True, detail=f"restored into a scratch database ({scratch})")
    ]
    same = contents.revision == manifest.revision
    checks.append(
        Check(
            name="restored revision",
            ok=same,
            detail=f"{contents.revision}"
            + ("" if same else f", manifest says {manifest.revision}"),
        )
    )
    problems = count_mismatches(manifest.row_counts, contents.row_counts)
    total = sum(contents.row_counts.values())
    checks.append(
        Check(
            name="row counts",
            ok=not problems,
            detail="; ".join(problems)
            if problems
            else f"{len(contents.row_counts)} tables, {total} rows, all as in the manifest",
        )
    )
    checks.append(
        Check(
            name="SELECT count(*) FROM jobs",
            ok=contents.jobs is not None,
            detail=f"{contents.jobs} job{'' if contents.jobs == 1 else 's'}"
            if contents.jobs is not None
            else "no jobs table",
        )
    )
    return checks


@contextlib.contextmanager
def _scratch_database(ctx: BackupContext, scratch: str) -> Iterator[tuple[str, ToolFinder]]:
    if scratch == "server":
        name = f"cronicorn_verify_{secrets.token_hex(6)}"
        fix = "grant CREATEDB to the database user, or verify with --scratch embedded"
        pg.create_database(ctx.database_url, name, fix)
        try:
            yield pg.with_database(ctx.database_url, name), ctx.finder
        finally:
            pg.drop_database(ctx.database_url, name)
        return
    from cronicorn.embedded import EmbeddedError, EmbeddedPostgres

    home = Path(tempfile.mkdtemp(prefix="cronicorn-verify-"))
    try:
        server = EmbeddedPostgres(home)
        with server.session():
            yield server.url(), ToolFinder(prefer_bundled=True)
    except EmbeddedError as exc:
        raise BackupError(f"the scratch embedded server failed: {exc}") from None
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _record(ctx: BackupContext, path: Path, manifest: Manifest) -> None:
    with contextlib.suppress(OSError):
        write_manifest(path, manifest)
    home = ctx.backup_dir / path.name
    location = str(home) if home.resolve() == path.resolve() else str(path.resolve())
    catalog.record(ctx.database_url, [(manifest, location)], same_location_only=True)
