"""Seeding run history for bench/history.py: N runs by COPY in minutes, rollups included.

The write path of a real installation (the rollup triggers of migration 0010, one foreign-key
check per run, seven index insertions per run) is what makes naive seeding slow: 3-4k runs/s
through the triggers. Here the COPY runs with the secondary indexes of `runs` dropped,
foreign-key checks and the triggers off (`session_replication_role = replica`, a superuser's
setting), the indexes are rebuilt from their own definitions, and the rollups are filled
with one `INSERT ... SELECT ... GROUP BY` each, from migration 0010's own per-run facts: what
the triggers would have written (`check_rollups` proves it on a small size by replaying the
same runs through the triggers and comparing).
"""

from __future__ import annotations

import importlib.util
import itertools
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

USERS, JOBS_PER_USER, ENDPOINTS_PER_JOB = 100, 10, 10
ENDPOINTS = USERS * JOBS_PER_USER * ENDPOINTS_PER_JOB
SPAN = timedelta(days=31)  # one day more than the retention keeps
COPY_CHUNK = 1_000_000  # rows per COPY statement
BODY = '{"ok": true, "queue": 3}'
COLUMNS = (
    "id, endpoint_id, user_id, status, source, due_at, started_at, finished_at, duration_ms,"
    " status_code, response_body"
)


def endpoint_id(n: int) -> str:
    return f"ep{n:05d}"


def user_of(n: int) -> str:
    return f"user{n // (JOBS_PER_USER * ENDPOINTS_PER_JOB):03d}"


def seed_accounts(conn: psycopg.Connection[Any], now: datetime) -> None:
    conn.execute(
        "INSERT INTO users (id, email, name) SELECT 'user' || lpad(g::text, 3, '0'),"
        " 'bench' || g || '@example.com', 'bench' FROM generate_series(0, %s) g",
        (USERS - 1,),
    )
    conn.execute(
        "INSERT INTO jobs (id, user_id, name) SELECT 'job' || lpad(g::text, 4, '0'),"
        " 'user' || lpad((g / %s)::text, 3, '0'), 'job ' || g FROM generate_series(0, %s) g",
        (JOBS_PER_USER, USERS * JOBS_PER_USER - 1),
    )
    conn.execute(
        "INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms,"
        " next_run_at) SELECT 'ep' || lpad(g::text, 5, '0'),"
        " 'job' || lpad((g / %s)::text, 4, '0'), 'user' || lpad((g / %s)::text, 3, '0'),"
        " 'endpoint ' || g, 'https://example.com/x', 3600000, %s"
        " FROM generate_series(0, %s) g",
        (
            ENDPOINTS_PER_JOB,
            JOBS_PER_USER * ENDPOINTS_PER_JOB,
            now + timedelta(days=1),
            ENDPOINTS - 1,
        ),
    )


