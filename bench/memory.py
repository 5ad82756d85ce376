"""Memory of `cronicorn up`: idle RSS, then RSS under load over a soak, sampled every 10 s.

    .venv/bin/python bench/memory.py                        # 2,000 endpoints at 1 s, 10 min
    .venv/bin/python bench/memory.py --soak 120 --endpoints 500
    .venv/bin/python bench/memory.py --tracemalloc --soak 300   # where does it grow?

What it does, all on this machine:

1. runs `cronicorn migrate`, then starts the real `cronicorn up` (every role in one process)
   on its embedded PostgreSQL under a temporary CRONICORN_HOME and waits for `/api/health`:
   a start at the schema's head, as every start after an installation's first (which
   imports Alembic to migrate: `--first-start` measures that one);
2. idle: samples the RSS of the cronicorn process tree (psutil: the process and its
   children) for `--idle` seconds, no endpoints;
3. starts the target HTTP server of `bench/scheduler.py` in its own process, inserts
   `--endpoints` endpoints every `--interval-s` (due times spread over one interval) and wakes
   the scheduler role; then samples every `--every` seconds for `--soak` seconds: RSS of the
   cronicorn tree, executions/s since the last sample (runs table), load average;
4. prints the curve, the peak, and the slope of RSS over the soak after its first minute
   (least squares, MB per minute), and first vs last minute.

PostgreSQL's own processes are shown apart (their RSS counts the shared buffers each one
touched, so a sum overstates them). `--tracemalloc` starts the process with tracemalloc (25
frames, through a `sitecustomize` on PYTHONPATH that dumps a snapshot on SIGUSR2) and prints
the 15 biggest growths between the soak's first minute and its end: tracing slows the
process and adds its own memory, so its RSS figures are not the ones to report.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).parent / "cronicorn")

SEED = """
WITH u AS (
    INSERT INTO users (id, email) VALUES ('mem-user', 'mem@example.com') RETURNING id
), j AS (
    INSERT INTO jobs (id, user_id, name) SELECT 'mem-job', id, 'memory' FROM u RETURNING id
)
INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, next_run_at,
                       max_response_size_kb, timeout_ms)
SELECT 'm' || lpad(g::text, 7, '0'), 'mem-job', 'mem-user', 'm' || g,
       %(base)s || '/t/' || g, %(interval_ms)s,
       %(start)s::timestamptz + (g::bigint * %(interval_ms)s / %(n)s) * interval '1 millisecond',
       16, 5000
FROM generate_series(0, %(n)s - 1) AS g
"""

SITECUSTOMIZE = """
import os, signal, tracemalloc
_dir = os.environ.get("BENCH_TRACEMALLOC_DIR")
if _dir:
    tracemalloc.start(25)
    _count = [0]
    def _dump(signum, frame):
        _count[0] += 1
        tracemalloc.take_snapshot().dump(os.path.join(_dir, f"{os.getpid()}-{_count[0]}.snap"))
    signal.signal(signal.SIGUSR2, _dump)
"""


@dataclass
class Sample:
    at_s: float  # seconds since the phase began
    rss_mb: float  # cronicorn process tree
    postgres_mb: float  # PostgreSQL processes (shared buffers counted in each)
    executions_per_s: float
    load: float


def tree_rss(root: psutil.Process) -> float:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / 2**20


def postgres_rss(postmaster: psutil.Process) -> float:
    total = 0
    with contextlib.suppress(psutil.Error):
        for proc in [postmaster, *postmaster.children()]:
            with contextlib.suppress(psutil.Error):  # a backend may exit meanwhile
                total += proc.memory_info().rss
    return total / 2**20


def runs_started(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM runs WHERE status <> 'skipped'").fetchone()
    assert row is not None
    return int(row[0])


def sample_phase(
    root: psutil.Process,
    postmaster: psutil.Process,
    url: str,
    seconds: float,
    every: float,
    label: str,
) -> list[Sample]:
    samples: list[Sample] = []
    began = time.monotonic()
    last_t, last_n = began, runs_started(url)
    while True:
        now = time.monotonic()
        count = runs_started(url)
        rate = (count - last_n) / (now - last_t) if samples else 0.0
        last_t, last_n = now, count
        sample = Sample(
            at_s=now - began,
            rss_mb=tree_rss(root),
            postgres_mb=postgres_rss(postmaster),
            executions_per_s=rate,
            load=os.getloadavg()[0],
        )
        samples.append(sample)
        print(
            f"{label} {sample.at_s:6.0f} s  RSS {sample.rss_mb:6.1f} MB  "
            f"PostgreSQL {sample.postgres_mb:6.0f} MB  {rate:7.0f} executions/s  "
            f"load {sample.load:.1f}",
            flush=True,
        )
        if now - began >= seconds:
            return samples
        time.sleep(max(0.0, began + len(samples) * every - time.monotonic()))


def slope_mb_per_min(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time."""
    if len(samples) < 2:
        return 0.0
    xs = [s.at_s / 60 for s in samples]
    ys = [s.rss_mb for s in samples]
    return float(statistics.linear_regression(xs, ys).slope)


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cronicorn up exited with {proc.returncode}")
        health = f"http://127.0.0.1:{port}/api/health"
        with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=5) as r:
            if r.status == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"cronicorn up was not healthy within {timeout:.0f} s")


def seed(url: str, n: int, interval_ms: int, base: str) -> None:
    from cronicorn.store.wakeups import WAKEUP_CHANNEL

    start = datetime.now(UTC) + timedelta(seconds=2)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED, {"base": base, "interval_ms": interval_ms, "n": n, "start": start})
        conn.execute("ANALYZE endpoints")
        conn.execute("SELECT pg_notify(%s, %s)", (WAKEUP_CHANNEL, start.isoformat()))


