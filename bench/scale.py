"""Scheduler at scale: claim cost and lateness at 10k, 100k and 1M endpoints, same demand.

    .venv/bin/python bench/scale.py                                 # 10k, 100k, 1M
    .venv/bin/python bench/scale.py --sizes 10000,1000000 --duration 60 --json out.json

What it does, all on this machine:

1. starts a fresh embedded PostgreSQL (default settings plus `pg_stat_statements`) under a
   temporary home and migrates one template database;
2. starts the target HTTP server of `bench/scheduler.py` in its own process;
3. for each N: a fresh database from the template, seeded by COPY (secondary indexes of
   `endpoints` dropped and rebuilt, triggers and foreign-key checks off for the COPY) with N
   endpoints as an installation of that size has them, most of them idle:
   - `--active` endpoints (default 500) every `--interval-s` (1 s), due times spread over one
     interval: the same demand at every N;
   - the rest: 30 % in paused jobs (outside the claim index), ~10 % archived, ~20 % paused
     (`paused_until`, and `next_run_at`, days ahead), ~40 % on 1 h / 6 h / 1 day intervals
     whose next run lies after the measured window;
   then ONE `cronicorn scheduler` process for a warm-up plus `--duration` seconds;
4. prints executions/s and lateness p50/p95/p99/max (runs table: started_at - due_at), the
   scheduler's claim statement as PostgreSQL saw it over the window (`pg_stat_statements`:
   calls, mean/max execution time, rows and shared buffers per claim), CPU per execution and
   RSS of the scheduler, and the load average; then EXPLAIN (ANALYZE, BUFFERS) of the claim
   (rolled back) with due rows waiting: which index it walks and how many rows it reads.

Buffers per claim do not move with the machine's load; milliseconds do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from scheduler import (  # bench/scheduler.py
    _cpu_seconds,
    free_port,
    scheduler_env,
    start_target,
    wait_until_running,
)

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).parent / "cronicorn")
IDLE_INTERVALS_MS = (3_600_000, 21_600_000, 86_400_000)
COPY_CHUNK = 200_000


# -- seeding -----------------------------------------------------------------------------------
def stride_of(n: int, active: int) -> int:
    """Every `stride`-th endpoint is active; a multiple of 20 keeps them out of the paused
    jobs (jobs of 10 endpoints, the odd ones of 1, 3 and 5 in every 10 are paused)."""
    return max(20, n // active // 20 * 20)


def job_paused(job: int) -> bool:
    return job % 10 in (1, 3, 5)


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def endpoint_lines(n: int, active: int, interval_ms: int, base: str, start: datetime) -> Any:
    """COPY text of N endpoints (see the module docstring for the mix), in chunks."""
    stride = stride_of(n, active)
    idle_from = start + timedelta(hours=2)  # idle endpoints' next runs: after the window
    n_active = -(-n // stride)
    lines: list[str] = []
    for i in range(n):
        job = i // 10
        archived = paused = r"\N"
        job_active = "f" if job_paused(job) else "t"
        every = interval_ms
        if i % stride == 0:  # active: due times spread over one interval
            due = start + timedelta(milliseconds=(i // stride) * interval_ms / n_active)
        else:
            r = (i * 7919) % 100
            every = IDLE_INTERVALS_MS[i % 3]
            due = idle_from + timedelta(milliseconds=(i * 104_729) % every)
            if job_active == "t" and r < 15:
                archived = _ts(start - timedelta(days=1 + i % 30))
            elif job_active == "t" and r < 45:
                due = start + timedelta(days=1 + i % 30, seconds=i % 3600)
                paused = _ts(due)
        lines.append(
            f"e{i:07d}\tj{job:06d}\tu{i // 100:05d}\tendpoint {i}\t{base}/t/{i}\t{every}"
            f"\t{_ts(due)}\t{paused}\t{archived}\t{job_active}\t16\t5000\n"
        )
        if len(lines) >= COPY_CHUNK:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


COLUMNS = (
    "id, job_id, user_id, name, url, baseline_interval_ms, next_run_at, paused_until,"
    " archived_at, job_active, max_response_size_kb, timeout_ms"
)


def seed(
    url: str,
    n: int,
    active: int,
    interval_ms: int,
    base: str,
    start: datetime,
    fillfactor: int | None = None,
) -> float:
    """Users, jobs and N endpoints by COPY; seconds taken (index rebuild and ANALYZE too).
    `fillfactor`: the `endpoints` table's, set before the COPY (None: the migrations')."""
    began = time.perf_counter()
    jobs = -(-n // 10)
    with psycopg.connect(url, autocommit=True) as conn:
        if fillfactor is not None:
            conn.execute(f"ALTER TABLE endpoints SET (fillfactor = {int(fillfactor)})")
        conn.execute(
            "INSERT INTO users (id, email, name) SELECT 'u' || lpad(g::text, 5, '0'),"
            " 'bench' || g || '@example.com', 'bench' FROM generate_series(0, %s) g",
            ((jobs - 1) // 10,),
        )
        conn.execute(
            "INSERT INTO jobs (id, user_id, name, status) SELECT 'j' || lpad(g::text, 6, '0'),"
            " 'u' || lpad((g / 10)::text, 5, '0'), 'job ' || g,"
            " CASE WHEN g %% 10 IN (1, 3, 5) THEN 'paused' ELSE 'active' END"
            " FROM generate_series(0, %s) g",
            (jobs - 1,),
        )
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'endpoints'"
            " AND indexdef NOT LIKE 'CREATE UNIQUE%'"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("SET session_replication_role = replica")  # no triggers, no FK checks
        for block in endpoint_lines(n, active, interval_ms, base, start):
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY endpoints ({COLUMNS}) FROM STDIN") as copy,
            ):
                copy.write(block)
        conn.execute("SET session_replication_role = DEFAULT")
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute("VACUUM ANALYZE users, jobs, endpoints")
        conn.execute("CHECKPOINT")  # not the seeding's dirty pages flushed during the window
    return time.perf_counter() - began


# -- one measurement ---------------------------------------------------------------------------
STATS = """
SELECT count(*),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY lateness),
       max(lateness),
       count(*) FILTER (WHERE status <> 'success')
