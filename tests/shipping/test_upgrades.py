"""Upgrades keep data: one database walks through every earlier schema revision, with rows
written at each (users, keys, jobs, endpoints, runs) and a backup taken at each by the backup
command's code (`create_backup`). Each backup is restored into a new database by the restore
command's code (`restore_backup`, which migrates a restored database forward), which is then
at the code's head with every row intact and new columns filled as their migrations promise."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from cronicorn.backup.context import BackupContext
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.restore import RestoreOptions, restore_backup
from cronicorn.store.db import make_sync_engine
from cronicorn.store.migrate import alembic_config, head_revision

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300), pytest.mark.xdist_group("upgrades")]

REVISIONS = [
    rev.revision
    for rev in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
]
EARLIER = REVISIONS[:-1]

# Rows every revision since 0001 accepts: users, API keys, jobs, endpoints (interval and
# cron, paused, with hints) and runs (success and failure, with response excerpts).
FILL = [
    "INSERT INTO users (id, email, name, password_hash, is_admin) VALUES "
    "('u1', 'ops@example.com', 'Ops', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA', true), "
    "('u2', 'dev@example.com', 'Dev', NULL, false)",
    "INSERT INTO api_keys (id, user_id, name, prefix, key_hash) VALUES "
    "('k1', 'u1', 'ci', 'cron_abc', 'deadbeef')",
    "INSERT INTO jobs (id, user_id, name, status) VALUES "
    "('j1', 'u1', 'reports', 'active'), ('j2', 'u2', 'paused one', 'paused')",
    "INSERT INTO endpoints (id, job_id, user_id, name, url, description, baseline_interval_ms, "
    "min_interval_ms, max_interval_ms, hint_interval_ms, hint_reason, next_run_at) VALUES "
    "('e1', 'j1', 'u1', 'build', 'https://example.com/build', 'poll faster when busy', 60000, "
    "30000, 600000, 30000, 'queue deep', '2031-01-01T00:00:00Z'), "
    "('e2', 'j2', 'u2', 'ping', 'https://example.com/ping', NULL, 300000, NULL, NULL, NULL, "
    "NULL, '2031-01-01T00:05:00Z')",
    "INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_cron, next_run_at) VALUES "
    "('e3', 'j1', 'u1', 'nightly', 'https://example.com/nightly', '0 2 * * *', "
    "'2031-01-02T02:00:00Z')",
    "INSERT INTO runs (id, endpoint_id, user_id, status, source, started_at, finished_at, "
    "duration_ms, status_code) SELECT 'r' || g, 'e' || (g % 3 + 1), "
    "CASE WHEN g % 3 = 1 THEN 'u2' ELSE 'u1' END, "
    "CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'success' END, 'baseline-interval', "
    "'2030-12-31T00:00:00Z'::timestamptz + g * interval '1 minute', "
    "'2030-12-31T00:00:00Z'::timestamptz + g * interval '1 minute' + interval '80 ms', 80, "
    "CASE WHEN g % 4 = 0 THEN 503 ELSE 200 END FROM generate_series(1, 50) g",
]
CHECKS = {
    "users": "SELECT id, email, name, password_hash, is_admin FROM users ORDER BY id",
    "api_keys": "SELECT id, user_id, name, prefix, key_hash FROM api_keys ORDER BY id",
    "jobs": "SELECT id, user_id, name, status FROM jobs ORDER BY id",
    "endpoints": "SELECT id, job_id, user_id, name, url, description, baseline_interval_ms, "
    "baseline_cron, min_interval_ms, max_interval_ms, hint_interval_ms, hint_reason, "
    "next_run_at FROM endpoints ORDER BY id",
    "runs": "SELECT id, endpoint_id, user_id, status, source, started_at, finished_at, "
    "duration_ms, status_code FROM runs ORDER BY id",
}


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in CHECKS.items()}  # type: ignore[arg-type]


def _migrate_to(url: str, revision: str) -> None:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), revision)
            conn.commit()
    finally:
        engine.dispose()


def _more(revision: str) -> list[str]:
    """Rows written while the database was at `revision` (ids carry it)."""
    r = revision.split("_")[0]
    return [
        f"INSERT INTO jobs (id, user_id, name) VALUES ('j{r}', 'u1', 'added at {r}')",
        "INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, "
        f"next_run_at) VALUES ('e{r}', 'j{r}', 'u1', 'at {r}', 'https://example.com/{r}', "
        "120000, '2031-01-03T00:00:00Z')",
        "INSERT INTO runs (id, endpoint_id, user_id, status, source, started_at) VALUES "
        f"('r{r}', 'e{r}', 'u1', 'success', 'baseline-interval', '2030-12-31T12:00:00Z')",
    ]


@dataclass(frozen=True)
class Dumped:
    name: str
    snapshot: dict[str, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def dumps(
    pg_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, Dumped]]]:
    """One database walked through every earlier revision: rows written at each, and a backup
    taken at each (so later backups hold rows that lived through several migrations)."""
    backups = tmp_path_factory.mktemp("upgrades") / "backups"
    source = pg_server.empty_database()
    taken: dict[str, Dumped] = {}
    try:
        for index, revision in enumerate(EARLIER):
            _migrate_to(source, revision)
            with psycopg.connect(source) as conn:
                for statement in (FILL if index == 0 else []) + _more(revision):
                    conn.execute(statement)  # type: ignore[arg-type]
            ctx = BackupContext(database_url=source, backup_dir=backups)
            made = create_backup(ctx, CreateOptions())
            assert made.manifest.revision == revision
            taken[revision] = Dumped(made.name, _snapshot(source))
        yield backups, taken
    finally:
        pg_server.drop_database(source)


def test_revisions_are_known() -> None:
    assert REVISIONS[0].startswith("0001")
    assert REVISIONS[-1] == head_revision()
    assert len(EARLIER) >= 1


@pytest.mark.parametrize("revision", EARLIER)
def test_backup_at_an_earlier_revision_restores_and_migrates_forward(
    revision: str, pg_server: Any, dumps: tuple[Path, dict[str, Dumped]]
) -> None:
    backups, taken = dumps
    dumped = taken[revision]
    assert len(dumped.snapshot["runs"]) == 50 + EARLIER.index(revision) + 1
    target = pg_server.empty_database()
    try:
        done = restore_backup(
            BackupContext(database_url=target, backup_dir=backups),
            dumped.name,
            RestoreOptions(safety_backup=False),
        )
        assert done.migrations == REVISIONS[REVISIONS.index(revision) + 1 :]
        with psycopg.connect(target) as conn:
            (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()  # type: ignore[misc]
            assert version == head_revision()
            # 0003: endpoints mirror their job's status (the paused job's endpoint is not live)
            live = dict(conn.execute("SELECT id, job_active FROM endpoints").fetchall())  # type: ignore[arg-type]
            assert live.pop("e2") is False
            assert all(live.values())
        assert _snapshot(target) == dumped.snapshot
    finally:
        pg_server.drop_database(target)