def _rows(total: int, now: datetime) -> Any:
    """COPY text lines of `total` runs, in time order: slot after slot, every endpoint once
    a slot (each endpoint's own second within the minute), blocks of ~64k lines."""
    slots = -(-total // ENDPOINTS)
    spacing = SPAN / slots
    start = now - SPAN
    made, lines = 0, []
    for slot in range(slots):
        base = (start + spacing * slot).replace(second=0, microsecond=0)
        seconds = [(base + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S") for s in range(60)]
        for n in range(min(ENDPOINTS, total - made)):
            due = seconds[n % 60]
            late = (n * 7 + slot) % 90
            status = "failed" if (n + slot) % 10 == 0 else "success"
            code = "500" if status == "failed" else "200"
            lines.append(
                f"r{slot:05d}{n:05d}\t{endpoint_id(n)}\t{user_of(n)}\t{status}\tbaseline-interval"
                f"\t{due}+00\t{due}.{late:03d}+00\t{due}.{400 + late:03d}+00\t400\t{code}"
                f"\t{BODY}\n"
            )
            made += 1
            if len(lines) >= 65_536:
                yield "".join(lines)
                lines = []
    if lines:
        yield "".join(lines)


def seed_runs(url: str, total: int, now: datetime) -> dict[str, float]:
    """COPY `total` runs fast and fill the rollups; seconds per phase."""
    phases: dict[str, float] = {}
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'runs'"
            " AND indexname <> 'pk_runs'"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("SET session_replication_role = replica")  # no triggers, no FK checks
        blocks: list[str] = []
        lines = 0
        for block in _rows(total, now):
            blocks.append(block)
            lines += block.count("\n")
            if lines >= COPY_CHUNK:
                _copy(conn, blocks)
                blocks, lines = [], 0
        if blocks:
            _copy(conn, blocks)
        conn.execute("SET session_replication_role = DEFAULT")
        phases["copy"] = time.perf_counter() - began
        conn.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            conn.execute(definition)
        phases["indexes"] = time.perf_counter() - began - phases["copy"]
        at = time.perf_counter()
        fill_rollups(conn)
        phases["rollups"] = time.perf_counter() - at
    phases["total"] = time.perf_counter() - began
    return phases


def _copy(conn: psycopg.Connection[Any], blocks: list[str]) -> None:
    with (
        conn.transaction(),
        conn.cursor() as cur,
        cur.copy(f"COPY runs ({COLUMNS}) FROM STDIN") as copy,
    ):
        for block in blocks:
            copy.write(block)


def _migration_0010() -> Any:
    import cronicorn.store.migrations as migrations

    path = Path(migrations.__file__).parent / "versions" / "0010_runs_hourly.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rollup_statements() -> list[str]:
    """Hourly rows from the runs (migration 0010's own per-run facts and sums), then the
    daily and per-user rows from the hourly ones (sums of sums, max of maxes: the same
    numbers as grouping the runs again, for a fraction of the rows). One writer (0), as the
    migration's backfill: readers sum over writers."""
    m = _migration_0010()
    return [
        f"INSERT INTO runs_hourly (endpoint_id, hour, source, user_id, {m.MEASURES})"
        f" SELECT endpoint_id, hour, source, min(user_id), {m._SUMS}"
        f" FROM ({m.facts('runs', 1)}) AS f GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        f"INSERT INTO runs_daily (endpoint_id, day, source, user_id, {m.MEASURES})"
        " SELECT endpoint_id, date_bin('1 day', hour, '1970-01-01 00:00:00+00'), source,"
        f" min(user_id), {m._SUMS} FROM runs_hourly GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        f"INSERT INTO runs_hourly_users (user_id, hour, source, writer, {m.MEASURES})"
        f" SELECT user_id, hour, source, 0, {m._SUMS} FROM runs_hourly GROUP BY 1, 2, 3"
        " ORDER BY 1, 2, 3",
    ]


# Per job (migration 0012, where present): the endpoints' hourly successes and failures summed
# per job, as its trigger adds the finished (success or failed) runs with their endpoint's job.
JOB_ROLLUPS = [
    "INSERT INTO runs_jobs_hourly (job_id, hour, writer, user_id, success, failed)"
    " SELECT e.job_id, h.hour, 0, min(h.user_id), sum(h.success), sum(h.failed)"
    " FROM runs_hourly h JOIN endpoints e ON e.id = h.endpoint_id"
    " WHERE h.success + h.failed > 0 GROUP BY 1, 2 ORDER BY 1, 2",
    "INSERT INTO runs_jobs_daily (job_id, day, writer, user_id, success, failed)"
    " SELECT job_id, date_bin('1 day', hour, '1970-01-01 00:00:00+00'), 0, min(user_id),"
    " sum(success), sum(failed) FROM runs_jobs_hourly GROUP BY 1, 2 ORDER BY 1, 2",
]
# The triggers on `runs` whose tables this module fills; any other one would make the fast
# seed wrong, so it stops instead (teach it the new rollup first).
KNOWN_TRIGGERS = {
    "runs_hourly_insert",
    "runs_hourly_update",
    "runs_jobs_insert",
    "runs_jobs_update",
}


def _rollup_tables(conn: psycopg.Connection[Any]) -> list[str]:
    triggers = {
        row[0]
        for row in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'runs'::regclass AND NOT tgisinternal"
        )
    }
    if unknown := triggers - KNOWN_TRIGGERS:
        raise SystemExit(f"history_seed.py does not know what these triggers write: {unknown}")
    tables = ["runs_hourly", "runs_daily", "runs_hourly_users"]
    if "runs_jobs_insert" in triggers:
        tables += ["runs_jobs_hourly", "runs_jobs_daily"]
    return tables


def fill_rollups(conn: psycopg.Connection[Any]) -> None:
    """The rollups of the seeded runs, in key order (primary keys filled left to right),
    their other indexes dropped and rebuilt, foreign-key checks off (each endpoint exists)."""
    tables = _rollup_tables(conn)
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)"
        " AND indexname NOT LIKE 'pk_%%'",
        (tables,),
    ).fetchall()
    statements = rollup_statements() + (JOB_ROLLUPS if "runs_jobs_hourly" in tables else [])
    conn.execute("SET work_mem = '256MB'")
    conn.execute("SET maintenance_work_mem = '512MB'")
    conn.execute("SET session_replication_role = replica")
    with conn.transaction():
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for statement in statements:
            conn.execute(statement)
        for _, definition in indexes:
            conn.execute(definition)
    for setting in ("session_replication_role", "maintenance_work_mem", "work_mem"):
        conn.execute(f"RESET {setting}")


