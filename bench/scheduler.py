"""Scheduler benchmark: one `cronicorn scheduler` process against N endpoints.

    .venv/bin/python bench/scheduler.py                        # 1k and 10k endpoints, 1 s
    .venv/bin/python bench/scheduler.py --endpoints 10000 --interval-s 5 --duration 30
    .venv/bin/python bench/scheduler.py --endpoints 2000 --rules both  # cost of rules
    .venv/bin/python bench/scheduler.py --endpoints 800 --rules all --rounds 3 --json out.json

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

`--rules both` measures each N without and then with assertions and three rules per endpoint,
one of which fires on every run and rewrites the interval hint (`worst`); `--rules all` adds
`quiet`, the same assertion and three rules of which none fires (the realistic case: the
cost of evaluating them alone). `--rounds K` alternates the variants K times (the order
reversed every other round) and reports the overhead of rules two ways:
executions/s, which a shared, busy machine makes noisy, and the scheduler's process CPU time
per execution (user + system over the measured window / executions), which other processes'
load barely moves. Medians over rounds; `--json` writes every round and the summary.

Demand is N / interval executions per second; when it exceeds what one scheduler can do,
endpoints skip slots (no drift, no catch-up storm) and lateness grows: executions/s is then
the saturation throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
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


async def dispatch_alone(port: int, n: int, seconds: float, concurrency: int) -> str:
    """Calls/s and CPU per call of our `Dispatcher` alone (SSRF guard, deadline, capped body,
    no claim, no run task, no write), `concurrency` calls in flight over the N endpoints'
    URLs, in a process set up as `cronicorn scheduler` sets up its own: the ceiling one
    scheduler's HTTP side can reach against this target on this machine."""
    import gc
    import ipaddress

    from cronicorn.dispatch import Dispatcher, HttpRequest
    from cronicorn.dispatch.models import DispatchConfig
    from cronicorn.scheduler.role import collect_less

    gc.freeze()
    collect_less()
    urls = [f"http://127.0.0.1:{port}/t/{i}" for i in range(n)]
    config = DispatchConfig(
        allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), max_connections=concurrency
    )
    done = 0
    async with Dispatcher(config) as dispatcher:

        async def worker(k: int) -> None:
            nonlocal done
            i = k
            while time.monotonic() < deadline:
                await dispatcher.execute(HttpRequest(url=urls[i % n], method="GET"))
                done += 1
                i += concurrency

        deadline = time.monotonic() + 0.5  # warm the connections
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        done = 0
        cpu = time.process_time()
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed, used = time.monotonic() - started, time.process_time() - cpu
    return f"{done / elapsed:.0f} {used / done * 1e6:.0f}"


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
       count(*) FILTER (WHERE status <> 'success'),
       (SELECT count(*) FROM runs WHERE status = 'skipped'
          AND due_at >= %(t0)s AND due_at < %(t1)s)
FROM (
    SELECT extract(epoch FROM started_at - due_at) * 1000 AS lateness, status
    FROM runs WHERE started_at >= %(t0)s AND started_at < %(t1)s AND status <> 'skipped'
) AS r
"""


# `worst`: the third rule holds on every run (the body has items[0].ok = true) and sets the
# baseline interval as a hint; `quiet`: it looks for items[0].ok = false, so nothing fires.
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
            'when', jsonb_build_object('jsonPath', '$.items[0].ok', 'op', '==',
                                       'value', %(fires)s),
            'then', jsonb_build_object('action', 'interval', 'intervalMs', %(interval_ms)s,
                                       'ttlMinutes', 60)))
"""


