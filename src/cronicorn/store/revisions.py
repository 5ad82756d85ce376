"""The schema revisions this code knows, read from the migration files' text, and the one a
database is at, read by one statement.

Why not Alembic: every `cronicorn up` checks the schema at start, its API and backups check it
again, and importing Alembic (with Mako) for that holds ~10 MB of RSS for the life of the
process (issue 17's memory budget). Alembic loads only when there is something to migrate
(`store.migrate.upgrade`). A test checks these answers against Alembic's own, so a migration
file this parser cannot read fails CI rather than a start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

_ASSIGNMENT = re.compile(
    r"^(?P<name>revision|down_revision)\s*(?::[^=\n]*)?=\s*(?:[\"'](?P<value>[^\"']+)[\"']|None)\s*$",
    re.MULTILINE,
)


class UnreadableMigration(RuntimeError):
    """A migration file without one plain `revision = "..."` (and optional `down_revision`)."""


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None


def _read(path: Path) -> Revision:
    found: dict[str, str | None] = {}
    for match in _ASSIGNMENT.finditer(path.read_text(encoding="utf-8")):
        if match["name"] in found:
            raise UnreadableMigration(f"{path.name}: {match['name']} assigned twice")
        found[match["name"]] = match["value"]
    revision = found.get("revision")
    if revision is None:
        raise UnreadableMigration(f'{path.name}: no revision = "..." line')
    return Revision(revision, found.get("down_revision"))


def read_versions(directory: Path) -> dict[str, Revision]:
    """Every revision of the migration files in `directory`, by id."""
    revisions = [_read(path) for path in sorted(directory.glob("[0-9]*.py"))]
    return {rev.revision: rev for rev in revisions}


@cache
def known() -> dict[str, Revision]:
    """Every revision of the code's migrations, by id."""
    return read_versions(VERSIONS_DIR)


@cache
def code_head() -> str | None:
    """The one revision no other revision follows; None with no migrations."""
    revisions = known()
    followed = {rev.down_revision for rev in revisions.values()}
    heads = [rev for rev in revisions if rev not in followed]
    if len(heads) > 1:
        raise UnreadableMigration(f"several heads: {', '.join(sorted(heads))}")
    return heads[0] if heads else None


_TABLE_EXISTS = text("SELECT to_regclass('public.alembic_version') IS NOT NULL")
_VERSION = text("SELECT version_num FROM alembic_version")


def database_revision(conn: Connection) -> str | None:
    """The revision the database is at; None before the first migration."""
    if not conn.execute(_TABLE_EXISTS).scalar_one():
        return None
    row = conn.execute(_VERSION).first()
    return str(row[0]) if row else None
