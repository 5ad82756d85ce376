"""Scheduler benchmark: one `cronicorn scheduler` process against N endpoints.

    .venv/bin/python bench/scheduler.py                        # 1k and 10k endpoints, 1 s
    .venv/bin/python bench/scheduler.py --endpoints 10000 --interval-s 5 --duration 30
    .venv/bin/python bench/scheduler.py --endpoints 2000 --rules both  # cost of rules

What it does, all on this machine:

1. starts a fresh embedded PostgreSQL (durable commits, default settings) in a temp dir and
   migrates it;
2. starts a target HTTP server (aiohttp, keep-alive, 200 + small JSON) in a SEPARATE process
   and measures its own maximum request rate with a short aiohttp blast (no scheduler);
3. for each N: creates N endpoints with the given interval, due times spread evenly over one
   interval (as endpoints created at different moments are), runs ONE scheduler process for
   a warm-up plus `--duration` seconds, then stops it with SIGTERM;
4. prints executions/s and lateness (started_at - due_at, from the runs table) p50/p95/p99/
   max over the measured window, the scheduler's CPU% (100% = one core) and peak RSS, and the
   CPU% of PostgreSQL and of the target meanwhile.

Demand is N / interval executions per second; when it exceeds what one scheduler can do,
endpoints skip slots (no drift, no catch-up storm) and lateness grows: executions/s is then
the saturation throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "cronicorn")


# -- target server (separate process) -------------------------------------------------------
def serve_target(port: int) -> None:
    from aiohttp import web

    # A JSON body the rules and assertions of `--rules` look into (same body either way).
    payload = b'{"ok":true,"status":"ok","queue":{"depth":7,"name":"main"},"items":[{"ok":true}]}'

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/json")

    app = web.Application()
    app.router.add_get("/t/{n}", ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def blast(url: str, seconds: float, concurrency: int) -> float:
    """Requests/s the target answers to a keep-alive aiohttp client (no scheduler running)."""
    import aiohttp

    done = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with http.get(url) as resp:
                    await resp.read()
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - started)


def blast_process(url: str, seconds: float, concurrency: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(f"{asyncio.run(blast(url, seconds, concurrency)):.0f}")


# -- database ----------------------------------------------------------------------------------
SEED = """
WITH u AS (
    INSERT INTO users (id, email) VALUES ('bench-user', 'bench@example.com') RETURNING id
), j AS (
    INSERT INTO jobs (id, user_id, name) SELECT 'bench-job', id, 'bench' FROM u RETURNING id
)
INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, next_run_at,
                       max_response_size_kb, timeout_ms)
SELECT 'e' || lpad(g::text, 7, '0'), 'bench-job', 'bench-user', 'e' || g,
       %(base)s || '/t/' || g, %(interval_ms)s,
       %(start)s::timestamptz + (g::bigint * %(interval_ms)s / %(n)s) * interval '1 millisecond',
       16, 5000
FROM generate_series(0, %(n)s - 1) AS g
"""

STATS = """
SELECT count(*),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY lateness),
       max(lateness),
       count(*) FILTER (WHERE status <> 'success')
FROM (
    SELECT extract(epoch FROM started_at - due_at) * 1000 AS lateness, status
    FROM runs WHERE started_at >= %(t0)s AND started_at < %(t1)s
) AS r
"""


RULES_SQL = """
UPDATE endpoints SET
    assertions = '{"statuses": ["2xx"],
                   "conditions": [{"jsonPath": "$.ok", "op": "==", "value": true}]}',
    rules = jsonb_build_array(
        '{"name": "deep queue", "when": {"jsonPath": "$.queue.depth", "op": ">", "value": 100},
          "then": {"action": "interval", "intervalMs": 1000, "ttlMinutes": 10}}'::jsonb,
        '{"name": "degraded", "when": {"any": [{"status": ["5xx"]},
          {"jsonPath": "$.status", "op": "==", "value": "degraded"}]},
          "then": {"action": "pause", "forMinutes": 5}}'::jsonb,
        jsonb_build_object(
            'name', 'steady',
            'when', '{"jsonPath": "$.items[0].ok", "op": "==", "value": true}'::jsonb,
            'then', jsonb_build_object('action', 'interval', 'intervalMs', %(interval_ms)s,
                                       'ttlMinutes', 60)))
"""


def add_rules(url: str, interval_ms: int) -> None:
    """Assertions and three rules per endpoint: two that never fire (deep queue, degraded)
    and one that fires on every run with the baseline interval, so demand is unchanged while
    each write carries the rule's hint and the fired rule."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RULES_SQL, {"interval_ms": interval_ms})
        conn.execute("VACUUM ANALYZE")


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE runs, endpoints, jobs, users CASCADE")


def seed(url: str, n: int, interval_ms: int, base: str, start: float) -> None:
    from datetime import UTC, datetime

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            SEED,
            {
                "base": base,
                "interval_ms": interval_ms,
                "n": n,
                "start": datetime.fromtimestamp(start, UTC),
            },
        )
        conn.execute("VACUUM ANALYZE")


# -- one measurement ---------------------------------------------------------------------------
@dataclass
class Result:
    rules: bool
    endpoints: int
    interval_s: float
    executions_per_s: float
    p50: float
    p95: float
    p99: float
    max: float
    failed: int
    scheduler_cpu: float
    scheduler_rss_mb: float
    postgres_cpu: float
    target_cpu: float