def add_rules(url: str, interval_ms: int, variant: str) -> None:
    """Assertions and three rules per endpoint: two that never fire (deep queue, degraded)
    and one that, in `worst`, fires on every run with the baseline interval, so demand is
    unchanged while each write carries the fired rule (and the hint, when it is rewritten);
    in `quiet` it never fires."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RULES_SQL, {"interval_ms": interval_ms, "fires": variant == "worst"})
        conn.execute("VACUUM ANALYZE")


def set_rollups(url: str, *, enabled: bool) -> None:
    """`--without-rollups` (an experiment, not a configuration): the rollup triggers of
    migration 0010 off, to measure their share of PostgreSQL's work per execution."""
    verb = "ENABLE" if enabled else "DISABLE"
    with psycopg.connect(url, autocommit=True) as conn:
        for trigger in ("runs_hourly_insert", "runs_hourly_update"):
            conn.execute(f"ALTER TABLE runs {verb} TRIGGER {trigger}")


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
    rules: str  # none | quiet (three rules, none fires) | worst (one fires on every run)
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
    cpu_us_per_execution: float  # the scheduler's process CPU time per execution
    skipped: int
    load: float  # 1-minute load average when the measured window began
    tree: str = "this"  # `--compare`: which source tree the scheduler ran ("this" or "other")


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
    url: str,
    home: str,
    target: subprocess.Popen[bytes],
    args: Any,
    n: int,
    rules: str,
    tree: str | None = None,
) -> Result:
    reset(url)
    interval_ms = int(args.interval_s * 1000)
    start = time.time() + args.startup
    seed(url, n, interval_ms, f"http://127.0.0.1:{args.port}", start)
    if rules != "none":
        add_rules(url, interval_ms, rules)
    set_rollups(url, enabled=not args.without_rollups)
    env = scheduler_env(url, home, args)
    if tree is not None:  # `--compare`: the other tree's package shadows this checkout's
        env["PYTHONPATH"] = str(Path(tree) / "src")
    proc = subprocess.Popen([CLI, "scheduler"], env=env, start_new_session=True)
    sched = psutil.Process(proc.pid)
    target_proc = psutil.Process(target.pid)
    try:
        wait_until_running(url, proc)  # a loaded machine takes many seconds to start it
        time.sleep(max(0.0, start + args.warmup - time.time(), args.warmup))
        pg = postgres_processes(url)
        cpu_of([sched, target_proc, *pg])  # prime; backends may exit meanwhile
        load = os.getloadavg()[0]
        spy = profile(args, sched.pid, n, rules)
        cpu0 = _cpu_seconds(sched)
        t0 = time.time()
        rss = 0
        while time.time() < t0 + args.duration:
            rss = max(rss, sched.memory_info().rss)
            time.sleep(0.5)
        t1 = time.time()
        cpu1 = _cpu_seconds(sched)
        sched_cpu = sched.cpu_percent(None)
        target_cpu = target_proc.cpu_percent(None)
        pg_cpu = cpu_of(pg)
        if spy is not None:
            spy.wait(timeout=120)
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
    per_execution = (cpu1 - cpu0) / count * 1e6 if count else 0.0
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
        cpu_us_per_execution=per_execution,
        skipped=row[4],
        load=load,
        tree="this" if tree is None else "other",
    )


def profile(args: Any, pid: int, n: int, rules: str) -> subprocess.Popen[bytes] | None:
    """py-spy over the measured window (`--profile DIR`): collapsed stacks of the scheduler,
    one file per measurement. py-spy takes CPU too: profiled rounds are for the profile."""
    if not args.profile:
        return None
    Path(args.profile).mkdir(parents=True, exist_ok=True)
    name = f"{rules}-{n}-{int(time.time())}.txt"
    spy = str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            # C frames (the garbage collector's, say) need the process paused per sample
            *(["--native"] if args.profile_native else ["--nonblocking"]),
            "--duration",
            str(int(args.duration)),
            "--output",
            str(Path(args.profile) / name),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def scheduler_env(url: str, home: str, args: Any) -> dict[str, str]:
    """The benchmarked `cronicorn scheduler`'s environment (its knobs from the arguments)."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "CRONICORN_HOME": home,
        "AUTH_SECRET": "b" * 40,
        "CRONICORN_ALLOW_NETWORKS": "127.0.0.0/8",
        "LOG_LEVEL": "warning",
        "SCHEDULER_CONCURRENCY": str(args.concurrency),
        "SCHEDULER_BATCH_SIZE": str(args.batch),
    }


def wait_until_running(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    """Until the scheduler has started its first run (the window must not time its start)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT EXISTS (SELECT 1 FROM runs)").fetchone()
            if row is not None and row[0]:
                return
            if proc.poll() is not None:
                raise SystemExit(f"the scheduler exited with {proc.returncode}")
            time.sleep(0.2)
    raise SystemExit("the scheduler ran nothing within 300 s")


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


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


