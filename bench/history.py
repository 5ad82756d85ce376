"""History at scale: run-history pages, endpoint health, dashboard stats and a real
scheduler's executions at N runs.

For each `--sizes` N: a fresh migrated database on one embedded PostgreSQL (under a temporary
CRONICORN_HOME, with `pg_stat_statements`; or BENCH_DATABASE_URL's server), 100 users x 10 jobs
x 10 endpoints (10,000 endpoints), and N runs seeded by COPY in time order (the order a
scheduler writes them, so one endpoint's runs are spread over the table as in production),
over the last 31 days: 1 in 10 failed, a small JSON body each (`history_seed.py`: triggers,
foreign keys and secondary indexes off for the COPY, the rollups filled by one GROUP BY each;
at the first size ≤ 200k it checks that those rollups equal what the triggers write). Then one
retention pass (`scheduler.retention.prune_once`, the default 30 days and 1,000 runs per
endpoint), VACUUM ANALYZE, and the timings, each over `--samples` random endpoints (or
users), one call at a time, through the store functions the API, the web pages and MCP call:

- history first page: `store.runs.page_for_endpoint`, `--page` runs (and 100), newest first;
- deep page by offset / by cursor: the page after the first 90 % of the endpoint's history,
  by `offset` and by the `cursor` the page before hands out; and back from there (`before`,
  the web page's "Newer");
- failed runs, first page: the same with `status="failed"` (its total reads each run's status);
- endpoint health: `store.runs.health` over 24 hours and over 7 days;
- dashboard stats: `store.stats.dashboard`, one user's 7 days.

Then a real `cronicorn scheduler` for `--warmup` + `--duration` seconds, `--active` of the
endpoints every second against bench/scheduler.py's target server, retention on (its
defaults; a pass at start and every 60 s): executions/s, lateness, its CPU per execution and
the database's (pg_stat_statements: execution time and buffers per execution, and what
retention deleted meanwhile).

    .venv/bin/python bench/history.py [--sizes 100000,10000000] [--samples 200] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
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

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from history_seed import (  # bench/history_seed.py
    ENDPOINTS,
    check_rollups,
    endpoint_id,
    seed_accounts,
    seed_runs,
    user_of,
)
from scale import STATS, start_postgres  # bench/scale.py

from scheduler import (  # bench/scheduler.py
    _cpu_seconds,
    free_port,
    postgres_processes,
    scheduler_env,
    start_target,
)

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).parent / "cronicorn")
PAGE = 10


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

            async def first_100(n: int) -> None:
                await run_store.page_for_endpoint(conn, user_of(n), endpoint_id(n), limit=100)

            async def by_offset(n: int) -> None:
                await run_store.page_for_endpoint(
                    conn, user_of(n), endpoint_id(n), limit=PAGE, offset=depth
                )

            cursors: dict[int, str | None] = {}

            async def by_cursor(n: int) -> None:
                await run_store.page_for_endpoint(
                    conn, user_of(n), endpoint_id(n), limit=PAGE, cursor=cursors[n]
                )

            async def newer_by_cursor(n: int) -> None:  # "Newer" from the deep page
                await run_store.page_for_endpoint(
                    conn, user_of(n), endpoint_id(n), limit=PAGE, before=cursors[n]
                )

            async def failed_first(n: int) -> None:  # the count reads each run's status
                await run_store.page_for_endpoint(
                    conn, user_of(n), endpoint_id(n), limit=PAGE, status="failed"
                )

            async def health(n: int) -> None:
                await run_store.health(conn, user_of(n), endpoint_id(n), now - timedelta(hours=24))

            async def health_7d(n: int) -> None:
                await run_store.health(conn, user_of(n), endpoint_id(n), now - timedelta(days=7))

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
                f"history first page ({PAGE})": lambda c, n: first(n),
                "history first page (100)": lambda c, n: first_100(n),
                f"deep page by offset ({depth})": lambda c, n: by_offset(n),
                "deep page by cursor": lambda c, n: by_cursor(n),
                "newer page by cursor (before)": lambda c, n: newer_by_cursor(n),
                f"failed runs, first page ({PAGE})": lambda c, n: failed_first(n),
                "endpoint health (24 h)": lambda c, n: health(n),
                "endpoint health (7 d)": lambda c, n: health_7d(n),
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


ACTIVATE = """
UPDATE endpoints SET url = %(base)s || '/t/' || id, baseline_interval_ms = 1000,
       next_run_at = %(start)s::timestamptz
           + (substr(id, 3)::int / %(stride)s * 1000 / %(active)s) * interval '1 millisecond',
       timeout_ms = 5000, max_response_size_kb = 16
