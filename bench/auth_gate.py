"""Cost of the authentication gate's database work per request.

What `current_user` does for an API-key request (key lookup joined with the user and the
rate-limit upsert in one autocommitted statement with asynchronous commit), against the first
design (lookup, separate upsert, durable commit) and a baseline of `SELECT 1` + commit, each
driven by N concurrent tasks with ONE key (the worst case: every request updates the same
counter row).
Prints calls/s and p50/p99 per variant.
Uses an embedded PostgreSQL under a temporary CRONICORN_HOME, or BENCH_DATABASE_URL.

    .venv/bin/python bench/auth_gate.py [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronicorn.api.ratelimit import RateLimiter, request_bucket
from cronicorn.auth import credentials, service
from cronicorn.auth.tokens import hash_token
from cronicorn.store import api_keys
from cronicorn.store.db import make_async_engine

CLI = str(Path(sys.executable).parent / "cronicorn")


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cronicorn {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


async def measure(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[None]],
    concurrency: int,
    seconds: float,
) -> tuple[float, float, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with engine.connect() as conn:
                await work(conn)
                await conn.commit()
            latencies.append((time.perf_counter() - started) * 1000)

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - begin
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, cuts[49], cuts[98]


async def run(url: str, seconds: float, concurrency: int) -> None:
    engine = make_async_engine(url, pool_size=concurrency, max_overflow=0)
    limiter = RateLimiter()
    try:
        _, key = await service.create_user_with_api_key(engine, f"bench-{time.time()}@example.com")

        async def baseline(conn: AsyncConnection) -> None:
            await conn.execute(text("SELECT 1"))

        async def two_statements(conn: AsyncConnection) -> None:
            """The first design: key lookup, then a separate upsert, durable commit."""
            now = datetime.now(UTC)
            found = await api_keys.find_active(conn, hash_token(key), now)
            assert found is not None
            bucket = request_bucket("key", found.key.id, "GET")
            await limiter.check(conn, bucket, 10**9, now)

        async def gate(conn: AsyncConnection) -> None:
            """What `current_user` runs: one statement in autocommit, asynchronous commit."""
            ttl = timedelta(days=30)
            now = datetime.now(UTC)
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            found = await credentials.authenticate(
                conn, key, via="api_key", access="read", now=now, ttl=ttl
            )
            assert found is not None
            await conn.commit()
            await conn.execution_options(isolation_level=conn.default_isolation_level)

        print(f"| variant ({concurrency} tasks)       | calls/s | p50 ms | p99 ms |")
        print("|-----------------------------|---------|--------|--------|")
        for name, work in (
            ("SELECT 1 + commit", baseline),
            ("lookup; upsert; commit", two_statements),
            ("gate (one statement)", gate),
        ):
            await measure(engine, work, concurrency, 1.0)  # warm up
            rate, p50, p99 = await measure(engine, work, concurrency, seconds)
            print(f"| {name:27} | {rate:7.0f} | {p50:6.2f} | {p99:6.2f} |")
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    external = os.environ.get("BENCH_DATABASE_URL")
    home = Path(tempfile.mkdtemp(prefix="cronicorn-bench-auth-"))
    env = {**os.environ, "CRONICORN_HOME": str(home), "LOG_LEVEL": "warning"}
    env.pop("DATABASE_URL", None)
    try:
        if external:
            env["DATABASE_URL"] = external
        else:
            cli("db", "start", env=env)
        cli("migrate", env=env)
        url = external or cli("db", "url", env=env)
        asyncio.run(run(url, args.seconds, args.concurrency))
    finally:
        if not external:
            subprocess.run(
                [CLI, "db", "stop", "--force"], env=env, capture_output=True, check=False
            )
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