def start_target(port: int) -> subprocess.Popen[bytes]:
    """This script's target HTTP server (`--role target`) in its own process, listening."""
    target = subprocess.Popen([sys.executable, __file__, "--role", "target", "--port", str(port)])
    wait_for_port(port)
    return target


def print_table(results: list[Result], target_rate: float, load: str) -> None:
    print()
    print(f"machine: {os.cpu_count()} CPUs, load average before the run {load}")
    print(f"target alone (aiohttp blast, keep-alive, 64 connections): {target_rate:,.0f} req/s")
    print()
    print(
        "| rules | endpoints | interval | demand/s | executions/s | lateness p50 / p95 / p99 / max"
        " (ms) | failed | skipped | scheduler CPU | CPU per execution | scheduler RSS "
        "| PostgreSQL CPU | target CPU | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        label = LABELS[r.rules] if r.tree == "this" else f"{LABELS[r.rules]} (other tree)"
        print(
            f"| {label} | {r.endpoints:,} | {r.interval_s:g} s "
            f"| {r.endpoints / r.interval_s:,.0f} "
            f"| {r.executions_per_s:,.0f} "
            f"| {r.p50:.1f} / {r.p95:.1f} / {r.p99:.1f} / {r.max:.0f} | {r.failed} | {r.skipped} "
            f"| {r.scheduler_cpu:.0f}% | {r.cpu_us_per_execution:.0f} µs "
            f"| {r.scheduler_rss_mb:.0f} MB "
            f"| {r.postgres_cpu:.0f}% | {r.target_cpu:.0f}% | {r.load:.1f} |"
        )


LABELS = {"none": "none", "quiet": "3 + assertion, none fires", "worst": "3 + assertion, one fires"}


def summary(results: list[Result]) -> list[dict[str, Any]]:
    """Per N and rules variant: medians, and the overhead against no rules in %."""
    out = []
    for n in sorted({r.endpoints for r in results}):
        off = [r for r in results if r.endpoints == n and r.rules == "none"]
        for variant in ("quiet", "worst"):
            on = [r for r in results if r.endpoints == n and r.rules == variant]
            if not off or not on:
                continue
            rate = (_median(off, "executions_per_s"), _median(on, "executions_per_s"))
            cpu = (_median(off, "cpu_us_per_execution"), _median(on, "cpu_us_per_execution"))
            out.append(
                {
                    "endpoints": n,
                    "rules": variant,
                    "rounds": min(len(off), len(on)),
                    "executionsPerS": {"without": rate[0], "with": rate[1]},
                    "throughputCostPct": (rate[0] - rate[1]) / rate[0] * 100 if rate[0] else None,
                    "cpuUsPerExecution": {"without": cpu[0], "with": cpu[1]},
                    "cpuOverheadPct": (cpu[1] - cpu[0]) / cpu[0] * 100 if cpu[0] else None,
                    "load": [_median(off, "load"), _median(on, "load")],
                }
            )
    return out


def print_trees(results: list[Result]) -> None:
    """`--compare`: per N and variant, each tree's medians and its rounds' CPU per execution."""
    print()
    print(
        "| endpoints | rules | tree | rounds | executions/s (median) | CPU per execution "
        "(median) | CPU per execution, each round | load |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in sorted({r.endpoints for r in results}):
        for rules in dict.fromkeys(r.rules for r in results):
            for tree in ("other", "this"):
                rows = [r for r in results if (r.endpoints, r.rules, r.tree) == (n, rules, tree)]
                if not rows:
                    continue
                each = ", ".join(f"{r.cpu_us_per_execution:.0f}" for r in rows)
                loads = ", ".join(f"{r.load:.1f}" for r in rows)
                print(
                    f"| {n:,} | {rules} | {tree} | {len(rows)} "
                    f"| {_median(rows, 'executions_per_s'):,.0f} "
                    f"| {_median(rows, 'cpu_us_per_execution'):.0f} µs | {each} | {loads} |"
                )


def _median(results: list[Result], name: str) -> float:
    return float(statistics.median(getattr(r, name) for r in results))


def print_summary(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        rate, cpu = row["executionsPerS"], row["cpuUsPerExecution"]
        print(
            f"\nrules overhead ({LABELS[row['rules']]}) at {row['endpoints']:,} endpoints "
            f"(median of {row['rounds']}): throughput {rate['without']:,.0f} -> "
            f"{rate['with']:,.0f} executions/s ({row['throughputCostPct']:+.1f}% cost); "
            f"scheduler CPU per execution {cpu['without']:.0f} -> {cpu['with']:.0f} µs "
            f"({row['cpuOverheadPct']:+.1f}%); load {row['load'][0]:.1f} / {row['load'][1]:.1f}"
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
        choices=("off", "on", "quiet", "both", "all"),
        default="off",
        help="assertions and three response rules per endpoint, one firing on every run (on), "
        "none firing (quiet); both: without and on; all: without, quiet and on",
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the variants")
    parser.add_argument("--json", default=None, help="write results and summary to this file")
    parser.add_argument("--profile", default=None, help="py-spy the scheduler into this dir")
    parser.add_argument("--profile-native", action="store_true", help="py-spy C frames too")
    parser.add_argument(
        "--without-rollups",
        action="store_true",
        help="experiment: disable the rollup triggers on runs (migration 0010) while measuring",
    )
    parser.add_argument(
        "--compare",
        default=None,
        help="a checkout (e.g. `git archive HEAD~1 src | tar -x -C DIR`) whose scheduler runs "
        "interleaved with this tree's, round by round (PYTHONPATH=DIR/src)",
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
    if args.role == "dispatch":
        import uvloop

        n = int(args.endpoints.split(",")[0])
        print(uvloop.run(dispatch_alone(args.port, n, 3.0, args.concurrency)))
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
            target = start_target(args.port)
            try:
                out = subprocess.run(
                    [sys.executable, __file__, "--role", "blast", "--port", str(args.port)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                target_rate = float(out.stdout.strip())
                alone = subprocess.run(
                    [
                        *(sys.executable, __file__, "--role", "dispatch", "--port", str(args.port)),
                        *("--endpoints", args.endpoints, "--concurrency", str(args.concurrency)),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rate, per_call = (float(x) for x in alone.stdout.split())
                alone_line = (
                    f"our Dispatcher alone ({args.concurrency} in flight, no claim or write):"
                    f" {rate:,.0f} calls/s, {per_call:.0f} µs CPU per call"
                )
                print(alone_line, flush=True)
                results = []
                variants = {
                    "off": ["none"],
                    "on": ["worst"],
                    "quiet": ["quiet"],
                    "both": ["none", "worst"],
                    "all": ["none", "quiet", "worst"],
                }[args.rules]
                trees: list[str | None] = [None, *([args.compare] if args.compare else [])]
                for n in (int(x) for x in args.endpoints.split(",")):
                    for k in range(max(1, args.rounds)):
                        order = variants if k % 2 == 0 else variants[::-1]  # no order bias
                        for tree in trees if k % 2 == 0 else trees[::-1]:
                            for rules in order:
                                results.append(measure(url, home, target, args, n, rules, tree))
                                print_table(results[-1:], target_rate, load)
            finally:
                target.terminate()
                target.wait(timeout=10)
    print_table(results, target_rate, load)
    print(alone_line)
    rows = summary([r for r in results if r.tree == "this"])
    print_summary(rows)
    if args.compare:
        print_trees(results)
    if args.json:
        document = {
            "machine": {"cpus": os.cpu_count(), "loadBefore": load},
            "targetAloneRps": target_rate,
            "dispatcherAlone": {"callsPerS": rate, "cpuUsPerCall": per_call},
            "results": [asdict(r) for r in results],
            "summary": rows,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