WHERE substr(id, 3)::int %% %(stride)s = 0
"""
# Over the window, from pg_stat_statements: every statement of this database, then the
# retention's deletes of runs (by age and by count per endpoint) alone.
DB_STATS = """
SELECT sum(calls)::bigint, sum(total_exec_time),
       sum(shared_blks_hit + shared_blks_read)::float8, sum(shared_blks_read)::float8,
       sum(calls) FILTER (WHERE query LIKE 'DELETE FROM runs%%')::bigint,
       sum(rows) FILTER (WHERE query LIKE 'DELETE FROM runs%%')::bigint,
       sum(total_exec_time) FILTER (WHERE query LIKE 'DELETE FROM runs%%')
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%%pg_stat_statements%%'
"""
TOP = """
SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 70), calls, total_exec_time / calls,
       (shared_blks_hit + shared_blks_read)::float8 / calls
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC LIMIT 6
"""


def scheduler_window(url: str, home: str, args: Any) -> dict[str, Any]:
    """One `cronicorn scheduler` (retention on, its defaults) against `args.active`
    endpoints at 1 s: executions/s, lateness, its CPU and the database's per execution."""
    start = datetime.now(UTC) + timedelta(seconds=args.startup)
    stride = max(1, ENDPOINTS // args.active)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            ACTIVATE,
            {
                "base": f"http://127.0.0.1:{args.port}",
                "start": start,
                "stride": stride,
                "active": args.active,
            },
        )
        conn.execute("VACUUM ANALYZE endpoints")
    proc = subprocess.Popen(
        [CLI, "scheduler"], env=scheduler_env(url, home, args), start_new_session=True
    )
    sched = psutil.Process(proc.pid)
    try:
        _wait_for_a_run(url, proc, start)
        time.sleep(args.warmup)
        pg = postgres_processes(url)
        with psycopg.connect(url, autocommit=True) as conn, contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_stat_statements_reset()")
        load = os.getloadavg()[0]
        cpu0, pg0 = _cpu_seconds(sched), _cpu_of(pg)
        t0 = time.time()
        time.sleep(args.duration)
        t1 = time.time()
        cpu1, pg1 = _cpu_seconds(sched), _cpu_of(pg)
        db, top = _db_stats(url)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            STATS, {"t0": datetime.fromtimestamp(t0, UTC), "t1": datetime.fromtimestamp(t1, UTC)}
        ).fetchone()
    assert row is not None
    count = int(row[0])
    (p50, p95, p99), worst = row[1] or [0, 0, 0], float(row[2] or 0)
    per = 1e6 / count if count else 0.0
    calls, exec_ms, buffers, reads, r_calls, r_rows, r_ms = db
    return {
        "executions_per_s": count / (t1 - t0),
        "lateness_ms": [p50, p95, p99, worst],
        "failed": int(row[3]),
        "scheduler_cpu_us_per_execution": (cpu1 - cpu0) * per,
        "postgres_cpu_us_per_execution": (pg1 - pg0) * per,
        "statements_per_execution": (calls or 0) / count if count else 0.0,
        "db_exec_us_per_execution": (exec_ms or 0) * 1000 / count if count else 0.0,
        "buffers_per_execution": (buffers or 0) / count if count else 0.0,
        "reads_per_execution": (reads or 0) / count if count else 0.0,
        "retention": {"statements": r_calls or 0, "deleted": r_rows or 0, "ms": r_ms or 0.0},
        "top": top,
        "load": [load, os.getloadavg()[0]],
    }


