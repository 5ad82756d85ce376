"""Web page latency: each page of the dashboard as the real `cronicorn api` serves it.

Builds a database (an embedded PostgreSQL under a temporary CRONICORN_HOME, or
BENCH_DATABASE_URL) with one admin user, 200 jobs x 5 endpoints (1,000 endpoints) and
`--runs` runs (default 1,000,000) spread over the last 30 days (a tenth of them on one deep
endpoint; the rollup triggers of migration 0010 fill the hourly rollups as they go in), plus
20,000 AI sessions; starts `cronicorn api`, signs in through /login like a
browser, then requests each page `--requests` times, one at a time, after a warm-up, and
prints p50/p95/max per page. One request at a time on localhost: the figure is the server's
time to answer (render included) plus a loopback round trip. Beside it, the CPU time (user +
system, psutil) per request of the API process and of the embedded PostgreSQL's processes,
which other load on the machine moves much less than wall time.

`--home DIR` keeps the embedded database in DIR (started if stopped, never removed) and seeds
it only once: later runs measure the same data, so a before/after pair differs only in code.

    .venv/bin/python bench/web.py [--runs 1000000] [--requests 100] [--skip "30 days,older"]
        [--home DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from api import CLI, cli, free_port, wait_healthy  # bench/api.py

PASSWORD = "bench password for the web pages"
EMAIL = "web-bench@example.com"


def seeded_user(url: str) -> str | None:
    """The bench user of an earlier run of this database (`--home`), if there is one."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM users WHERE email = %s", (EMAIL,)).fetchone()
    return None if row is None else str(row[0])


async def make_user(url: str) -> str:
    from cronicorn.auth import service
    from cronicorn.store.db import make_async_engine

    engine = make_async_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            user = await service.create_user(conn, email=EMAIL, password=PASSWORD, is_admin=True)
    finally:
        await engine.dispose()
    return user.id


IDS = {
    "job": "job-1",
    "endpoint": "ep-7-2",
    "deep": "ep-1-1",
    "run": "run-10",
    "session": "ai-ep-7-2-1",
}


