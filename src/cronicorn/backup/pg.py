"""PostgreSQL plumbing for backups: URLs, versions, snapshots, exact counts, locks, databases.

Plain psycopg (not the app's pools): backup work is a handful of administrative statements
on short-lived connections named `cronicorn-backup`, so `pg_stat_activity` shows who they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cronicorn.backup.errors import ActiveClients, BackupBusy, BackupError
from cronicorn.errors import first_line
from cronicorn.store.db import process_tag

APP_NAME = "cronicorn-backup"


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s\"']*:)[^@\s\"']*@", re.IGNORECASE)
_KEY_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s\"']+)", re.IGNORECASE)


def scrub(text: str, url: str | None = None) -> str:
    """`text` with every password removed: in URLs (`user:***@`), `password=` pairs, and
    the literal password of `url` wherever libpq echoed it (it quotes bad conninfo)."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KEY_PASSWORD.sub(r"\1***", text)
    secret = _password_of(url) if url else None
    return text.replace(secret, "***") if secret else text


def _password_of(url: str) -> str | None:
    try:
        value = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        parts = urlsplit(url)
        value = unquote(parts.password) if parts.password else None
    return str(value) if value else None


def database_name(url: str) -> str:
    try:
        name = conninfo_to_dict(url).get("dbname")
    except psycopg.Error as exc:
        raise BackupError(
            f"DATABASE_URL is not a valid libpq URL ({scrub(first_line(exc), url)}); use "
            "postgresql://user@host:port/dbname?sslmode=verify-full"
        ) from None
    return str(name) if name else "postgres"


def tls_required(url: str) -> bool:
    """Whether libpq will insist on TLS for this URL (managed servers: verify-full)."""
    mode = conninfo_to_dict(url).get("sslmode") or os.environ.get("PGSSLMODE", "")
    return str(mode) in {"require", "verify-ca", "verify-full"}


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
        first = scrub(first_line(exc), url)
        raise BackupError(
            f"cannot connect to database {database_name(url)!r}: {first}; check DATABASE_URL "
            "and that PostgreSQL is running"
        ) from None


@contextlib.contextmanager
def database_errors(what: str, fix: str = "") -> Iterator[None]:
    """Turn a PostgreSQL error into one BackupError line: what failed, why, and the fix."""
    try:
        yield
    except psycopg.Error as exc:
        reason = scrub(first_line(exc))
        raise BackupError(f"{what} failed: {reason}" + (f"; {fix}" if fix else "")) from None


def server_version(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[str, int]:
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int"
    ).fetchone()
    assert row is not None
    return str(row[0]).split()[0], int(str(row[1])) // 10000


def user_tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Cronicorn's tables: those of schema public (a managed database, Supabase's `postgres`
    above all, holds the provider's own schemas too; they are not ours to back up)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
        "AND NOT c.relispartition ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def other_schemas(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Schemas besides public and the system's: left out of the dump."""
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('public', 'information_schema') "
        "AND nspname NOT LIKE 'pg\\_%' ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


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

    Taken on the database itself (advisory locks are per database): no CONNECT on
    `postgres` or `template1` is needed, and a restore never drops the database it locks.
    A session lock dies with its connection, so a crashed holder frees it."""

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
    tag = _tag(application_name)
    if tag is not None:
        return f"{tag[0]} on {tag[1] or client_addr} (pid {tag[2]})"
    return f"{application_name or 'a client'} (connected from {client_addr})"


def try_backup_lock(url: str) -> BackupLock:
    database = database_name(url)
    conn = connect(url)
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


def _tag(application_name: str) -> tuple[str, str, str] | None:
    """(name, host, pid) of a `name@host:pid` application name, else None."""
    name, at, place = application_name.rpartition("@")
    host, colon, pid = place.rpartition(":")
    return (name, host, pid) if at and colon and pid.isdigit() else None


def _ours(application_name: str) -> bool:
    tag = _tag(application_name)
    return (
        tag is not None and tag[2] == str(os.getpid()) and socket.gethostname().startswith(tag[1])
    )


def other_clients(conn: psycopg.Connection[tuple[object, ...]], database: str) -> list[Client]:
    """Sessions connected to `database`, other than this process's own (the lock, the
    catalog): those are tagged `name@host:OURPID`."""
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
        if not _ours(str(r[1] or ""))
    ]


def _is_cronicorn(application_name: str) -> bool:
    """Cronicorn's engines name themselves `cronicorn-<role>@host:pid` (plain `cronicorn@…`
    for the short-lived admin seeding at start)."""
    name = application_name.partition("@")[0]
    return name == "cronicorn" or name.startswith("cronicorn-")


def cronicorn_clients(conn: psycopg.Connection[tuple[object, ...]], database: str) -> list[Client]:
    return [c for c in other_clients(conn, database) if _is_cronicorn(c.application_name)]


def refuse_if_busy(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    clients = cronicorn_clients(conn, database)
    if clients:
        listed = "; ".join(
            f"{describe_client(c.application_name, c.client)}, since {c.since}" for c in clients
        )
        raise ActiveClients(
            f"Cronicorn processes are connected to database {database!r}: {listed}. Stop them "
            "first (keep the database up; embedded: `cronicorn db start`), or pass --force to "
            "disconnect them"
        )


def disconnect_cronicorn(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    """--force: end the sessions of other Cronicorn processes (allowed for the role that
    owns them, no superuser needed); other clients are waited for by the load's locks."""
    for client in cronicorn_clients(conn, database):
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_terminate_backend(%s)", (client.pid,))


def database_exists(url: str, database: str) -> bool:
    """Asked of the configured database: pg_database is readable by every role."""
    with connect(url) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    return row is not None


def may_create_databases(url: str) -> bool:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    return bool(row and row[0])


def has_tables(url: str) -> bool:
    with connect(url) as conn:
        return bool(user_tables(conn))


def create_database(url: str, database: str, fix: str = "") -> None:
    """CREATE DATABASE, issued on the configured database's own connection (no maintenance
    database needed)."""
    fix = fix or "the database user needs the CREATEDB privilege"
    with connect(url) as conn, database_errors(f"creating database {database}", fix):
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(database))
        )


def drop_database(url: str, database: str) -> None:
    with connect(url) as conn, database_errors(f"dropping database {database}"):
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