def _wait_for_a_run(url: str, proc: subprocess.Popen[bytes], since: datetime) -> None:
    """Until the scheduler started its first run (the seeded history does not count)."""
    deadline = time.monotonic() + 300
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE started_at >= %s)",
                (since - timedelta(seconds=5),),
            ).fetchone()
            if row is not None and row[0]:
                return
            if proc.poll() is not None:
                raise SystemExit(f"the scheduler exited with {proc.returncode}")
            time.sleep(0.2)
    raise SystemExit("the scheduler ran nothing within 300 s")


def _cpu_of(processes: list[psutil.Process]) -> float:
    """CPU seconds of the PostgreSQL processes alive at the start (the scheduler's pooled
    connections live through the window)."""
    total = 0.0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            total += _cpu_seconds(proc)
    return total


def _db_stats(url: str) -> tuple[tuple[Any, ...], list[Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute(DB_STATS).fetchone()
            top = [list(r) for r in conn.execute(TOP)]
        except psycopg.Error:  # an external server without pg_stat_statements
            return (None,) * 7, []
    return tuple(row) if row else (None,) * 7, top


def prepare(
    base_url: str, url: str, name: str, size: int, now: datetime, check: bool
) -> tuple[dict[str, float], int, float]:
    """A fresh database of `size` runs, pruned once by retention, vacuumed and analysed."""
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name} TEMPLATE history_template")
    with psycopg.connect(url, autocommit=True) as conn:
        seed_accounts(conn, now)
    phases = seed_runs(url, size, now)
    print(
        f"{size:,} runs seeded in {phases['total']:.0f} s (COPY {phases['copy']:.0f} s,"
        f" indexes {phases['indexes']:.0f} s, rollups {phases['rollups']:.0f} s),"
        f" load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if check:
        rows = check_rollups(url)
        print(f"rollups equal the triggers' ({rows:,} hourly rows compared)", flush=True)
    deleted, took = asyncio.run(retention_pass(url, now))
    print(f"retention pass: {deleted:,} runs deleted in {took:.1f}s", flush=True)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    print(f"VACUUM ANALYZE {time.perf_counter() - started:.0f}s", flush=True)
    return phases, deleted, took


def at_minute(now: datetime, minute: int) -> datetime:
    """The latest past instant at `minute` past an hour: where the ranges' raw edges fall
    (a 7-day range starting at :30 reads half an hour of runs) decides what the dashboard
    reads, so before/after runs of kept databases compare at the same minute."""
    at = now.replace(minute=minute, second=0)
    return at if at <= now else at - timedelta(hours=1)


def run_size(base_url: str, home: str, size: int, args: Any, check: bool) -> dict[str, Any]:
    name = f"history_{size}"
    url = urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))
    with psycopg.connect(base_url, autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        if args.reuse and found and args.minute is not None:
            now = at_minute(now, args.minute)
        if args.reuse and found:  # a database kept by --keep: measure it again as it is
            print(f"{size:,} runs: reusing database {name}", flush=True)
            phases: dict[str, float] = {"total": 0.0}
            deleted, took = 0, 0.0
        else:
            phases, deleted, took = prepare(base_url, url, name, size, now, check)
        load_before = os.getloadavg()
        result = asyncio.run(measure(url, now, args.samples))
        load_after = os.getloadavg()
        plans = explain(url, now)
        window = scheduler_window(url, home, args) if args.active else {}
        return {
            "size": size,
            "seed_s": phases,
            "retention_deleted": deleted,
            "retention_s": took,
            "load": [load_before[0], load_after[0]],
            "timings": result,
            "plans": plans,
            "scheduler": window,
        }
    finally:
        if not args.keep:
            with psycopg.connect(base_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def print_table(results: list[dict[str, Any]]) -> None:
    names = [k for k in results[0]["timings"] if not k.startswith("_")]
    head = " | ".join(f"{r['size']:,} runs: p50 / p95 ms (server ms, buffers)" for r in results)
    print(f"\n| measure | {head} |")
    print("|---|" + "---|" * len(results))
    for i, name in enumerate(names):
        cells = []
        for r in results:
            key = [k for k in r["timings"] if not k.startswith("_")][i]
            t = r["timings"][key]
            cells.append(
                f"{t['p50_ms']:.2f} / {t['p95_ms']:.2f} ({t['server_ms']:.2f}, {t['buffers']:.0f})"
            )
        print(f"| {name} | {' | '.join(cells)} |")
    for r in results:
        rows = r["timings"]["_runs"]
        print(
            f"{r['size']:,}: {rows['rows']:,.0f} runs after retention"
            f" ({rows['per_endpoint']:.0f} per endpoint), seeded in {r['seed_s']['total']:.0f}s,"
            f" retention {r['retention_deleted']:,} in {r['retention_s']:.1f}s,"
            f" load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}; plans: {r['plans']}"
        )
    print(
        "\n| runs | executions/s | lateness p50 / p95 / p99 / max ms | scheduler CPU µs/exec"
        " | PostgreSQL CPU µs/exec | statements/exec | DB exec µs/exec | buffers/exec"
        " | retention in window | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        w = r["scheduler"]
        if not w:
            continue
        late = " / ".join(f"{x:.0f}" for x in w["lateness_ms"])
        ret = w["retention"]
        print(
            f"| {r['size']:,} | {w['executions_per_s']:.1f} | {late}"
            f" | {w['scheduler_cpu_us_per_execution']:.0f}"
            f" | {w['postgres_cpu_us_per_execution']:.0f}"
            f" | {w['statements_per_execution']:.2f} | {w['db_exec_us_per_execution']:.0f}"
            f" | {w['buffers_per_execution']:.1f} | {ret['statements']} statements,"
            f" {ret['deleted']:,} runs, {ret['ms']:.0f} ms"
            f" | {w['load'][0]:.1f} -> {w['load'][1]:.1f} |"
        )
    for r in results:
        for query, calls, ms, buffers in r["scheduler"].get("top", []):
            print(f"  {r['size']:,}: {calls} x {ms:.3f} ms, {buffers:.1f} buffers: {query}")


def parse() -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,10000000")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--page", type=int, default=PAGE, help="runs per history page")
    parser.add_argument("--active", type=int, default=100, help="endpoints at 1 s (0: none)")
    parser.add_argument("--duration", type=float, default=90.0, help="scheduler's seconds")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--startup", type=float, default=4.0, help="first due after seeding")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--reuse", action="store_true", help="measure kept databases again")
    parser.add_argument(
        "--minute", type=int, default=None, help="with --reuse: measure at hh:MM (default: now)"
    )
    parser.add_argument("--json", default="")
    return parser.parse_args()


def main() -> None:
    global PAGE
    args = parse()
    # a stopped bench stops its scheduler too (the `finally` blocks run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    PAGE = args.page
    args.port = free_port()
    from cronicorn.store.migrate import upgrade

    with contextlib.ExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory(prefix="cronicorn-history-"))
        external = os.environ.get("BENCH_DATABASE_URL")
        if external:
            base_url = external
        else:
            embedded = start_postgres(Path(home))
            stack.enter_context(embedded.session())
            base_url = embedded.url()
        template = urlunsplit(urlsplit(base_url)._replace(path="/history_template"))
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS history_template")
            conn.execute("CREATE DATABASE history_template")
        upgrade(template)
        with psycopg.connect(template, autocommit=True) as conn, contextlib.suppress(psycopg.Error):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        target = start_target(args.port)
        stack.callback(target.wait, 10)
        stack.callback(target.terminate)
        results = []
        checked = False
        for size in (int(s) for s in args.sizes.split(",") if s):
            check = not checked and size <= 200_000
            checked |= check
            results.append(run_size(base_url, home, size, args, check))
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2, default=str))
            print_table(results[-1:])
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\nmachine: {os.cpu_count()} CPUs, load average after the run {load}")
        print_table(results)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
