"""Migrations: no drift from the metadata, idempotent, safe when several run at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from conftest import PgServer
from cronicorn.store.db import make_sync_engine
from cronicorn.store.migrate import head_revision, status, upgrade
from cronicorn.store.tables import metadata


def test_migrations_match_the_metadata(database_url: str) -> None:
    engine = make_sync_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
    finally:
        engine.dispose()
    assert diff == [], f"tables.py and the migrations disagree: {diff}"


def test_fresh_database_migrates_to_head_and_second_run_is_a_no_op(pg_server: PgServer) -> None:
    url = pg_server.empty_database()
    try:
        first = upgrade(url)
        assert first.before is None
        assert first.after == head_revision()
        assert first.applied
        second = upgrade(url)
        assert second.applied == []
        assert second.after == head_revision()
        assert status(url) == (head_revision(), [])
    finally:
        pg_server.drop_database(url)


def test_concurrent_migrators_serialise_on_the_advisory_lock(pg_server: PgServer) -> None:
    url = pg_server.empty_database()
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: upgrade(url), range(4)))
        applied = [r for r in results if r.applied]
        assert len(applied) == 1, "exactly one migrator applies, the others find nothing pending"
        assert all(r.after == head_revision() for r in results)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    finally:
        pg_server.drop_database(url)
