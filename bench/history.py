"""History at scale: run-history pages, endpoint health and dashboard stats at N runs.

For each `--sizes` N: a fresh migrated database on one embedded PostgreSQL (under a
temporary CRONICORN_HOME, or BENCH_DATABASE_URL's server), 100 users x 10 jobs x 10
endpoints (10,000 endpoints), and N runs seeded by COPY in time order (the order a scheduler
writes them, so one endpoint's runs are spread over the table as in production), spread over
the last 31 days: 1 in 10 failed, a small JSON body each. The secondary indexes of `runs` are
dropped for the COPY and rebuilt after it with their own definitions (the rollup triggers of
migration 0010 stay on and fill `runs_hourly` as the rows go in). Then one retention pass
(`scheduler.retention.prune_once`, the default 30 days and 1,000 runs per endpoint), VACUUM
ANALYZE, and the timings, each over `--samples` random endpoints (or users), one call at a
time, through the store functions the API, the web pages and MCP call:

- history first page: `store.runs.page_for_endpoint`, 100 runs, newest first;
- deep page by offset / by cursor: the 100 runs after the first 90 % of the endpoint's
  history, by `offset` and by the `cursor` the page before hands out;
- endpoint health: `store.runs.health` over 24 hours;
- dashboard stats: `store.stats.dashboard`, one user's 7 days.

    .venv/bin/python bench/history.py [--sizes 100000,10000000] [--samples 200] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from api import CLI, cli  # bench/api.py

USERS, JOBS_PER_USER, ENDPOINTS_PER_JOB = 100, 10, 10
ENDPOINTS = USERS * JOBS_PER_USER * ENDPOINTS_PER_JOB
SPAN = timedelta(days=31)  # one day more than the retention keeps
COPY_CHUNK = 1_000_000  # rows per COPY statement (and per trigger transition table)
PAGE = 100
BODY = '{"ok": true, "queue": 3}'


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
        (ENDPOINTS_PER_JOB, JOBS_PER_USER * ENDPOINTS_PER_JOB, now, ENDPOINTS - 1),
    )


def _rows(total: int, now: datetime) -> Any:
    """COPY text lines of `total` runs, in time order: slot after slot, every endpoint once
    a slot (each endpoint's own second within the minute), chunks of ~64k lines."""
    slots = -(-total // ENDPOINTS)
    spacing = SPAN / slots
    start = now - SPAN
    made, lines = 0, []
    for slot in range(slots):
        base = start + spacing * slot
        base = base.replace(second=0, microsecond=0)
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


COLUMNS = (
    "id, endpoint_id, user_id, status, source, due_at, started_at, finished_at, duration_ms,"
    " status_code, response_body"
)


def seed_runs(url: str, total: int, now: datetime) -> float:
    """COPY `total` runs with the secondary indexes of `runs` dropped and rebuilt; seconds."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'runs'"
            " AND indexname <> 'pk_runs'"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        # Foreign-key checks and the rollup triggers are off for the COPY (a superuser's
        # `replica` role); the rollups are then filled by migration 0010's own backfill,
        # the same sums the triggers would have written, in one pass.
        conn.execute("SET session_replication_role = replica")
        chunk: list[str] = []
        lines = 0
        for block in _rows(total, now):
            chunk.append(block)
            lines += block.count("\n")
            if lines >= COPY_CHUNK:
                _copy(conn, chunk)
                chunk, lines = [], 0
        if chunk:
            _copy(conn, chunk)
        conn.execute("SET session_replication_role = DEFAULT")
        conn.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute(_migration_0010().BACKFILL)
    return time.perf_counter() - started


def _migration_0010() -> Any:
    import cronicorn.store.migrations as migrations

    path = Path(migrations.__file__).parent / "versions" / "0010_runs_hourly.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy(conn: psycopg.Connection[Any], blocks: list[str]) -> None:
    with (
        conn.transaction(),
        conn.cursor() as cur,
        cur.copy(f"COPY runs ({COLUMNS}) FROM STDIN") as copy,
    ):
        for block in blocks:
            copy.write(block)


async def retention_pass(url: str, now: datetime) -> tuple[int, float]:
    from cronicorn.scheduler.retention import RetentionPolicy, prune_once

    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        ids = [endpoint_id(n) for n in range(ENDPOINTS)]
        deleted = await prune_once(conn, RetentionPolicy(), lambda: now, ids)
    return deleted, time.perf_counter() - started


# -- timings ---------------------------------------------------------------------------------
Timed = Callable[[Any, int], Awaitable[None]]


def _pct(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def measure(url: str, now: datetime, samples: int) -> dict[str, dict[str, float]]:
    from sqlalchemy import text

    from cronicorn.store import runs as run_store
    from cronicorn.store import stats
    from cronicorn.store.db import make_async_engine

    engine = make_async_engine(url, pool_size=1, max_overflow=0)
    rng = random.Random(17)
    out: dict[str, dict[str, float]] = {}
    try:
        async with engine.connect() as conn:
            per = int((await conn.execute(text("SELECT count(*) FROM runs"))).scalar_one())
            depth = max(0, int(per / ENDPOINTS * 0.9))

            async def first(n: int) -> None:
                await run_store.page_for_endpoint(conn, user_of(n), endpoint_id(n), limit=PAGE)

            async def by_offset(n: int) -> None:
                await run_store.page_for_endpoint(
                    conn, user_of(n), endpoint_id(n), limit=PAGE, offset=depth
                )

            cursors: dict[int, str | None] = {}

            async def by_cursor(n: int) -> None:
                await run_store.page_for_endpoint(
                    conn, user_of(n), endpoint_id(n), limit=PAGE, cursor=cursors[n]
                )

            async def health(n: int) -> None:
                await run_store.health(conn, user_of(n), endpoint_id(n), now - timedelta(hours=24))

            async def dashboard(n: int) -> None:
                user = user_of(n)
                await stats.dashboard(
                    conn, stats.StatsQuery(user, now - timedelta(days=7), now, now)
                )

            picks = [rng.randrange(ENDPOINTS) for _ in range(samples)]
            for n in set(picks):  # the cursor a client holds after page `depth`'s predecessor
                if depth:
                    before = await run_store.page_for_endpoint(
                        conn, user_of(n), endpoint_id(n), limit=1, offset=depth - 1
                    )
                    cursors[n] = before.next_cursor
                else:
                    cursors[n] = None
            await conn.commit()
            timed: dict[str, Timed] = {
                "history first page": lambda c, n: first(n),
                f"deep page by offset ({depth})": lambda c, n: by_offset(n),
                "deep page by cursor": lambda c, n: by_cursor(n),
                "endpoint health (24 h)": lambda c, n: health(n),
                "dashboard stats (7 d)": lambda c, n: dashboard(n),
            }
            for name, call in timed.items():
                for n in picks[:10]:  # warm-up: plans, statement caches
                    await call(conn, n)
                times = []
                for n in picks:
                    started = time.perf_counter()
                    await call(conn, n)
                    times.append((time.perf_counter() - started) * 1000)
                    await conn.rollback()
                server_ms, buffers = await _server_side(conn, call, picks[:20])
                out[name] = {
                    "p50_ms": statistics.median(times),
                    "p95_ms": _pct(times, 0.95),
                    "max_ms": max(times),
                    "server_ms": server_ms,
                    "buffers": buffers,
                }
            out["_runs"] = {"rows": per, "per_endpoint": per / ENDPOINTS}
    finally:
        await engine.dispose()
    return out


async def _server_side(conn: Any, call: Timed, picks: list[int]) -> tuple[float, float]:
    """Medians over `picks` of the calls' statements as PostgreSQL ran them (EXPLAIN
    ANALYZE): execution time and shared buffers touched, summed over a call's statements.
    Buffers do not depend on the machine's load; they show what a query reads."""
    from sqlalchemy import event

    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, params))

    times, buffers = [], []
    for n in picks:
        captured.clear()
        event.listen(conn.sync_engine, "before_cursor_execute", capture)
        try:
            await call(conn, n)
        finally:
            event.remove(conn.sync_engine, "before_cursor_execute", capture)
        driver: Any = (await conn.get_raw_connection()).driver_connection
        ms = hits = 0.0
        for statement, params in list(captured):
            cur = await driver.execute(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", params
            )
            plan = (await cur.fetchone())[0][0]
            ms += plan["Execution Time"]
            hits += plan["Plan"].get("Shared Hit Blocks", 0)
            hits += plan["Plan"].get("Shared Read Blocks", 0)
        await conn.rollback()
        times.append(ms)
        buffers.append(hits)
    return statistics.median(times), statistics.median(buffers)


