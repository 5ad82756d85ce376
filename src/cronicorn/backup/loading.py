"""Checks and loading shared by verify and restore: file integrity, schema revision,
loading a dump into an empty database, and reading back what it holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cronicorn.backup import inplace, pg
from cronicorn.backup.errors import CorruptBackup, IncompatibleBackup
from cronicorn.backup.files import sha256_file
from cronicorn.backup.manifest import Check, Manifest
from cronicorn.backup.runner import load_script
from cronicorn.backup.tools import Tool, ToolFinder
from cronicorn.store import revisions

LOAD_APP_NAME = "cronicorn-restore"


def check_files(path: Path, manifest: Manifest) -> list[Check]:
    """Size and sha256 of every file the manifest lists."""
    checks = []
    for entry in manifest.files:
        file = path / entry.name
        if not file.is_file():
            checks.append(Check(name=f"file {entry.name}", ok=False, detail="missing"))
            continue
        size, digest = sha256_file(file)
        if size < entry.size:
            detail, ok = f"truncated: {size} of {entry.size} bytes", False
        elif size != entry.size:
            detail, ok = f"size {size} bytes, manifest says {entry.size}", False
        elif digest != entry.sha256:
            detail, ok = "sha256 differs: the file was altered or corrupted", False
        else:
            detail, ok = f"{size} bytes, sha256 ok", True
        checks.append(Check(name=f"file {entry.name}", ok=ok, detail=detail))
    return checks


def require_intact(path: Path, manifest: Manifest) -> None:
    for check in check_files(path, manifest):
        if check.ok is False:
            raise CorruptBackup(
                f"{manifest.name}: {check.name}: {check.detail}; this backup cannot be "
                "trusted: use another one (`cronicorn backup list`)"
            )


def known_revision(revision: str | None) -> bool:
    if revision is None:
        return True  # an empty database: nothing to be incompatible with
    return revision in revisions.known()


def require_known_revision(manifest: Manifest) -> None:
    if not known_revision(manifest.revision):
        raise IncompatibleBackup(
            f"{manifest.name} was made by a newer Cronicorn ({manifest.app_version}, schema "
            f"revision {manifest.revision}); this one only knows up to {revisions.code_head()}: "
            f"upgrade cronicorn to {manifest.app_version} or later, then restore"
        )


def dump_major(manifest: Manifest) -> int:
    head = manifest.pg_dump_version.split(".")[0]
    return int(head) if head.isdigit() else 0


@dataclass(frozen=True)
class LoadTools:
    psql: Tool
    pg_restore: Tool | None  # custom archives only; reads the file, never connects


def find_load_tools(manifest: Manifest, url: str, finder: ToolFinder) -> LoadTools:
    """Found before anything is touched: psql at least the server's and the dump's major
    (with TLS when the URL asks for it), pg_restore at least the dump's."""
    with pg.connect(url) as conn:
        _, server_major = pg.server_version(conn)
    at_least = max(server_major, dump_major(manifest))
    psql = finder.find("psql", at_least=at_least, tls=pg.tls_required(url))
    archive = None
    if manifest.format == "custom":
        archive = finder.find("pg_restore", at_least=max(dump_major(manifest), psql.major))
    return LoadTools(psql=psql, pg_restore=archive)


def load(manifest: Manifest, path: Path, url: str, tools: LoadTools) -> None:
    """Replace what schema public holds with the backup's dump, in one transaction: the
    database ends with its old contents or the backup's, never a mix (see inplace)."""
    conninfo, env = pg.tool_conninfo(url, LOAD_APP_NAME)
    load_script(
        path / manifest.dump_file,
        manifest.format,
        tools.psql,
        tools.pg_restore,
        conninfo,
        env,
        preamble=inplace.preamble(),
        epilogue=inplace.EPILOGUE,
    )


@dataclass(frozen=True)
class Contents:
    revision: str | None
    row_counts: dict[str, int]
    jobs: int | None


def inspect(url: str) -> Contents:
    with pg.connect(url) as conn, pg.database_errors("reading the restored database"):
        tables = pg.user_tables(conn)
        counts = pg.row_counts(conn, tables)
        revision = pg.revision(conn)
        jobs = None
        if "jobs" in tables:  # the seed's own check, literally
            row = conn.execute("SELECT count(*) FROM jobs").fetchone()
            jobs = int(str(row[0])) if row else None
    return Contents(revision=revision, row_counts=counts, jobs=jobs)


def count_mismatches(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    problems = []
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table), actual.get(table)
        if want != got:
            problems.append(f"{table}: expected {want}, found {got}")
    return problems
