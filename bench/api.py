"""API latency benchmark: the real `cronicorn api` process over HTTP.

Builds a database (an embedded PostgreSQL under a temporary CRONICORN_HOME, or
BENCH_DATABASE_URL) with one user, 20 jobs x 5 endpoints and 100,000 runs (20,000 on one
endpoint, the rest spread over the others), starts `cronicorn api` (or the same app under
uvicorn with `--server uvicorn`), then drives each route open-loop at a
fixed rate (requests are sent on schedule whether or not earlier ones finished, so queueing
shows in the latency) and prints requests/s, p50 and p99. A closed-loop pass with 16
connections measures throughput.

    .venv/bin/python bench/api.py [--rate 200] [--seconds 10] [--runs 100000]

`--cpu N` measures instead the CPU time the API process (and its workers) spends per request,
over N requests per route of `--routes` with 16 connections: a figure that holds on a loaded
machine, where requests/s do not. `--profile DIR` also records a py-spy profile (sampled
without stopping the process) of each route under that load (py-spy must be installed; it is
a local tool, not a dependency).

    .venv/bin/python bench/api.py --cpu 5000 [--profile /tmp/prof]

`--wrk SECONDS` drives every server with the same `wrk -t1 -c16 -dSECONDS` (wrk must be
installed: `apt-get install wrk`) on each of `--routes` (default all four: `GET /api/jobs`,
`GET /api/health`, a job's endpoints and an endpoint's first 100 runs, with the API key), in
`--rounds` interleaved rounds: the bare Starlette + psycopg route (`bench/bare_route.py`, the
floor, jobs and health only), `cronicorn api` with 1 and 2 workers, and with `--before-src
DIR` the same for an older `src/` tree (`git archive REV src | tar -x -C DIR`). It prints
req/s, p50, p99, the CPU ms per request of the server, of the benchmark's PostgreSQL and of
wrk, the cores the three kept busy and the load average per measurement, then medians.

    .venv/bin/python bench/api.py --wrk 8 --rounds 3 --before-src /tmp/before/src
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

BIN = Path(sys.executable).parent
CLI = str(BIN / "cronicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cronicorn {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


# -- data -----------------------------------------------------------------------------------
async def make_api_key(url: str) -> tuple[str, str]:
    """A user and a raw API key for it (through the accounts code, as the CLI would)."""
    from cronicorn.auth import service
    from cronicorn.store.db import make_async_engine

    engine = make_async_engine(url, pool_size=1, max_overflow=0)
    try:
        user_id, key = await service.create_user_with_api_key(engine, "bench@example.com")
    finally:
        await engine.dispose()
    return user_id, key


def seed(url: str, user_id: str, runs: int, deep: int) -> tuple[str, str, str]:
    """20 jobs x 5 endpoints and `runs` runs: `deep` of them on one endpoint (a long history,
    as with retention off), the rest spread evenly over the other 99 (about what the default
    per-endpoint retention of 1,000 keeps). Returns (a job id, a typical endpoint, the deep
    endpoint)."""
    from cronicorn.domain.ids import new_id

    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        job_ids = [new_id() for _ in range(20)]
        endpoint_ids: list[str] = []
        for n, job_id in enumerate(job_ids):
            conn.execute(
                "INSERT INTO jobs (id, user_id, name) VALUES (%s, %s, %s)",
                (job_id, user_id, f"job-{n}"),
            )
            for m in range(5):
                endpoint_id = new_id()
                endpoint_ids.append(endpoint_id)
                conn.execute(
                    "INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms,"
                    " next_run_at) VALUES (%s, %s, %s, %s, 'https://example.com/x', 60000, %s)",
                    (endpoint_id, job_id, user_id, f"ep-{m}", now),
                )
        deep_id, others = endpoint_ids[0], endpoint_ids[1:]
        conn.execute(
            "INSERT INTO runs (id, endpoint_id, user_id, status, source, started_at,"
            " finished_at, duration_ms, status_code)"
            " SELECT gen_random_uuid()::text, CASE WHEN i <= %s THEN %s"
            "   ELSE (%s::text[])[1 + i %% 99] END, %s,"
            "   CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'success' END, 'baseline-interval',"
            "   now() - i * interval '1 second', now() - i * interval '1 second', 120, 200"
            " FROM generate_series(1, %s) AS i",
            (deep, deep_id, others, user_id, runs),
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return job_ids[0], others[0], deep_id


# -- load -----------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    sent: int
    ok: int
    seconds: float
    latencies_ms: list[float]

    def row(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = statistics.median(lat) if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
        rate = self.ok / self.seconds if self.seconds else 0.0
        errors = self.sent - self.ok
        return f"| {self.name:<34} | {rate:8.1f} | {p50:7.2f} | {p99:7.2f} | {errors:6} |"


Request = Callable[[int], tuple[str, str, Any]]


async def open_loop(
    http: aiohttp.ClientSession, name: str, make: Request, rate: float, seconds: float
) -> Result:
    """Send `rate` requests per second for `seconds`, each at its scheduled instant."""
    total = int(rate * seconds)
    latencies: list[float] = []
    ok = 0

    async def one(i: int) -> None:
        nonlocal ok
        method, url, body = make(i)
        started = time.perf_counter()
        async with http.request(method, url, json=body) as resp:
            await resp.read()
            if resp.status < 400:
                ok += 1
        latencies.append((time.perf_counter() - started) * 1000)

    begin = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return Result(name, total, ok, time.perf_counter() - begin, latencies)


async def closed_loop(
    http: aiohttp.ClientSession, name: str, url: str, connections: int, seconds: float
) -> Result:
    latencies: list[float] = []
    ok = sent = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal ok, sent
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with http.get(url) as resp:
                await resp.read()
                sent += 1
                ok += resp.status < 400
            latencies.append((time.perf_counter() - started) * 1000)

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return Result(name, sent, ok, time.perf_counter() - begin, latencies)


async def drive(
    base: str, key: str, ids: tuple[str, str, str], rate: float, seconds: float
) -> None:
    job_id, typical, deep = ids
    headers = {"x-api-key": key}
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
        # Warm up connections, statement caches and query plans of every measured read route:
        # the figures are steady state, not the first calls after start.
        warm = [f"{base}/api/jobs", f"{base}/api/endpoints/{typical}/runs?limit=100"]
        warm.append(f"{base}/api/endpoints/{deep}/runs?limit=100")
        for url in warm * 20:
            async with http.get(url) as resp:
                await resp.read()

        def list_jobs(i: int) -> tuple[str, str, Any]:
            return "GET", f"{base}/api/jobs", None

        def list_runs(i: int) -> tuple[str, str, Any]:
            path = f"/api/endpoints/{typical}/runs?limit=100&offset={(i % 8) * 100}"
            return "GET", base + path, None

        def list_deep_runs(i: int) -> tuple[str, str, Any]:
            path = f"/api/endpoints/{deep}/runs?limit=100&offset={(i % 10) * 100}"
            return "GET", base + path, None

        def create_endpoint(i: int) -> tuple[str, str, Any]:
            # An IP literal: the SSRF check needs no DNS (this sandbox has no resolver; in
            # production a host name costs one lookup per host a minute, cached).
            body = {
                "name": f"new-{i}",
                "url": "https://93.184.215.14/n",
                "baselineIntervalMs": 60000,
            }
            return "POST", f"{base}/api/jobs/{job_id}/endpoints", body

        results = [
            await open_loop(http, f"GET /jobs @{rate:g}/s", list_jobs, rate, seconds),
            await open_loop(http, f"GET …/runs (~800 runs) @{rate:g}/s", list_runs, rate, seconds),
            await open_loop(
                http, f"GET …/runs (deep history) @{rate:g}/s", list_deep_runs, rate, seconds
            ),
            await open_loop(
                http, f"POST /jobs/{{id}}/endpoints @{rate:g}/s", create_endpoint, rate, seconds
            ),
            await closed_loop(http, "GET /jobs, 16 connections", f"{base}/api/jobs", 16, seconds),
            await closed_loop(
                http, "GET /health (no auth), 16 conns", f"{base}/api/health", 16, seconds
            ),
        ]
    print("| route                              |  req/s   | p50 ms  | p99 ms  | errors |")
    print("|------------------------------------|----------|---------|---------|--------|")
    for result in results:
        print(result.row())


# -- CPU per request ------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (the API workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


async def _worker(http: aiohttp.ClientSession, url: str, queue: Iterator[int]) -> int:
    """Send requests until the shared queue runs dry; how many failed."""
    failures = 0
    for _ in queue:
        async with http.get(url) as resp:
            await resp.read()
            failures += resp.status >= 400
    return failures


async def cpu_per_request(
    base: str,
    key: str,
    pid: int,
    requests: int,
    profile: Path | None,
    routes: list[tuple[str, str, list[str]]],
) -> None:
    """CPU ms per request of the API processes, per route of `--routes` (16 connections, N
    requests each; the API key is sent to every route)."""
    paths = [(label, f"{base}{path}") for label, path, _ in routes]
    connector = aiohttp.TCPConnector(limit=16)
    print("| route                        | requests | API CPU ms/request | wall s |")
    print("|------------------------------|----------|--------------------|--------|")
    async with aiohttp.ClientSession(headers={"x-api-key": key}, connector=connector) as http:
        for name, url in paths:
            for _ in range(200):  # warm up pools, statement caches, plans
                async with http.get(url) as resp:
                    await resp.read()
            spy = None
            if profile is not None:
                profile.mkdir(parents=True, exist_ok=True)
                out = profile / (name.split()[1].strip("/").replace("/", "_") + ".txt")
                spy = subprocess.Popen(
                    [
                        str(BIN / "py-spy"),
                        "record",
                        "--pid",
                        str(pid),
                        "--subprocesses",
                        "--format",
                        "raw",
                        "--rate",
                        "500",
                        "--nonblocking",  # sampling must not slow the process it measures
                        "--output",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(1.0)
            queue = iter(range(requests))
            before, started = cpu_seconds(pid), time.perf_counter()
            counts = await asyncio.gather(*(_worker(http, url, queue) for _ in range(16)))
            failures = sum(counts)
            used, wall = cpu_seconds(pid) - before, time.perf_counter() - started
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            if failures:
                print(f"{name}: {failures} failed requests")
            print(f"| {name:<28} | {requests:8} | {used / requests * 1000:18.3f} | {wall:6.1f} |")


# -- main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--deep", type=int, default=20_000, help="runs on the deep endpoint")
    parser.add_argument(
        "--server",
        choices=["cli", "uvicorn"],
        default="cli",
        help="cli: `cronicorn api`; uvicorn: the same app with uvicorn binding the port itself",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="API_WORKERS: processes serving the API"
    )
    parser.add_argument("--cpu", type=int, default=0, help="measure CPU per request instead")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    parser.add_argument("--wrk", type=float, default=0, help="seconds per wrk measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (--wrk)")
    parser.add_argument("--before-src", type=Path, default=None, help="older src/ (--wrk)")
    parser.add_argument(
        "--routes",
        default="jobs,health,endpoints,runs",
        help="--wrk, --cpu: comma-separated, of jobs, health, endpoints (a job's 5), runs (100 "
        "of an endpoint's runs); the bare route serves only jobs and health",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="cronicorn-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "CRONICORN_HOME": str(home),
        "AUTH_SECRET": "b" * 48,
        "LOG_LEVEL": "warning",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        # The benchmark measures the routes, not the per-key limiter (600 reads/min default).
        "RATE_LIMIT_READ_RPM": "1000000",
        "RATE_LIMIT_WRITE_RPM": "1000000",
        "API_WORKERS": str(args.workers),
    }
    external = os.environ.get("BENCH_DATABASE_URL")
    api: subprocess.Popen[str] | None = None
    try:
        if external:
            env["DATABASE_URL"] = external
        else:
            env.pop("DATABASE_URL", None)
            cli("db", "start", env=env)
        cli("migrate", env=env)
        url = external or cli("db", "url", env=env)
        user_id, key = asyncio.run(make_api_key(url))
        started = time.perf_counter()
        ids = seed(url, user_id, args.runs, args.deep)
        print(f"seeded 100 endpoints and {args.runs} runs in {time.perf_counter() - started:.1f}s")
        if args.wrk:
            wrk_compare({**env, "DATABASE_URL": url}, key, ids, args)
            return
        command = [CLI, "api"] if args.server == "cli" else [sys.executable, "-c", UVICORN_MAIN]
        api = subprocess.Popen(command, env={**env, "DATABASE_URL": url}, text=True)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        load = os.getloadavg()
        cpus = os.cpu_count()
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {cpus} CPUs")
        print(f"API workers: {args.workers}")
        if args.cpu:
            routes = [wrk_routes(key, ids)[name] for name in args.routes.split(",") if name]
            asyncio.run(cpu_per_request(base, key, api.pid, args.cpu, args.profile, routes))
        else:
            asyncio.run(drive(base, key, ids, args.rate, args.seconds))
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        if api is not None:
            api.terminate()
            api.wait(30)
        if not external:
            subprocess.run(
                [CLI, "db", "stop", "--force"], env=env, capture_output=True, check=False
            )
        shutil.rmtree(home, ignore_errors=True)


# -- wrk: the same closed-loop load on every server, interleaved -----------------------------
@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        env = {**self.env, "PORT": str(self.port)}
        self.process = subprocess.Popen(self.command, env=env, stdout=subprocess.DEVNULL)


def wrk_once(port: int, path: str, seconds: float, headers: list[str]) -> dict[str, float]:
    import re
    import resource

    url = f"http://127.0.0.1:{port}{path}"
    command = ["wrk", "-t1", "-c16", f"-d{seconds:g}s", "--latency", *headers, url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    def ms(label: str) -> float:
        value = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        assert value is not None, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[value.group(2)]
        return float(value.group(1)) * scale

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rate is not None, out
    assert total is not None, out
    return {
        "rps": float(rate.group(1)),
        "n": float(total.group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "errors": float(errors.group(1)) if errors else 0.0,
        "wrk_cpu": wrk_cpu,
    }


def pg_cpu_seconds(home: str) -> float:
    """User + system CPU of this benchmark's embedded PostgreSQL: the postmaster (with the
    backends it reaped) and its live children. 0 with BENCH_DATABASE_URL (not ours to see)."""
    import psutil

    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] in ("postgres", "postmaster") and home in cmdline:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.ppid() != 1 and "postgres" in (proc.parent().name() or ""):
                    continue  # a backend: counted through its postmaster
                times = proc.cpu_times()
                total = times.user + times.system + times.children_user + times.children_system
                for child in proc.children():
                    with contextlib.suppress(psutil.NoSuchProcess):
                        ctimes = child.cpu_times()
                        total += ctimes.user + ctimes.system
                return total
    return 0.0


BARE_ROUTES = ("jobs", "health")  # what bench/bare_route.py serves


def wrk_routes(key: str, ids: tuple[str, str, str]) -> dict[str, tuple[str, str, list[str]]]:
    """The routes `--wrk` can drive, by the short name `--routes` takes."""
    auth = ["-H", f"x-api-key: {key}"]
    job, endpoint, _deep = ids
    return {
        "jobs": ("GET /api/jobs", "/api/jobs", auth),
        "health": ("GET /api/health", "/api/health", []),
        "endpoints": ("GET /api/jobs/{id}/endpoints", f"/api/jobs/{job}/endpoints", auth),
        "runs": ("GET /api/endpoints/{id}/runs", f"/api/endpoints/{endpoint}/runs", auth),
    }


def wrk_compare(
    env: dict[str, str], key: str, ids: tuple[str, str, str], args: argparse.Namespace
) -> None:
    """Every server up at once (idle ones cost nothing), then rounds of the same wrk load.
    Beside the server's CPU per request: this benchmark's PostgreSQL's and wrk's, and the
    cores all three kept busy (on a 2-core machine, 2.0 is saturation)."""
    here = Path(__file__).resolve().parent
    servers = [Server("bare Starlette+psycopg", [sys.executable, str(here / "bare_route.py")], env)]
    trees: list[tuple[str, dict[str, str]]] = [("now", {})]
    if args.before_src is not None:
        trees.insert(0, ("before", {"PYTHONPATH": str(args.before_src.resolve())}))
    for label, extra in trees:
        for workers in (1, 2):
            server_env = {**env, **extra, "API_WORKERS": str(workers)}
            servers.append(Server(f"{label}, {workers} worker(s)", [CLI, "api"], server_env))
    for server in servers:
        server.start()
    try:
        for server in servers:
            wait_healthy(f"http://127.0.0.1:{server.port}", 300)
        table = wrk_routes(key, ids)
        wanted = [name for name in args.routes.split(",") if name]
        unknown = set(wanted) - set(table)
        if unknown:
            raise SystemExit(f"--routes: unknown {sorted(unknown)}; known: {sorted(table)}")
        home = env.get("CRONICORN_HOME", "")
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        print(
            "| round | server | route | req/s | p50 ms | p99 ms | CPU ms/req | PG ms/req |"
            " wrk ms/req | cores busy | load | errors |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for round_no in range(1, args.rounds + 1):
            order = servers if round_no % 2 else list(reversed(servers))
            for server in order:
                assert server.process is not None
                for short in wanted:
                    if server.name.startswith("bare") and short not in BARE_ROUTES:
                        continue
                    route, path, headers = table[short]
                    wrk_once(server.port, path, 2, headers)  # warm up
                    before = cpu_seconds(server.process.pid)
                    pg_before = pg_cpu_seconds(home) if home else 0.0
                    load = os.getloadavg()[0]
                    got = wrk_once(server.port, path, args.wrk, headers)
                    used = cpu_seconds(server.process.pid) - before
                    pg_used = (pg_cpu_seconds(home) if home else 0.0) - pg_before
                    got["cpu"] = used / got["n"] * 1000
                    got["pg"] = pg_used / got["n"] * 1000
                    got["wrk"] = got["wrk_cpu"] / got["n"] * 1000
                    got["cores"] = (used + pg_used + got["wrk_cpu"]) / args.wrk
                    got["load"] = load
                    results.setdefault((server.name, route), []).append(got)
                    print(
                        f"| {round_no} | {server.name} | {route} | {got['rps']:.0f} |"
                        f" {got['p50']:.1f} | {got['p99']:.1f} | {got['cpu']:.2f} |"
                        f" {got['pg']:.2f} | {got['wrk']:.2f} | {got['cores']:.2f} |"
                        f" {load:.1f} | {got['errors']:.0f} |",
                        flush=True,
                    )
        print("\nmedians over rounds")
        print("| server | route | req/s | p50 ms | p99 ms | CPU ms/req | PG ms/req | wrk ms/req |")
        print("|---|---|---|---|---|---|---|---|")
        keys = ("rps", "p50", "p99", "cpu", "pg", "wrk")
        for (name, route), runs in results.items():
            med = {k: statistics.median(r[k] for r in runs) for k in keys}
            print(
                f"| {name} | {route} | {med['rps']:.0f} | {med['p50']:.1f} |"
                f" {med['p99']:.1f} | {med['cpu']:.2f} | {med['pg']:.2f} | {med['wrk']:.2f} |"
            )
    finally:
        for server in servers:
            if server.process is not None:
                server.process.terminate()
        for server in servers:
            if server.process is not None:
                try:
                    server.process.wait(60)
                except subprocess.TimeoutExpired:
                    server.process.kill()
                    server.process.wait()


UVICORN_MAIN = """
import os, uvicorn
from cronicorn.app import create_app
from cronicorn.config import load_settings
from cronicorn.logs import configure
from cronicorn.runtime import Runtime
settings = load_settings()
configure(settings.log_level, settings.log_format)
app = create_app(Runtime.create(settings, os.environ["DATABASE_URL"]))
uvicorn.run(app, host="127.0.0.1", port=settings.port, log_config=None, access_log=False)
"""


def wait_healthy(base: str, timeout_s: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{base} did not become healthy within {timeout_s:g} s")


if __name__ == "__main__":
    main()