def explain(url: str, now: datetime) -> list[str]:
    """The plan shapes of the history reads at this size (EXPLAIN ANALYZE, BUFFERS)."""
    from cronicorn.store import runs as run_store

    lines = []
    n = ENDPOINTS // 2
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM runs WHERE endpoint_id = %s", (endpoint_id(n),))
        depth = int(0.9 * (row.fetchone() or (0,))[0])
    sql = run_store._list_statement(False, False, False, False).text
    params = {"endpoint_id": endpoint_id(n), "user_id": user_of(n), "fetch": PAGE + 1}
    psql = sql.replace(":endpoint_id", "%(endpoint_id)s").replace(":user_id", "%(user_id)s")
    psql = psql.replace(":fetch", "%(fetch)s").replace(":offset", "%(offset)s")
    with psycopg.connect(url) as conn:
        for label, offset in (("first page", 0), ("offset 90 %", depth)):
            plan = conn.execute(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {psql}", {**params, "offset": offset}
            ).fetchone()
            top = plan[0][0] if plan else {}
            lines.append(
                f"{label}: {top.get('Execution Time', 0):.2f} ms,"
                f" shared hit {top['Plan'].get('Shared Hit Blocks', 0)}"
                f" read {top['Plan'].get('Shared Read Blocks', 0)}"
            )
    return lines


