"""PostgreSQL plumbing for backups: URLs, versions, snapshots, exact counts, locks, databases.

Plain psycopg (not the app's pools): backup work is a handful of administrative statements
on short-lived connections named `cronicorn-backup`, so `pg_stat_activity` shows who they are.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cronicorn.backup.errors import ActiveClients, BackupBusy, BackupError
from cronicorn.errors import first_line
from cronicorn.store.db import process_tag

APP_NAME = "cronicorn-backup"
MAINTENANCE_DATABASES = ("postgres", "template1")


def database_name(url: str) -> str:
    name = conninfo_to_dict(url).get("dbname")
    return str(name) if name else "postgres"


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (query string kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def tool_conninfo(url: str, application_name: str) -> tuple[str, dict[str, str]]:
    """A conninfo for pg_dump/psql without the password (which goes in PGPASSWORD, so it
    never shows in the process list), plus the environment to run them with."""
    params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    password = params.pop("password", None)
    params["application_name"] = application_name
    env = {"PGPASSWORD": password} if password else {}
    return make_conninfo("", **params), env


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            application_name=process_tag(APP_NAME),
            connect_timeout=10,
        )
    except psycopg.OperationalError as exc:
        first = first_line(exc)
        raise BackupError(
            f"cannot connect to database {database_name(url)!r}: {first}; check DATABASE_URL "
            "and that PostgreSQL is running"
        ) from None


def connect_maintenance(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to another database of the same server (to create/drop the target)."""
    last: BackupError | None = None
    for name in MAINTENANCE_DATABASES:
        try:
            return connect(with_database(url, name))
        except BackupError as exc:
            last = exc
    assert last is not None
    raise last


@contextlib.contextmanager
def database_errors(what: str, fix: str = "") -> Iterator[None]:
    """Turn a PostgreSQL error into one BackupError line: what failed, why, and the fix."""
    try:
        yield
    except psycopg.Error as exc:
        reason = first_line(exc)
        raise BackupError(f"{what} failed: {reason}" + (f"; {fix}" if fix else "")) from None


def server_version(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[str, int]:
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int"
    ).fetchone()
    assert row is not None
    return str(row[0]).split()[0], int(str(row[1])) // 10000


def user_tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' "
        "ORDER BY 1, 2"
    ).fetchall()
    return [str(r[1]) if r[0] == "public" else f"{r[0]}.{r[1]}" for r in rows]


def _table_ident(name: str) -> sql.Identifier:
    schema, _, table = name.rpartition(".")
    return sql.Identifier(schema or "public", table)


def row_counts(conn: psycopg.Connection[tuple[object, ...]], tables: list[str]) -> dict[str, int]:
    """Exact counts (count(*), not estimates), in whatever snapshot `conn` is in."""
    counts: dict[str, int] = {}
    for table in tables:
        query = sql.SQL("SELECT count(*) FROM {}").format(_table_ident(table))
        row = conn.execute(query).fetchone()
        counts[table] = int(str(row[0])) if row else 0
    return counts