def postgres_processes(url: str) -> list[psutil.Process]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        postmaster = psutil.Process(row[0]).parent()
    assert postmaster is not None
    return [postmaster, *postmaster.children()]


def cpu_of(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            total += proc.cpu_percent(None)
    return total


def measure(
    url: str, home: str, target: subprocess.Popen[bytes], args: Any, n: int, rules: bool
) -> Result:
    reset(url)
    interval_ms = int(args.interval_s * 1000)
    start = time.time() + args.startup
    seed(url, n, interval_ms, f"http://127.0.0.1:{args.port}", start)
    if rules:
        add_rules(url, interval_ms)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CRONICORN_HOME": home,
        "AUTH_SECRET": "b" * 40,
        "CRONICORN_ALLOW_NETWORKS": "127.0.0.0/8",
        "LOG_LEVEL": "warning",
        "SCHEDULER_CONCURRENCY": str(args.concurrency),
        "SCHEDULER_BATCH_SIZE": str(args.batch),
    }
    proc = subprocess.Popen([CLI, "scheduler"], env=env, start_new_session=True)
    sched = psutil.Process(proc.pid)
    target_proc = psutil.Process(target.pid)
    try:
        time.sleep(max(0.0, start + args.warmup - time.time()))
        pg = postgres_processes(url)
        cpu_of([sched, target_proc, *pg])  # prime; backends may exit meanwhile
        t0 = time.time()
        rss = 0
        while time.time() < t0 + args.duration:
            rss = max(rss, sched.memory_info().rss)
            time.sleep(0.5)
        t1 = time.time()
        sched_cpu = sched.cpu_percent(None)
        target_cpu = target_proc.cpu_percent(None)
        pg_cpu = cpu_of(pg)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    from datetime import UTC, datetime

    with psycopg.connect(url) as conn:
        row = conn.execute(
            STATS,
            {"t0": datetime.fromtimestamp(t0, UTC), "t1": datetime.fromtimestamp(t1, UTC)},
        ).fetchone()
    assert row is not None
    count, (p50, p95, p99), worst, failed = row[0], row[1] or [0, 0, 0], row[2] or 0, row[3]
    return Result(
        rules=rules,
        endpoints=n,
        interval_s=args.interval_s,
        executions_per_s=count / (t1 - t0),
        p50=p50,
        p95=p95,
        p99=p99,
        max=float(worst),
        failed=failed,
        scheduler_cpu=sched_cpu,
        scheduler_rss_mb=rss / 2**20,
        postgres_cpu=pg_cpu,
        target_cpu=target_cpu,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"target server did not start on port {port}")


def print_table(results: list[Result], target_rate: float, load: str) -> None:
    print()
    print(f"machine: {os.cpu_count()} CPUs, load average before the run {load}")
    print(f"target alone (aiohttp blast, keep-alive, 64 connections): {target_rate:,.0f} req/s")
    print()
    print(
        "| rules | endpoints | interval | demand/s | executions/s | lateness p50 / p95 / p99 / max"
        " (ms) | failed | scheduler CPU | scheduler RSS | PostgreSQL CPU | target CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {'3 + assertion' if r.rules else 'none'} | {r.endpoints:,} | {r.interval_s:g} s "
            f"| {r.endpoints / r.interval_s:,.0f} "
            f"| {r.executions_per_s:,.0f} "
            f"| {r.p50:.1f} / {r.p95:.1f} / {r.p99:.1f} / {r.max:.0f} | {r.failed} "
            f"| {r.scheduler_cpu:.0f}% | {r.scheduler_rss_mb:.0f} MB "
            f"| {r.postgres_cpu:.0f}% | {r.target_cpu:.0f}% |"
        )


def parse() -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", default="1000,10000", help="comma list of N")
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--startup", type=float, default=4.0, help="first due after seeding")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--rules",
        choices=("off", "on", "both"),
        default="off",
        help="assertions and three response rules per endpoint; both: each N without, then with",
    )
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse()
    if args.role == "target":
        serve_target(args.port)
        return
    if args.role == "blast":
        blast_process(f"http://127.0.0.1:{args.port}/t/0", 3.0, 64)
        return
    from cronicorn.embedded import EmbeddedPostgres
    from cronicorn.store.migrate import upgrade

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    args.port = free_port()
    with tempfile.TemporaryDirectory(prefix="cronicorn-bench-") as home:
        embedded = EmbeddedPostgres(Path(home))
        with embedded.session():
            url = embedded.url()
            upgrade(url)
            target = subprocess.Popen(
                [sys.executable, __file__, "--role", "target", "--port", str(args.port)]
            )
            try:
                wait_for_port(args.port)
                out = subprocess.run(
                    [sys.executable, __file__, "--role", "blast", "--port", str(args.port)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                target_rate = float(out.stdout.strip())
                results = []
                variants = {"off": [False], "on": [True], "both": [False, True]}[args.rules]
                for n in (int(x) for x in args.endpoints.split(",")):
                    for rules in variants:
                        results.append(measure(url, home, target, args, n, rules))
                        print_table(results[-1:], target_rate, load)
            finally:
                target.terminate()
                target.wait(timeout=10)
    print_table(results, target_rate, load)


if __name__ == "__main__":
    main()
