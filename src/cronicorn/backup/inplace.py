"""Replacing a database's contents without dropping the database.

Managed servers (RDS, Supabase, Neon) give the application a role that owns its database
but may not create one, and Supabase's database is `postgres` itself: DROP DATABASE is
either forbidden or would leave nothing to connect to. So a restore empties and refills
the schema in place, as its owner, in ONE transaction fed to psql: `BEGIN`, drop every
object of schema `public` (extension members aside), the dump as SQL, `COMMIT` only after
the whole dump was sent. Killed, cancelled, out of disk or fed a bad dump at any point
before that COMMIT, PostgreSQL rolls the transaction back and the old data is untouched.
"""

from __future__ import annotations

import psycopg

from cronicorn.backup.errors import BackupError

_NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {catalog}::regclass "
    "AND d.objid = {oid} AND d.deptype = 'e')"
)

# (kind, SQL listing `stmt` and `owner` for every droppable object of schema public)
_OBJECTS = {
    "relations": "SELECT format('DROP %s IF EXISTS %s CASCADE', CASE c.relkind "
    "WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' "
    "WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, c.oid::regclass) AS stmt, "
    "c.oid::regclass::text AS name, c.relowner AS owner FROM pg_class c "
    "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r','p','v','m','S','f') "
    "AND " + _NOT_EXTENSION.format(catalog="'pg_class'", oid="c.oid"),
    "routines": "SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) "
    "AS stmt, p.oid::regprocedure::text AS name, p.proowner AS owner FROM pg_proc p "
    "WHERE p.pronamespace = 'public'::regnamespace AND "
    + _NOT_EXTENSION.format(catalog="'pg_proc'", oid="p.oid"),
    "types": "SELECT format('DROP %s IF EXISTS %s CASCADE', CASE t.typtype WHEN 'd' THEN "
    "'DOMAIN' ELSE 'TYPE' END, t.oid::regtype) AS stmt, t.oid::regtype::text AS name, "
    "t.typowner AS owner FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace "
    "AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND "
    "(SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')) AND "
    + _NOT_EXTENSION.format(catalog="'pg_type'", oid="t.oid"),
}


def _drop_block() -> str:
    loops = "\n".join(
        f"  FOR obj IN {query} LOOP EXECUTE obj.stmt; END LOOP;" for query in _OBJECTS.values()
    )
    return (
        f"DO $cronicorn_restore$\nDECLARE obj record;\nBEGIN\n{loops}\nEND\n$cronicorn_restore$;\n"
    )


def preamble() -> bytes:
    """What psql runs before the dump: open the transaction, empty schema public."""
    return ("\\set ON_ERROR_STOP on\nBEGIN;\n" + _drop_block()).encode()


EPILOGUE = b"\nCOMMIT;\n"


def missing_privileges(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """What this role could not do to empty and refill the database (empty: all good)."""
    problems: list[str] = []
    row = conn.execute("SELECT has_schema_privilege('public', 'CREATE')").fetchone()
    if not (row and row[0]):
        problems.append("CREATE on schema public")
    foreign: list[str] = []
    for query in _OBJECTS.values():
        rows = conn.execute(
            f"SELECT name FROM ({query}) o WHERE NOT pg_has_role(current_user, o.owner, 'USAGE')"
        ).fetchall()
        foreign += [str(r[0]) for r in rows]
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        problems.append(f"ownership of {shown}")
    return problems


def require_privileges(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    problems = missing_privileges(conn)
    if problems:
        raise BackupError(
            f"restore into database {database!r} needs {'; '.join(problems)}, which the "
            "database user lacks; nothing was changed. Run the restore as the role that owns "
            "Cronicorn's tables (the one migrations ran as)"
        )