def run_size(base_url: str, env: dict[str, str], size: int, samples: int) -> dict[str, Any]:
    name = f"history_{size}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))
    try:
        cli("migrate", env={**env, "DATABASE_URL": url})
        now = datetime.now(UTC).replace(microsecond=0)
        with psycopg.connect(url, autocommit=True) as conn:
            seed_accounts(conn, now)
        seeded = seed_runs(url, size, now)
        print(f"{size:,} runs: COPY + index rebuild {seeded:.0f}s", flush=True)
        deleted, took = asyncio.run(retention_pass(url, now))
        print(f"retention pass: {deleted:,} runs deleted in {took:.1f}s", flush=True)
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        print(f"VACUUM ANALYZE {time.perf_counter() - started:.0f}s", flush=True)
        load_before = os.getloadavg()
        result = asyncio.run(measure(url, now, samples))
        load_after = os.getloadavg()
        plans = explain(url, now)
        return {
            "size": size,
            "seed_s": seeded,
            "retention_deleted": deleted,
            "retention_s": took,
            "load": [load_before[0], load_after[0]],
            "timings": result,
            "plans": plans,
        }
    finally:
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def print_table(results: list[dict[str, Any]]) -> None:
    names = [k for k in results[0]["timings"] if not k.startswith("_")]
    head = " | ".join(f"{r['size']:,} runs: p50 / p95 ms" for r in results)
    print(f"\n| measure | {head} |")
    print("|---|" + "---|" * len(results))
    for i, name in enumerate(names):
        cells = []
        for r in results:
            key = [k for k in r["timings"] if not k.startswith("_")][i]
            t = r["timings"][key]
            cells.append(
                f"{t['p50_ms']:.2f} / {t['p95_ms']:.2f} (server {t['server_ms']:.2f},"
                f" {t['buffers']:.0f} buffers)"
            )
        print(f"| {name} | {' | '.join(cells)} |")
    for r in results:
        rows = r["timings"]["_runs"]
        print(
            f"{r['size']:,}: {rows['rows']:,.0f} runs after retention"
            f" ({rows['per_endpoint']:.0f} per endpoint), seeded in {r['seed_s']:.0f}s,"
            f" retention {r['retention_deleted']:,} in {r['retention_s']:.1f}s,"
            f" load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}; plans: {r['plans']}"
        )


def main() -> None:
    global PAGE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,10000000")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--page", type=int, default=PAGE, help="runs per history page")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    PAGE = args.page
    home = Path(tempfile.mkdtemp(prefix="cronicorn-bench-history-"))
    env = {**os.environ, "CRONICORN_HOME": str(home), "LOG_LEVEL": "warning"}
    external = os.environ.get("BENCH_DATABASE_URL")
    try:
        if external:
            base_url = external
        else:
            env.pop("DATABASE_URL", None)
            cli("db", "start", env=env)
            base_url = cli("db", "url", env=env)
        results = []
        for size in (int(s) for s in args.sizes.split(",") if s):
            results.append(run_size(base_url, env, size, args.samples))
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2))
        print_table(results)
    finally:
        if not external:
            subprocess.run(
                [CLI, "db", "stop", "--force"], env=env, capture_output=True, check=False
            )
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