# Each rollup as a comparable set: per-user rows summed over writers (each session writes
# its own), the lateness sums (floating point, summed in another order) rounded to 1 µs.
_COMPARABLE = {
    "runs_hourly": "SELECT endpoint_id, hour, source, user_id, success, failed, skipped,"
    " timed, duration_ms, scheduled, round(late_ms::numeric, 3), late_max_ms FROM {t}",
    "runs_daily": "SELECT endpoint_id, day, source, user_id, success, failed, skipped,"
    " timed, duration_ms, scheduled, round(late_ms::numeric, 3), late_max_ms FROM {t}",
    "runs_hourly_users": "SELECT user_id, hour, source, sum(success), sum(failed),"
    " sum(skipped), sum(timed), sum(duration_ms), sum(scheduled),"
    " round(sum(late_ms)::numeric, 3), max(late_max_ms) FROM {t} GROUP BY 1, 2, 3",
    "runs_jobs_hourly": "SELECT job_id, hour, user_id, sum(success), sum(failed) FROM {t}"
    " GROUP BY 1, 2, 3",
    "runs_jobs_daily": "SELECT job_id, day, user_id, sum(success), sum(failed) FROM {t}"
    " GROUP BY 1, 2, 3",
}


def check_rollups(url: str, statements: int = 4) -> int:
    """The rollups the fast seed wrote equal what the triggers write for the same runs:
    keep them aside, empty the rollups, delete the runs and insert them again in `statements`
    time-ordered INSERTs with the triggers on (each statement's rows added to the last's),
    compare table by table; all rolled back. Returns the number of hourly rows compared."""
    with psycopg.connect(url) as conn:
        tables = _rollup_tables(conn)
        for table in tables:
            conn.execute(f"CREATE TEMP TABLE fast_{table} AS SELECT * FROM {table}")
        conn.execute(f"TRUNCATE {', '.join(tables)}")
        conn.execute("CREATE TEMP TABLE saved AS SELECT * FROM runs")
        conn.execute("DELETE FROM runs")
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'"
                " ORDER BY ordinal_position"
            )
        ]
        listed = ", ".join(columns)
        bounds = conn.execute(
            f"SELECT percentile_disc(ARRAY(SELECT g::float8 / {statements}"
            f" FROM generate_series(1, {statements} - 1) g)) WITHIN GROUP (ORDER BY started_at)"
            " FROM saved"
        ).fetchone()
        edges = [None, *(bounds[0] if bounds else []), None]
        for lo, hi in itertools.pairwise(edges):
            conn.execute(
                f"INSERT INTO runs ({listed}) SELECT {listed} FROM saved"
                " WHERE (%(lo)s::timestamptz IS NULL OR started_at >= %(lo)s)"
                " AND (%(hi)s::timestamptz IS NULL OR started_at < %(hi)s) ORDER BY started_at",
                {"lo": lo, "hi": hi},
            )
        for table in tables:
            select = _COMPARABLE[table]
            fast, triggered = select.format(t=f"fast_{table}"), select.format(t=table)
            row = conn.execute(
                f"SELECT (SELECT count(*) FROM ({fast} EXCEPT ALL {triggered}) a),"
                f" (SELECT count(*) FROM ({triggered} EXCEPT ALL {fast}) b),"
                f" (SELECT count(*) FROM ({triggered}) c)"
            ).fetchone()
            assert row is not None
            if row[0] or row[1] or not row[2]:
                raise AssertionError(
                    f"{table}: {row[0]} rows only from the fast seed, {row[1]} only from the"
                    f" triggers, {row[2]} in all"
                )
        hourly = conn.execute("SELECT count(*) FROM runs_hourly").fetchone()
        conn.rollback()
    return int(hourly[0]) if hourly else 0
