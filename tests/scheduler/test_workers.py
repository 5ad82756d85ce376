"""Real `cronicorn scheduler` processes against one database: several share the work without
running a slot twice; a SIGKILLed one loses its runs to the others; SIGTERM drains."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.scheduler.connection import hung_session_limit_s
from cronicorn.store.claims import LIVENESS_CLASS, WORKER_LOST
from cronicorn.store.tables import jobs
from scheduler.conftest import Rows, running_scheduler, serve_target, utc
from support import cli_env, free_port, start_cli, until

pytestmark = pytest.mark.slow

CALL_S = 0.3
"""How long a call lasts in the tests that signal a worker while it holds leases: a lease
lives while its run is in flight, so with endpoints due every second each worker holds some
at any moment, for long enough that a poll sees them however busy the machine (an instant
call holds one for milliseconds). Short enough that a call never overlaps the next slot."""


def _env(database_url: str, home: Path, **extra: str) -> dict[str, str]:
    return cli_env(
        DATABASE_URL=database_url,
        CRONICORN_HOME=str(home),
        AUTH_SECRET="s" * 40,
        CRONICORN_ALLOW_NETWORKS="127.0.0.0/8",
        SHUTDOWN_TIMEOUT_S="5",
        **extra,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


async def _connected(database_url: str, count: int) -> bool:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'cronicorn-scheduler:listen'"
        )
        row = await cur.fetchone()
    return row is not None and row[0] >= count


async def _stop(*procs: subprocess.Popen[str]) -> None:
    """SIGTERM, then wait without blocking the event loop (the target server lives in it)."""
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    await until(
        lambda: all(p.poll() is not None for p in procs), timeout=30, what="schedulers to exit"
    )
    for proc in procs:
        _, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err


async def test_three_workers_run_every_slot_once(
    rows: Rows,
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    rows.job_id = await rows.job(status="paused")
    async with serve_target() as target:
        ids = await rows.endpoints([target.url(f"/ok/{i}") for i in range(200)])
        env = _env(database_url, tmp_path)
        processes += [start_cli("scheduler", env=env) for _ in range(3)]
        await until(lambda: _connected(database_url, 3), timeout=60, what="3 schedulers up")
        start = utc(seconds=1)
        async with engine.begin() as conn:  # due times spread over one second
            await conn.execute(
                text(
                    "UPDATE endpoints SET next_run_at = :start "
                    "+ (abs(hashtext(id)) % 1000) * interval '1 millisecond'"
                ),
                {"start": start},
            )
            await conn.execute(update(jobs).values(status="active"))
            await conn.execute(text("NOTIFY cronicorn_wakeup"))
        await asyncio.sleep(9)  # the measured window
        async with engine.begin() as conn:
            await conn.execute(update(jobs).values(status="paused"))
        await _stop(*processes)
    runs = await rows.runs()
    # A slot that came due while its endpoint's previous run was still going (a call and
    # its write over a second on a busy machine) is recorded `skipped`, as the overlap
    # policy says, and not called (`ux_runs_endpoint_id_due_at` records each slot once).
    executed = [r for r in runs if r["status"] != "skipped"]
    assert {r["status"] for r in executed} == {"success"}
    slots = Counter((h.path, h.due_at) for h in target.hits)
    assert max(slots.values()) == 1, "no due slot ran twice"
    path_of = {endpoint_id: f"/ok/{i}" for i, endpoint_id in enumerate(ids)}
    assert Counter(path_of[r["endpoint_id"]] for r in executed) == Counter(
        h.path for h in target.hits
    ), "each endpoint called once per run, never for a skipped slot"
    by_path: dict[str, list[Any]] = defaultdict(list)
    for hit in target.hits:
        by_path[hit.path].append(hit)
    for hits in by_path.values():
        hits.sort(key=lambda h: h.started)
        for before, after in itertools.pairwise(hits):
            assert after.started >= before.finished, "an endpoint never overlaps itself"
    window = [r for r in runs if start <= r["due_at"] < start + timedelta(seconds=7)]
    per_endpoint = Counter(r["endpoint_id"] for r in window)
    assert set(per_endpoint) == set(ids)
    assert min(per_endpoint.values()) >= 6, f"a slot ~once a second, run or skipped: {per_endpoint}"
    assert sum(per_endpoint.values()) >= 0.95 * 7 * len(ids)
    assert len({r["worker"] for r in runs}) == 3, "the work spread over the workers"


async def test_a_killed_workers_runs_are_closed_as_lost_and_run_again(
    rows: Rows,
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    calls: Counter[str] = Counter()

    async def first_hangs(request: web.Request) -> web.StreamResponse:
        calls[request.path] += 1
        if calls[request.path] == 1:
            await asyncio.sleep(5)
        return web.json_response({"call": calls[request.path]})

    async with serve_target({"/first-hangs/{n}": first_hangs}) as target:
        ids = await rows.endpoints([target.url(f"/first-hangs/{i}") for i in range(10)])
        victim = start_cli("scheduler", env=_env(database_url, tmp_path, SCHEDULER_LEASE_S="2"))
        processes.append(victim)

        async def all_hanging() -> bool:
            return await rows.run_count(status="running") == 10 and len(calls) == 10

        await until(all_hanging, timeout=60, what="ten calls in flight")
        os.killpg(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=10)
        async with running_scheduler(database_url, engine, lease_s=2, worker_id="rescuer"):

            async def rescued() -> bool:
                done = [r for r in await rows.runs() if r["status"] == "success"]
                return {r["endpoint_id"] for r in done} == set(ids)

            await until(rescued, timeout=30, what="every endpoint to run again")
    for endpoint in ids:  # (the slots the hanging run overlapped are recorded as skipped)
        lost, *later = [r for r in await rows.runs(endpoint) if r["status"] != "skipped"]
        assert lost["status"] == "failed"
        assert lost["error_message"] == WORKER_LOST
        assert lost["worker"] != "rescuer"
        assert later
        assert later[0]["worker"] == "rescuer"
        assert later[0]["attempt"] == 2, "the lost run counted as a failure"
        assert later[0]["due_at"] > lost["due_at"]
        row = await rows.endpoint_row(endpoint)
        assert row["failure_count"] == 0


async def _liveness_locks(database_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted "
            "AND l.objsubid = 2 AND l.classid = %s",
            (LIVENESS_CLASS,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _leases_of(database_url: str, pid: int) -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM endpoints WHERE lease_owner LIKE %s", (f"%:{pid}:%",)
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_a_killed_workers_endpoints_run_again_within_five_seconds(
    rows: Rows,
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    """Issue 9: SIGKILL one of three schedulers mid-run; its leases (default 15 s) are taken
    over through its freed liveness lock, not left to expire."""
    rows.job_id = await rows.job(status="paused")
    async with serve_target() as target:
        ids = await rows.endpoints([target.url(f"/hang/{CALL_S}/{i}") for i in range(90)])
        processes += [start_cli("scheduler", env=_env(database_url, tmp_path)) for _ in range(3)]
        await until(lambda: _connected(database_url, 3), timeout=60, what="3 schedulers up")

        async def three_locks() -> bool:
            return await _liveness_locks(database_url) == 3

        await until(three_locks, timeout=30, what="3 liveness locks")
        loop = asyncio.get_running_loop()
        locked_at = loop.time()
        async with engine.begin() as conn:  # due times spread over one second
            await conn.execute(
                text(
                    "UPDATE endpoints SET next_run_at = now() + interval '0.5 second' "
                    "+ (abs(hashtext(id)) % 1000) * interval '1 millisecond'"
                )
            )
            await conn.execute(update(jobs).values(status="active"))
            await conn.execute(text("NOTIFY cronicorn_wakeup"))

        def warmed_up() -> bool:  # every endpoint runs, the peers' take-over grace is over
            seen = Counter(h.path for h in target.hits)
            return (
                len(seen) == len(ids) and min(seen.values()) >= 3 and (loop.time() > locked_at + 4)
            )

        await until(warmed_up, timeout=60, what="every endpoint running")
        victim, killed_at = await _signal_a_leaseholder(database_url, processes, signal.SIGKILL)
        victim.communicate(timeout=10)

        def after_kill() -> dict[str, float]:
            return _first_hits_after(target, killed_at)

        await until(lambda: len(after_kill()) == len(ids), timeout=60, what="all run again")
        silent = max(after_kill().values())
        async with engine.begin() as conn:
            await conn.execute(update(jobs).values(status="paused"))
        await _stop(*(p for p in processes if p is not victim))
    assert silent <= 5.0, f"an endpoint stayed silent {silent:.1f}s after the kill"
    slots = Counter((h.path, h.due_at) for h in target.hits)
    assert max(slots.values()) == 1, "no due slot ran twice"
    runs = await rows.runs()
    lost = [r for r in runs if r["status"] == "failed"]
    assert lost, "the victim held leases when it died"
    assert {r["error_message"] for r in lost} == {WORKER_LOST}
    assert all(f":{victim.pid}:" in r["worker"] for r in lost)
    assert all(r["status"] == "success" for r in runs if r not in lost)
    print(f"slowest endpoint ran again {silent:.2f}s after the kill; {len(lost)} runs lost")


async def test_a_hung_workers_endpoints_run_again_once_its_leases_expire(
    rows: Rows,
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    """SIGSTOP keeps the hung worker's session, hence its liveness lock: its leases are taken
    over when they expire, or, for rows it froze holding inside a write transaction, once the
    server ends that transaction (`hung_session_limit_s`). Woken up, it makes the calls it had
    claimed (their runs were closed meanwhile), but never one of a slot the others ran.
    Every call lasts `CALL_S`, so some worker holds leases whenever the test looks."""
    lease_s = 3
    async with serve_target() as target:
        urls = [target.url(f"/hang/{CALL_S}/{i}") for i in range(40)]
        ids = await rows.endpoints(urls, spread_s=1.0)
        env = _env(database_url, tmp_path, SCHEDULER_LEASE_S=str(lease_s))
        processes += [start_cli("scheduler", env=env) for _ in range(2)]

        def warmed_up() -> bool:
            seen = Counter(h.path for h in target.hits)
            return len(seen) == len(ids) and min(seen.values()) >= 3

        await until(warmed_up, timeout=60, what="every endpoint running")
        victim, stopped_at = await _signal_a_leaseholder(database_url, processes, signal.SIGSTOP)
        try:

            def resumed() -> dict[str, float]:
                return _first_hits_after(target, stopped_at)

            await until(lambda: len(resumed()) == len(ids), timeout=60, what="all run again")
            silent = max(resumed().values())
        finally:
            os.killpg(victim.pid, signal.SIGCONT)
        woken = len(target.hits)
        await until(lambda: len(target.hits) >= woken + 2 * len(ids), timeout=30, what="2 rounds")
        await _stop(*processes)
    limit = max(lease_s, hung_session_limit_s(lease_s)) + 5.0
    assert silent <= limit, f"an endpoint stayed silent {silent:.1f}s"
    slots = Counter((h.path, h.due_at) for h in target.hits)
    assert max(slots.values()) == 1, "no due slot ran twice"
    lost = [r for r in await rows.runs() if r["status"] == "failed"]
    assert {r["error_message"] for r in lost} == {WORKER_LOST}
    assert any(f":{victim.pid}:" in r["worker"] for r in lost)
    print(f"slowest endpoint ran again {silent:.2f}s after SIGSTOP; {len(lost)} runs lost")


async def test_sigterm_drains_and_metrics_are_served(
    rows: Rows,
    database_url: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    async with serve_target() as target:
        endpoint = await rows.endpoint(target.url("/hang/2/drain"))
        port = free_port()
        proc = start_cli(
            "scheduler",
            "--metrics-port",
            str(port),
            env=_env(database_url, tmp_path, HOST="127.0.0.1"),
        )
        processes.append(proc)
        await until(lambda: target.count("/hang/") >= 1, timeout=60, what="the call to start")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            body = await resp.text()
        assert "cronicorn_scheduler_in_flight_runs 1.0" in body
        assert "cronicorn_scheduler_lateness_seconds_bucket" in body
        await _stop(proc)
    (run,) = [r for r in await rows.runs(endpoint) if r["status"] != "skipped"]
    assert run["status"] == "success", "the in-flight call finished before exit"
    row = await rows.endpoint_row(endpoint)
    assert row["lease_owner"] is None


async def _signal_a_leaseholder(
    database_url: str, workers: list[subprocess.Popen[str]], sig: signal.Signals
) -> tuple[subprocess.Popen[str], float]:
    """Signal the process group of a worker at a moment it holds leases: the victim, and
    the loop time it was sent. Whichever worker holds leases (the workers share the due
    endpoints as they claim them, not evenly: one may go without for a while). It is frozen
    first and its leases checked while it cannot release them (a check before the signal
    could see leases it released meanwhile)."""
    holders: list[subprocess.Popen[str]] = []

    async def someone_holds_leases() -> bool:
        holders[:] = [w for w in workers if await _leases_of(database_url, w.pid) > 0]
        return bool(holders)

    for _ in range(50):
        await until(someone_holds_leases, timeout=30, what="a worker to hold leases")
        victim = holders[0]
        os.killpg(victim.pid, signal.SIGSTOP)
        frozen_at = asyncio.get_running_loop().time()
        if await _leases_of(database_url, victim.pid) > 0:
            if sig != signal.SIGSTOP:
                os.killpg(victim.pid, sig)
            return victim, frozen_at
        os.killpg(victim.pid, signal.SIGCONT)
    raise AssertionError("no worker held leases while frozen")


def _first_hits_after(target: Any, since: float) -> dict[str, float]:
    """Seconds from `since` to each path's first call after it."""
    first: dict[str, float] = {}
    for hit in target.hits:
        if hit.started > since and hit.path not in first:
            first[hit.path] = hit.started - since
    return first