FROM (
    SELECT extract(epoch FROM started_at - due_at) * 1000 AS lateness, status
    FROM runs WHERE started_at >= %(t0)s AND started_at < %(t1)s AND status <> 'skipped'
) AS r
"""

# `--timeline`: the window second by second (when the late runs were due: a stall shows as a
# few bad seconds, a slow path as every second a little late).
TIMELINE = """
SELECT floor(extract(epoch FROM due_at - %(t0)s))::int AS second, count(*),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - due_at)),
       max(extract(epoch FROM started_at - due_at))
FROM runs WHERE due_at >= %(t0)s AND due_at < %(t1)s AND status <> 'skipped'
GROUP BY 1 ORDER BY 1
"""

# The scheduler's claim statement (store.claims.CLAIM_SQL) as pg_stat_statements saw it.
CLAIM_STATS = """
SELECT sum(calls)::bigint, sum(total_exec_time), max(max_exec_time), sum(rows)::float8,
       sum(shared_blks_hit + shared_blks_read)::float8, sum(shared_blks_read)::float8
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query LIKE 'WITH%%picked AS%%' AND query LIKE '%%INSERT INTO runs%%'
  AND query NOT LIKE '%%EXPLAIN%%'
"""


# Every statement of the window, heaviest first: the claim, the batch write's lock and finish
# write (with the rollup triggers of migration 0010 inside it), the outbox call, heartbeats.
STATEMENTS = """
SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90), calls::bigint, total_exec_time,
       rows::bigint, (shared_blks_hit + shared_blks_read)::bigint, shared_blks_read::bigint,
       shared_blks_dirtied::bigint, wal_bytes::float8
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%%pg_stat_statements%%'
ORDER BY total_exec_time DESC
LIMIT %(limit)s
"""

# Updates of `endpoints` over the window and how many were HOT (no new index entries).
HOT = """
SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'endpoints'
"""


@dataclass
class Statement:
    query: str  # the first 90 characters, whitespace folded
    calls: int
    total_ms: float
    rows: int
    buffers: int
    reads: int
    dirtied: int
    wal_bytes: float


@dataclass
class Claims:
    calls: int = 0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    rows_per_call: float = 0.0
    buffers_per_call: float = 0.0
    reads_per_call: float = 0.0


@dataclass
class Plan:
    index: str = ""  # how the claim finds endpoints: "Index Scan using ix_…" or a scan type
    rows_read: int = 0  # endpoint rows the pick looked at (returned + removed by filter)
    claimed: int = 0
    buffers: int = 0  # shared buffers of the whole claim statement
    execution_ms: float = 0.0
    next_due_buffers: int = 0  # the idle loop's "when is the next due?" statement
    next_due_index: str = ""
    text: str = ""


@dataclass
class Result:
    endpoints: int
    active: int
    seed_s: float
    executions_per_s: float
    p50: float
    p95: float
    p99: float
    max: float
    failed: int
    cpu_us_per_execution: float
    scheduler_rss_mb: float
    load: float
    claims: Claims = field(default_factory=Claims)
    plan: Plan = field(default_factory=Plan)
    window_s: float = 0.0
    statements: list[Statement] = field(default_factory=list)
    endpoint_updates: int = 0  # UPDATEs of `endpoints` rows over the window
    hot_updates: int = 0  # of which HOT


def measure(url: str, home: str, args: Any, n: int) -> Result:
    interval_ms = int(args.interval_s * 1000)
    start = datetime.now(UTC) + timedelta(seconds=args.startup)
    base = f"http://127.0.0.1:{args.port}"
    seed_s = seed(url, n, args.active, interval_ms, base, start, args.fillfactor)
    print(f"seeded {n:,} endpoints in {seed_s:.1f} s", flush=True)
    env = scheduler_env(url, home, args)
    proc = subprocess.Popen([CLI, "scheduler"], env=env, start_new_session=True)
    sched = psutil.Process(proc.pid)
    try:
        wait_until_running(url, proc)
        time.sleep(args.warmup)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
            hot0 = _hot(conn)
        load = os.getloadavg()[0]
        cpu0 = _cpu_seconds(sched)
        t0 = time.time()
        rss = 0
        while time.time() < t0 + args.duration:
            rss = max(rss, sched.memory_info().rss)
            time.sleep(0.5)
        t1 = time.time()
        cpu1 = _cpu_seconds(sched)
        with psycopg.connect(url, autocommit=True) as conn:
            claims = claim_stats(conn)
            statements = [
                Statement(*row) for row in conn.execute(STATEMENTS, {"limit": 12}).fetchall()
            ]
            time.sleep(0.6)  # the statistics collector's flush (pg_stat_user_tables)
            hot1 = _hot(conn)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            STATS,
            {"t0": datetime.fromtimestamp(t0, UTC), "t1": datetime.fromtimestamp(t1, UTC)},
        ).fetchone()
        assert row is not None
        if args.timeline:
            window = {"t0": datetime.fromtimestamp(t0, UTC), "t1": datetime.fromtimestamp(t1, UTC)}
            print(f"{n:,} endpoints, by second of due time: runs, p99 / max lateness ms")
            for second, runs, p99_s, max_s in conn.execute(TIMELINE, window).fetchall():
                print(f"  {second:4d} {runs:5d} {p99_s * 1000:8.1f} {max_s * 1000:8.1f}")
        plan = explain_claim(conn, args.batch)
    count, (p50, p95, p99), worst, failed = row[0], row[1] or [0, 0, 0], row[2] or 0, row[3]
    return Result(
        endpoints=n,
        active=-(-n // stride_of(n, args.active)),
        seed_s=seed_s,
        executions_per_s=count / (t1 - t0),
        p50=p50,
        p95=p95,
        p99=p99,
        max=float(worst),
        failed=failed,
        cpu_us_per_execution=(cpu1 - cpu0) / count * 1e6 if count else 0.0,
        scheduler_rss_mb=rss / 2**20,
        load=load,
        claims=claims,
        plan=plan,
        window_s=t1 - t0,
        statements=statements,
        endpoint_updates=hot1[0] - hot0[0],
        hot_updates=hot1[1] - hot0[1],
    )


def _hot(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(HOT).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def claim_stats(conn: psycopg.Connection[Any]) -> Claims:
    row = conn.execute(CLAIM_STATS).fetchone()
    if row is None or not row[0]:
        return Claims()
    calls, total, worst, rows, buffers, reads = row
    return Claims(
        calls=calls,
        mean_ms=total / calls,
        max_ms=worst,
        rows_per_call=rows / calls,
        buffers_per_call=buffers / calls,
        reads_per_call=reads / calls,
    )


def explain_claim(conn: psycopg.Connection[Any], limit: int) -> Plan:
    """EXPLAIN (ANALYZE, BUFFERS) of the scheduler's claim, rolled back, once the active
    endpoints' next slots are due (the scheduler is stopped, so they wait). As the scheduler
    runs it: psycopg prepares a statement after 5 executions and PostgreSQL then settles on
    a generic plan (no parameter values), so this is the generic plan."""
    from cronicorn.store.claims import CLAIM_SQL, NEXT_DUE_SQL, claim_params

    time.sleep(1.5)  # the active set's next slots (≤ 1 interval ahead) become due
    now = datetime.now(UTC)
    params = claim_params(
        worker="explain", lease="explain#1", now=now, horizon=now, limit=limit, lease_s=60
    )
    plan = Plan()
    doc = _explain_generic(conn, CLAIM_SQL, params, "JSON")[0][0][0]
    plan.execution_ms = doc["Execution Time"]
    plan.buffers = _buffers(doc["Plan"])
    pick = _pick_node(doc["Plan"])
    if pick is not None:
        plan.index = _scan_name(pick)
        plan.rows_read = int(pick.get("Actual Rows", 0)) + int(
            pick.get("Rows Removed by Filter", 0)
        )
        plan.claimed = int(pick.get("Actual Rows", 0))
    plan.text = "\n".join(line[0] for line in _explain_generic(conn, CLAIM_SQL, params, "TEXT"))
    doc = _explain_generic(conn, NEXT_DUE_SQL, {}, "JSON")[0][0][0]
    plan.next_due_buffers = _buffers(doc["Plan"])
    node = _pick_node(doc["Plan"])
    plan.next_due_index = "" if node is None else _scan_name(node)
    return plan


def _explain_generic(
    conn: psycopg.Connection[Any], statement: str, params: dict[str, Any], form: str
) -> list[Any]:
    """EXPLAIN ANALYZE of `sql`'s generic plan (PREPARE, then EXECUTE), rolled back."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    prepared = re.sub(r"%\((\w+)\)s", number, statement)
    values = sql.SQL(", ").join(sql.Literal(params[name]) for name in names).as_string(conn)
    execute = f"EXECUTE bench_stmt({values})" if names else "EXECUTE bench_stmt"
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE bench_stmt AS {prepared}")
        rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT {form}) {execute}").fetchall()
    conn.execute("DEALLOCATE bench_stmt")
    return rows