def seed(url: str, user_id: str, runs: int) -> None:
    """1,000 endpoints, `runs` runs over 30 days and 20 AI sessions per endpoint (`IDS` names
    a job, a typical and the deep endpoint, a run and a session of them)."""
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO jobs (id, user_id, name) SELECT 'job-' || g, %s, 'job ' || g"
            " FROM generate_series(1, 200) g",
            (user_id,),
        )
        conn.execute(
            "INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms,"
            " next_run_at) SELECT 'ep-' || j || '-' || e, 'job-' || j, %s, 'endpoint ' || e,"
            " 'https://example.com/x', 60000, %s"
            " FROM generate_series(1, 200) j, generate_series(1, 5) e",
            (user_id, now),
        )
        conn.execute(
            "INSERT INTO runs (id, endpoint_id, user_id, status, source, due_at, started_at,"
            " finished_at, duration_ms, status_code)"
            " SELECT 'run-' || i, CASE WHEN i %% 10 = 0 THEN 'ep-1-1'"
            "   ELSE 'ep-' || (1 + i %% 200) || '-' || (1 + (i / 200) %% 5) END, %s,"
            "   CASE WHEN i %% 10 = 3 THEN 'failed' ELSE 'success' END,"
            "   CASE WHEN i %% 3 = 0 THEN 'ai-interval' ELSE 'baseline-interval' END,"
            "   %s - i * (interval '30 days' / %s),"
            "   %s - i * (interval '30 days' / %s) + (i %% 7) * interval '1 second',"
            "   %s - i * (interval '30 days' / %s) + interval '2 seconds', 120, 200"
            " FROM generate_series(1, %s) AS i",
            (user_id, now, runs, now, runs, now, runs, runs),
        )
        conn.execute(
            "INSERT INTO ai_sessions (id, endpoint_id, user_id, analyzed_at, token_usage,"
            " outcome, reasoning, tool_calls) SELECT 'ai-' || e.id || '-' || g, e.id, %s,"
            " %s - g * interval '36 hours', 900, 'applied', 'steady',"
            ' \'[{"tool": "get_health", "args": {}, "result": {"ok": true}}]\'::jsonb'
            " FROM endpoints e, generate_series(1, 20) g",
            (user_id, now),
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        for table in ("runs_hourly", "runs_daily", "runs_hourly_users"):  # rollups (0010)
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
                count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                print(f"{table}: {count[0] if count else 0:,} rows")


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("dashboard (7 days)", "/"),
        ("dashboard (30 days)", "/?range=30d"),
        ("dashboard (24 h, one job)", f"/?range=24h&job={ids['job']}"),
        ("dashboard (older activity)", "/?events=runs&offset=200"),
        ("jobs", "/jobs"),
        ("job", f"/jobs/{ids['job']}"),
        ("endpoint", f"/endpoints/{ids['endpoint']}"),
        ("endpoint (deep history)", f"/endpoints/{ids['deep']}"),
        ("run", f"/runs/{ids['run']}"),
        ("endpoint AI", f"/endpoints/{ids['endpoint']}/ai"),
        ("AI session", f"/ai-sessions/{ids['session']}"),
        ("settings", "/settings"),
        ("admin users", "/admin/users"),
        ("admin audit", "/admin/audit"),
    ]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process and its children (PostgreSQL's backends); 0 without."""
    if pid is None:
        return 0.0
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def postmaster_pid(home: Path) -> int | None:
    pid_file = home / "pgdata" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


async def measure(
    base: str, ids: dict[str, str], requests: int, skip: list[str], pids: tuple[int, int | None]
) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        form = {"email": EMAIL, "password": PASSWORD, "next": "/"}
        async with http.post(f"{base}/login", data=form, allow_redirects=False) as resp:
            if resp.status != 303:
                raise SystemExit(f"sign-in failed: {resp.status} {await resp.text()}")
        print(
            f"| {'page':<28} | {'p50 ms':>7} | {'p95 ms':>7} | {'max ms':>7} | {'KB':>5} |"
            f" {'API CPU ms':>10} | {'DB CPU ms':>9} |"
        )
        print(f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 7}|{'-' * 12}|{'-' * 11}|")
        for name, path in pages(ids):
            if any(word in name for word in skip):
                continue
            size = 0
            for _ in range(5):  # warm-up: statement caches, plans, templates
                async with http.get(base + path, allow_redirects=False) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"{path}: {resp.status} {body[:300]!r}")
                    size = len(body)
            times = []
            cpu = [cpu_seconds(pid) for pid in pids]
            for _ in range(requests):
                started = time.perf_counter()
                async with http.get(base + path, allow_redirects=False) as resp:
                    await resp.read()
                times.append((time.perf_counter() - started) * 1000)
            api_cpu, db_cpu = (
                (cpu_seconds(pid) - before) * 1000 / requests
                for pid, before in zip(pids, cpu, strict=True)
            )
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(
                f"| {name:<28} | {statistics.median(times):7.1f} | {p95:7.1f} |"
                f" {times[-1]:7.1f} | {size / 1024:5.0f} | {api_cpu:10.1f} | {db_cpu:9.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument(
        "--skip", default="", help="comma-separated words: pages whose name has one are skipped"
    )
    parser.add_argument(
        "--home", type=Path, help="keep the embedded database here and seed it only once"
    )
    parser.add_argument(
        "--no-migrate",
        action="store_true",
        help="with --home: measure an older tree (PYTHONPATH) against the schema a newer one"
        " migrated to (its own `migrate` would refuse an unknown revision)",
    )
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="cronicorn-bench-web-"))
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "CRONICORN_HOME": str(home),
        "AUTH_SECRET": "b" * 48,
        "LOG_LEVEL": "warning",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WEB_URL": f"http://127.0.0.1:{port}",
    }
    external = os.environ.get("BENCH_DATABASE_URL")
    api: subprocess.Popen[str] | None = None
    try:
        if external:
            env["DATABASE_URL"] = external
        else:
            env.pop("DATABASE_URL", None)
            cli("db", "start", env=env)
        if not args.no_migrate:
            cli("migrate", env=env)
        url = external or cli("db", "url", env=env)
        if args.home is not None and seeded_user(url) is not None:
            print(f"reusing the database seeded earlier in {home}")
        else:
            user_id = asyncio.run(make_user(url))
            started = time.perf_counter()
            seed(url, user_id, args.runs)
            took = time.perf_counter() - started
            print(f"seeded 1,000 endpoints, {args.runs:,} runs, 20,000 AI sessions in {took:.0f}s")
        api = subprocess.Popen([CLI, "api"], env={**env, "DATABASE_URL": url}, text=True)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        load = os.getloadavg()
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        skip = [word for word in args.skip.split(",") if word]
        db_pid = None if external else postmaster_pid(home)
        asyncio.run(measure(base, IDS, args.requests, skip, (api.pid, db_pid)))
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        if api is not None:
            api.terminate()
            api.wait(30)
        if not external and args.home is None:
            subprocess.run(
                [CLI, "db", "stop", "--force"], env=env, capture_output=True, check=False
            )
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