def print_curve(idle: list[Sample], soak: list[Sample], skip_s: float) -> None:
    print("\n| phase | t (s) | RSS cronicorn (MB) | RSS PostgreSQL (MB) | executions/s | load |")
    print("|---|---|---|---|---|---|")
    for label, samples in (("idle", idle), ("soak", soak)):
        for s in samples:
            print(
                f"| {label} | {s.at_s:.0f} | {s.rss_mb:.1f} | {s.postgres_mb:.0f} "
                f"| {s.executions_per_s:.0f} | {s.load:.1f} |"
            )
    steady = [s for s in soak if s.at_s >= skip_s]
    rates = [s.executions_per_s for s in soak[1:]]
    print()
    print(f"idle RSS: {statistics.median(s.rss_mb for s in idle):.1f} MB (median)")
    if steady:
        first = [s.rss_mb for s in steady if s.at_s < skip_s + 60]
        last = [s.rss_mb for s in steady if s.at_s >= steady[-1].at_s - 60]
        print(
            f"soak: peak {max(s.rss_mb for s in soak):.1f} MB, executions/s median "
            f"{statistics.median(rates) if rates else 0:.0f}; after the first "
            f"{skip_s:.0f} s: slope {slope_mb_per_min(steady):+.2f} MB/min, first minute "
            f"{statistics.mean(first):.1f} MB, last minute {statistics.mean(last):.1f} MB"
        )


def print_growth(directory: Path, pid: int) -> None:
    import tracemalloc

    snaps = sorted(directory.glob(f"{pid}-*.snap"), key=lambda p: int(p.stem.split("-")[1]))
    if len(snaps) < 2:
        print("tracemalloc: fewer than two snapshots")
        return
    before = tracemalloc.Snapshot.load(str(snaps[0]))
    after = tracemalloc.Snapshot.load(str(snaps[-1]))
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(ignore), after.filter_traces(ignore)
    print("\ntracemalloc: biggest growths between the first and the last snapshot")
    for stat in after.compare_to(before, "traceback")[:15]:
        print(f"\n{stat.size_diff / 1024:+.0f} KiB ({stat.count_diff:+d} blocks)")
        for line in stat.traceback.format()[-12:]:
            print("   ", line)
    total = sum(s.size for s in after.statistics("filename"))
    print(f"\ntraced now: {total / 2**20:.1f} MiB")


def parse() -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=2000)
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds sampled")
    parser.add_argument("--soak", type=float, default=600.0, help="loaded seconds sampled")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--skip", type=float, default=60.0, help="soak warm-up left out")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument(
        "--first-start", action="store_true", help="let `up` migrate a new database itself"
    )
    return parser.parse_args()


def main() -> None:
    args = parse()
    from cronicorn.embedded import EmbeddedPostgres
    from scheduler import free_port, start_target  # bench/scheduler.py

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average before the run {load}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cronicorn-memory-") as home:
        port, target_port = free_port(), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "CRONICORN_HOME": home,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "AUTH_SECRET": "m" * 40,
            "CRONICORN_ALLOW_NETWORKS": "127.0.0.0/8",
            "LOG_LEVEL": "warning",
        }
        snaps = Path(home) / "snapshots"
        if args.tracemalloc:
            snaps.mkdir()
            (Path(home) / "site").mkdir()
            (Path(home) / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
            env["PYTHONPATH"] = str(Path(home) / "site")
            env["BENCH_TRACEMALLOC_DIR"] = str(snaps)
        if not args.first_start:  # every start after an installation's first is at head
            subprocess.run([CLI, "migrate"], env=env, check=True, capture_output=True)
        up = subprocess.Popen([CLI, "up"], env=env, start_new_session=True)
        target = None
        try:
            wait_healthy(port, up, 900 if args.tracemalloc else 300)  # tracing is slow
            root = psutil.Process(up.pid)
            url = EmbeddedPostgres(Path(home)).url()
            pid = (Path(home) / "pgdata" / "postmaster.pid").read_text().split()[0]
            pg = psutil.Process(int(pid))
            idle = sample_phase(root, pg, url, args.idle, args.every, "idle")
            target = start_target(target_port)
            seed(
                url, args.endpoints, int(args.interval_s * 1000), f"http://127.0.0.1:{target_port}"
            )
            soak: list[Sample] = []
            if args.tracemalloc:
                soak += sample_phase(root, pg, url, args.skip, args.every, "soak")
                os.kill(up.pid, signal.SIGUSR2)
                rest = sample_phase(root, pg, url, args.soak - args.skip, args.every, "soak")
                soak += [
                    Sample(s.at_s + args.skip, s.rss_mb, s.postgres_mb, s.executions_per_s, s.load)
                    for s in rest
                ]
                os.kill(up.pid, signal.SIGUSR2)
                time.sleep(10)  # the dump of a big snapshot takes a while
            else:
                soak = sample_phase(root, pg, url, args.soak, args.every, "soak")
        finally:
            os.killpg(up.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                up.wait(timeout=60)
            if target is not None:
                target.terminate()
                target.wait(timeout=10)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\nmachine: {os.cpu_count()} CPUs, load average after the run {load}")
        print(
            f"load: {args.endpoints:,} endpoints every {args.interval_s:g} s "
            f"(demand {args.endpoints / args.interval_s:,.0f}/s)"
        )
        print_curve(idle, soak, args.skip)
        if args.tracemalloc:
            print_growth(snaps, up.pid)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    with contextlib.suppress(KeyboardInterrupt):
        main()
