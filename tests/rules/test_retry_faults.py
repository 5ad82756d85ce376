"""Retries within a slot under faults: a real `cronicorn scheduler` process stopped by
SIGTERM or killed by SIGKILL while it retries closes the slot once (no second run of it,
every call with the slot's run id); a retry storm over 1,000 failing endpoints never has
more calls in flight than the scheduler's concurrency."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.claims import WORKER_LOST
from scheduler.conftest import Rows, running_scheduler, serve_target, utc
from support import cli_env, start_cli, until

pytestmark = pytest.mark.slow

RETRY = {"attempts": 6, "backoff": "fixed", "initialDelayMs": 2000, "on": ["5xx"]}


class Failing:
    """Answers 503 (after `delay` s); counts calls per run id and the most in flight."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.run_ids: list[str | None] = []
        self.now = 0
        self.most = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.run_ids.append(request.headers.get("X-Cronicorn-Run-Id"))
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.now -= 1
        return web.json_response({"ok": False}, status=503)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def _scheduler(database_url: str, home: Path, **extra: str) -> subprocess.Popen[str]:
    env = cli_env(
        DATABASE_URL=database_url,
        CRONICORN_HOME=str(home),
        AUTH_SECRET="s" * 40,
        CRONICORN_ALLOW_NETWORKS="127.0.0.0/8",
        SHUTDOWN_TIMEOUT_S="4",
        **extra,
    )
    return start_cli("scheduler", env=env)


async def _retrying(handler: Failing) -> None:
    async def second_call() -> bool:
        return len(handler.run_ids) >= 2

    await until(second_call, timeout=60, what="the slot's second attempt")


def _one_slot(runs: list[dict[str, Any]], handler: Failing) -> dict[str, Any]:
    (run,) = runs
    assert run["status"] == "failed"
    assert run["finished_at"] is not None
    assert set(handler.run_ids) == {run["id"]}, "every call carried the slot's run id"
    return run


async def test_sigterm_while_retrying_closes_the_slot_once(
    database_url: str, engine: AsyncEngine, tmp_path: Path, procs: list[Any]
) -> None:
    rows = await Rows(engine).setup()
    handler = Failing()
    async with serve_target({"/fail": handler}) as target:
        endpoint = await rows.endpoint(
            target.url("/fail"), baseline_interval_ms=600_000, first_at=utc(), retry=RETRY
        )
        proc = _scheduler(database_url, tmp_path)
        procs.append(proc)
        await _retrying(handler)
        os.killpg(proc.pid, signal.SIGTERM)
        await until(lambda: proc.poll() is not None, timeout=30, what="the scheduler to exit")
        assert proc.returncode == 0
        calls = len(handler.run_ids)
        run = _one_slot(await rows.runs(endpoint), handler)
        assert "retries cut short by shutdown" in run["error_message"]
        assert [a["attempt"] for a in run["attempts"]] == list(range(1, calls + 1))
        row = await rows.endpoint_row(endpoint)
        assert row["lease_owner"] is None, "the slot was given back cleanly"
        assert row["next_run_at"] > run["due_at"], "the schedule moved past the closed slot"
        assert row["failure_count"] == 1, "one failure for the slot, not one per attempt"


async def test_sigkill_while_retrying_a_peer_closes_the_slot_once(
    database_url: str, engine: AsyncEngine, tmp_path: Path, procs: list[Any]
) -> None:
    rows = await Rows(engine).setup()
    handler = Failing()
    async with serve_target({"/fail": handler}) as target:
        endpoint = await rows.endpoint(
            target.url("/fail"), baseline_interval_ms=600_000, first_at=utc(), retry=RETRY
        )
        proc = _scheduler(database_url, tmp_path, SCHEDULER_LEASE_S="2")
        procs.append(proc)
        await _retrying(handler)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        calls = len(handler.run_ids)
        async with running_scheduler(database_url, engine, lease_s=2, worker_id="peer"):

            async def closed() -> bool:
                row = await rows.endpoint_row(endpoint)
                running = await rows.run_count(endpoint, status="running")
                return running == 0 and row["lease_owner"] is None

            await until(closed, timeout=30, what="the peer to close the slot and reschedule")
            row = await rows.endpoint_row(endpoint)
        assert len(handler.run_ids) == calls, "the peer did not run the slot again"
        run = _one_slot(await rows.runs(endpoint), handler)
        assert run["error_message"] == WORKER_LOST
        assert row["lease_owner"] is None
        assert row["next_run_at"] > run["due_at"]


async def test_a_retry_storm_keeps_concurrency_bounded(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    handler = Failing(delay=0.01)
    retry = {"attempts": 3, "backoff": "fixed", "initialDelayMs": 20, "on": ["5xx"]}
    async with serve_target({"/storm/{n}": handler}) as target:
        ids = await rows.endpoints(
            [target.url(f"/storm/{i}") for i in range(1000)],
            baseline_interval_ms=3_600_000,
            first_at=utc(seconds=0.5),
            retry=retry,
        )
        async with running_scheduler(database_url, engine, concurrency=25, batch_size=100):

            async def all_closed() -> bool:
                return await rows.run_count(status="failed") == len(ids)

            await until(all_closed, timeout=120, what="1,000 failing slots, each retried")
    assert len(handler.run_ids) == 3 * len(ids), "three attempts per slot, no more"
    assert len(set(handler.run_ids)) == len(ids), "one run id per slot"
    assert 1 < handler.most <= 25, f"in flight at once: {handler.most}"