def _nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _pick_node(root: dict[str, Any]) -> dict[str, Any] | None:
    """The scan that reads `endpoints e2` (the pick)."""
    for node in _nodes(root):
        if node.get("Relation Name") == "endpoints" and node.get("Alias") == "e2":
            return node
    return None


def _scan_name(node: dict[str, Any]) -> str:
    name = node.get("Index Name")
    return f"{node['Node Type']} using {name}" if name else str(node["Node Type"])


def _buffers(node: dict[str, Any]) -> int:
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


def print_table(results: list[Result]) -> None:
    print()
    print(
        "| endpoints | active | seed | executions/s | lateness p50 / p95 / p99 / max (ms) "
        "| claims | claim mean / max (ms) | rows per claim | buffers per claim "
        "| CPU per execution | RSS | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        c = r.claims
        print(
            f"| {r.endpoints:,} | {r.active} | {r.seed_s:.0f} s | {r.executions_per_s:,.0f} "
            f"| {r.p50:.1f} / {r.p95:.1f} / {r.p99:.1f} / {r.max:.0f} | {c.calls:,} "
            f"| {c.mean_ms:.2f} / {c.max_ms:.1f} | {c.rows_per_call:.1f} "
            f"| {c.buffers_per_call:.0f} ({c.reads_per_call:.1f} read) "
            f"| {r.cpu_us_per_execution:.0f} µs | {r.scheduler_rss_mb:.0f} MB | {r.load:.1f} |"
        )
    print()
    print(
        "| endpoints | claim plan (pick) | rows read / claimed | buffers | execution ms "
        "| next-due plan, buffers |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        p = r.plan
        print(
            f"| {r.endpoints:,} | {p.index} | {p.rows_read} / {p.claimed} | {p.buffers} "
            f"| {p.execution_ms:.2f} | {p.next_due_index}, {p.next_due_buffers} |"
        )
    print_statements(results)


def print_statements(results: list[Result]) -> None:
    """Per size, the window's heaviest statements per execution of the scheduler."""
    print()
    print(
        "| endpoints | statement | calls | ms per call | ms per execution | rows per call "
        "| buffers per call (read) | dirtied per call | WAL bytes per execution |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        executions = max(1, round(r.executions_per_s * r.window_s))
        for s in r.statements:
            calls = max(1, s.calls)
            print(
                f"| {r.endpoints:,} | `{s.query}` | {s.calls:,} | {s.total_ms / calls:.2f} "
                f"| {s.total_ms / executions:.3f} | {s.rows / calls:.1f} "
                f"| {s.buffers / calls:.0f} ({s.reads / calls:.1f}) | {s.dirtied / calls:.1f} "
                f"| {s.wal_bytes / executions:,.0f} |"
            )
        hot = r.hot_updates / r.endpoint_updates * 100 if r.endpoint_updates else 0.0
        print(
            f"| {r.endpoints:,} | endpoints UPDATEs over the window: {r.endpoint_updates:,}, "
            f"HOT {hot:.0f} % | | | | | | | |"
        )


def parse() -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma list of N")
    parser.add_argument("--active", type=int, default=500, help="endpoints every interval")
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--startup", type=float, default=4.0, help="first due after seeding")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--plans", action="store_true", help="print each claim plan in full")
    parser.add_argument(
        "--fillfactor", type=int, default=None, help="endpoints' fillfactor (default: schema's)"
    )
    parser.add_argument("--json", default=None, help="write the results to this file")
    parser.add_argument(
        "--timeline", action="store_true", help="print each second's runs and lateness"
    )
    return parser.parse_args()


def start_postgres(home: Path) -> Any:
    """An embedded PostgreSQL with pg_stat_statements loaded (set once, then restarted)."""
    from cronicorn.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(home)
    with embedded.session(), psycopg.connect(embedded.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    return embedded


def main() -> None:
    args = parse()
    from cronicorn.store.migrate import upgrade

    args.port = free_port()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="cronicorn-scale-") as home:
        embedded = start_postgres(Path(home))
        with embedded.session():
            admin = embedded.url()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("CREATE DATABASE scale_template")
            upgrade(embedded.url("scale_template"))
            with psycopg.connect(embedded.url("scale_template"), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            target = start_target(args.port)
            try:
                for n in (int(x) for x in args.sizes.split(",")):
                    name = f"scale_{n}"
                    with psycopg.connect(admin, autocommit=True) as conn:
                        conn.execute(f"CREATE DATABASE {name} TEMPLATE scale_template")
                    results.append(measure(embedded.url(name), home, args, n))
                    print_table(results[-1:])
                    if args.plans:
                        print(results[-1].plan.text)
                    with psycopg.connect(admin, autocommit=True) as conn:
                        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            finally:
                target.terminate()
                target.wait(timeout=10)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nmachine: {os.cpu_count()} CPUs, load average after the run {load}")
    print_table(results)
    print("\nclaim plan at the largest size:\n" + results[-1].plan.text)
    if args.json:
        document = {"machine": {"cpus": os.cpu_count()}, "results": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