def revision(conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
    exists = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()
    if exists is None or exists[0] is None:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


@contextlib.contextmanager
def exported_snapshot(url: str) -> Iterator[tuple[psycopg.Connection[tuple[object, ...]], str]]:
    """A REPEATABLE READ, READ ONLY transaction and its exported snapshot id: pg_dump
    `--snapshot` sees exactly what this connection sees, so the manifest's counts are the
    dump's counts. The transaction stays open until the block ends."""
    conn = connect(url, autocommit=False)
    try:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield conn, str(row[0])
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


# -- the backup lock ---------------------------------------------------------------------------
def lock_key(database: str) -> int:
    digest = hashlib.sha256(f"cronicorn-backup:{database}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class BackupLock:
    """Held while one backup or restore of `database` runs; released with the connection.

    Taken on a maintenance database (not the target) so a restore can drop the target while
    holding it. A session lock dies with its connection, so a crashed holder frees it."""

    conn: psycopg.Connection[tuple[object, ...]]
    database: str


def _holder(conn: psycopg.Connection[tuple[object, ...]], key: int) -> str:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    row = conn.execute(
        "SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local'), "
        "a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid "
        "AND l.objid = %s::oid AND l.objsubid = 1",
        (unsigned >> 32, unsigned & 0xFFFF_FFFF),
    ).fetchone()
    if row is None:
        return "another process"
    started = row[3].isoformat(timespec="seconds") if isinstance(row[3], datetime) else row[3]
    return f"{describe_client(str(row[1] or ''), str(row[2]))}, since {started}"


def describe_client(application_name: str, client_addr: str) -> str:
    """Who is behind a connection, in an operator's terms: `cronicorn-api on web-1 (pid 812)`
    when the application tagged itself `name@host:pid` (our engines do), else the name and
    the address it connects from. Never the server backend pid: that is not the process
    an operator should stop."""
    name, at, place = application_name.rpartition("@")
    host, colon, pid = place.rpartition(":")
    if at and colon and pid.isdigit():
        return f"{name} on {host or client_addr} (pid {pid})"
    return f"{application_name or 'a client'} (connected from {client_addr})"


def try_backup_lock(url: str) -> BackupLock:
    database = database_name(url)
    conn = connect_maintenance(url)
    key = lock_key(database)
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if row is None or not row[0]:
        holder = _holder(conn, key)
        conn.close()
        raise BackupBusy(
            f"another backup or restore of database {database!r} is running: {holder}; "
            "wait for it to finish and try again"
        )
    return BackupLock(conn=conn, database=database)


def release_backup_lock(lock: BackupLock) -> None:
    with contextlib.suppress(psycopg.Error):
        lock.conn.close()


@contextlib.contextmanager
def backup_lock(url: str, held: BackupLock | None = None) -> Iterator[BackupLock]:
    """Take the lock, or reuse one the caller already holds (scheduled runs, restores)."""
    if held is not None:
        yield held
        return
    lock = try_backup_lock(url)
    try:
        yield lock
    finally:
        release_backup_lock(lock)


# -- databases ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Client:
    pid: int
    application_name: str
    client: str
    since: str


def other_clients(url: str, database: str) -> list[Client]:
    """Sessions connected to `database`, other than this process's own."""
    with connect_maintenance(url) as conn:
        rows = conn.execute(
            "SELECT pid, application_name, coalesce(host(client_addr), 'local'), backend_start "
            "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' ORDER BY application_name, pid",
            (database,),
        ).fetchall()
    return [
        Client(
            pid=int(str(r[0])),
            application_name=str(r[1] or ""),
            client=str(r[2]),
            since=r[3].isoformat(timespec="seconds") if isinstance(r[3], datetime) else "",
        )
        for r in rows
    ]


def _is_cronicorn(application_name: str) -> bool:
    """Cronicorn's engines name themselves `cronicorn-<role>@host:pid` (plain `cronicorn@…`
    for the short-lived admin seeding at start)."""
    name = application_name.partition("@")[0]
    return name == "cronicorn" or name.startswith("cronicorn-")


def refuse_if_busy(url: str, database: str) -> None:
    clients = [c for c in other_clients(url, database) if _is_cronicorn(c.application_name)]
    if clients:
        listed = "; ".join(
            f"{describe_client(c.application_name, c.client)}, since {c.since}" for c in clients
        )
        raise ActiveClients(
            f"Cronicorn processes are connected to database {database!r}: {listed}. Stop them "
            "first (keep the database up; embedded: `cronicorn db start`), or pass --force to "
            "disconnect them"
        )


def database_exists(url: str, database: str) -> bool:
    with connect_maintenance(url) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    return row is not None


def has_tables(url: str) -> bool:
    with connect(url) as conn:
        return bool(user_tables(conn))


_CREATEDB_FIX = "the database user needs the CREATEDB privilege (or use --target-db on one it owns)"


def recreate_database(url: str, database: str, *, force: bool) -> None:
    drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if force else "DROP DATABASE IF EXISTS {}"
    with connect_maintenance(url) as conn:
        try:
            conn.execute(sql.SQL(drop).format(sql.Identifier(database)))
        except psycopg.errors.ObjectInUse:
            raise ActiveClients(
                f"database {database!r} is in use by other sessions; close them or pass --force"
            ) from None
        except psycopg.Error as exc:
            raise BackupError(f"dropping database {database!r} failed: {exc}") from None
        with database_errors(f"creating database {database!r}", _CREATEDB_FIX):
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(database))
            )


def create_database(url: str, database: str) -> None:
    fix = "grant CREATEDB to the database user, or verify with --scratch embedded"
    with connect_maintenance(url) as conn, database_errors(f"creating database {database}", fix):
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(database))
        )


def drop_database(url: str, database: str) -> None:
    with connect_maintenance(url) as conn, database_errors(f"dropping database {database}"):
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
