"""Runs of an `allow` endpoint finish apart from their endpoint's lease (`Kind.DETACHED`):
their failures, recovery and slow runs reach the notification outbox all the same, each
event once per streak, from a real scheduler to a real webhook receiver."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiohttp import web
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain import ScheduleState
from cronicorn.domain.ids import new_id
from cronicorn.scheduler.writer import Done, Kind
from cronicorn.store import detached_runs
from cronicorn.store.claims import WORKER_LOST
from cronicorn.store.outbox import enqueue_facts, run_facts
from cronicorn.store.run_writes import EndpointUpdate, Leased, RunOutcome
from cronicorn.store.tables import runs
from notify.notify_support import add_channel, delivering, outbox_rows, subscribe
from notify.receivers import Receiver, http_receiver
from scheduler.conftest import Rows, running_scheduler, serve_target, utc
from support import until


class Failing:
    """Each call lasts `seconds` (longer than the interval: runs overlap) and answers
    `status`; counts the calls answered and the most in flight at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.status = 500
        self.answered: Counter[int] = Counter()
        self.now = 0
        self.most = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.now -= 1
        status = self.status
        self.answered[status] += 1
        return web.json_response({"ok": status < 300}, status=status)


def _events(rx: Receiver) -> list[dict[str, Any]]:
    return [e for h in rx.at("/hook") for e in h.json["events"]]


def _named(rx: Receiver, name: str) -> list[dict[str, Any]]:
    return [e for e in _events(rx) if e["event"] == name]


async def _running(
    engine: AsyncEngine,
    user_id: str,
    endpoint: str,
    t0: datetime,
    count: int,
    owner: str,
    *,
    lease_for: timedelta | None = None,
) -> list[str]:
    """`count` detached runs still going, started a second apart from `t0`, leased by
    `owner` (formatted with the run's index `k`)."""
    ids = [new_id() for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(
            insert(runs),
            [
                {
                    "id": run_id,
                    "endpoint_id": endpoint,
                    "user_id": user_id,
                    "status": "running",
                    "source": "baseline-interval",
                    "due_at": t0 + timedelta(seconds=k),
                    "started_at": t0 + timedelta(seconds=k),
                    "lease_owner": owner.format(k=k),
                    "lease_until": None if lease_for is None else t0 + lease_for,
                }
                for k, run_id in enumerate(ids)
            ],
        )
    return ids


async def test_detached_runs_notify_failure_recovery_and_slow_once(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    target = Failing(1.5)
    async with http_receiver() as rx, serve_target({"/slow": target}) as server:
        endpoint = await rows.endpoint(
            server.url("/slow"),
            first_at=utc(seconds=0.3),
            overlap="allow",
            max_concurrent=2,
            max_interval_ms=1000,  # failures do not back the grid off: runs keep overlapping
        )
        channel = await add_channel(engine, rows.user_id, f"json://{rx.base[7:]}/hook")
        await subscribe(
            engine, rows.job_id, channels=[channel], onFailureAfter=2, slowerThanMs=1000
        )
        async with running_scheduler(database_url, engine), delivering(engine):
            await until(lambda: _named(rx, "failure"), timeout=20, what="the failure event")
            await until(lambda: target.answered[500] >= 3, timeout=20, what="more failures")
            target.status = 200
            await until(lambda: _named(rx, "recovery"), timeout=20, what="the recovery event")
            ok = target.answered[200]
            await until(lambda: target.answered[200] >= ok + 1, timeout=20, what="another run")
        assert target.most == 2, "the runs overlapped (detached from the endpoint's lease)"
        [failure] = _named(rx, "failure")
        [recovery] = _named(rx, "recovery")
        assert failure["endpointId"] == endpoint
        assert failure["failures"] == 2, "sent when the streak reached the threshold"
        assert failure["statusCode"] == 500
        assert failure["runId"]
        assert failure["since"]
        assert recovery["status"] == "success"
        assert recovery["failures"] >= 3
        slow = _named(rx, "slow")
        assert slow, "a run slower than slowerThanMs"
        assert len(slow) == len({e["at"][:13] for e in slow}), "one per hour at most"
        assert {e["event"] for e in _events(rx)} == {"failure", "recovery", "slow"}
        assert all(r["state"] == "sent" for r in await outbox_rows(engine))
    failed = [r for r in await rows.runs(endpoint) if r["status"] == "failed"]
    assert len(failed) >= 3
    assert (await rows.endpoint_row(endpoint))["failure_count"] == 0


async def test_detached_finishes_follow_the_streak_in_finish_order_and_count_once(
    database_url: str, engine: AsyncEngine
) -> None:
    """Three detached runs written in one batch (given out of order), a fourth already closed
    by a take-over: the streak goes on run by run (3 -> 4 -> 0 -> 1, as ordinary writes would
    count it), the events follow it, and a repeated write adds nothing."""
    rows = await Rows(engine).setup()
    endpoint = await rows.endpoint(
        "http://127.0.0.1:9/allow",
        first_at=utc(hours=1),
        overlap="allow",
        running=4,
        failure_count=3,
    )
    channel = await add_channel(engine, rows.user_id, "json://127.0.0.1:9/hook")
    await subscribe(engine, rows.job_id, channels=[channel], onFailureAfter=4)
    t0 = datetime.now(UTC)
    ids = await _running(engine, rows.user_id, endpoint, t0, 4, "w:1:x#{k}")

    def ended(k: int, status: str, after_s: float) -> tuple[str, RunOutcome]:
        at = t0 + timedelta(seconds=after_s)
        outcome = RunOutcome(ids[k], status, t0, at, 10, 500 if status == "failed" else 200)
        return f"w:1:x#{k}", outcome

    written = [ended(2, "failed", 9), ended(0, "failed", 5), ended(1, "success", 6)]
    stale = ("w:1:x#other", RunOutcome(ids[3], "failed", t0, t0 + timedelta(seconds=4)))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for _ in range(2):  # the second time: a batch retried after it committed
            async with conn.transaction():
                facts = await detached_runs.finish(conn, [*written, stale])
                await enqueue_facts(conn, facts, t0)
            if _ == 0:
                chain = [(f["run_id"], f["status"], f["before"], f["after"]) for f in facts]
                assert chain == [
                    (ids[0], "failed", 3, 4),
                    (ids[1], "success", 4, 0),
                    (ids[2], "failed", 0, 1),
                ]
            else:
                assert facts == []
    row = await rows.endpoint_row(endpoint)
    assert (row["failure_count"], row["running"]) == (1, 1), "the stale run still runs"
    sent = [(r["event"], r["run_id"]) for r in await outbox_rows(engine)]
    assert sorted(sent) == [("failure", ids[0]), ("recovery", ids[1])]


def test_batch_facts_leave_detached_runs_to_their_own_write() -> None:
    """A detached run's outcome never passes for its endpoint's own run, even when the same
    batch counts a lost worker's run on that endpoint (one fact: the lost run's)."""
    now = datetime.now(UTC)
    detached = RunOutcome("run-d", "failed", now, now)
    batch = [
        Done(Kind.LOST, "ep", "lease-2", now, now),
        Done(Kind.DETACHED, "ep", "lease-1", now, now, detached),
    ]
    leased = {"ep": Leased(ScheduleState(failure_count=1), "baseline-interval", None)}
    update = EndpointUpdate("ep", "lease-2", now, "backoff", failure_count=2)
    [fact] = run_facts(batch, [], [update], leased)
    assert (fact["run_id"], fact["error"], fact["before"], fact["after"]) == (
        None,
        "worker lost",
        1,
        2,
    )


async def test_a_taken_over_detached_run_counts_as_a_failure_with_its_event(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    endpoint = await rows.endpoint(
        "http://127.0.0.1:9/allow", first_at=utc(hours=1), overlap="allow", running=2
    )
    channel = await add_channel(engine, rows.user_id, "json://127.0.0.1:9/hook")
    await subscribe(engine, rows.job_id, channels=[channel], onFailureAfter=2)
    now = datetime.now(UTC)
    ids = await _running(
        engine, rows.user_id, endpoint, now, 2, "gone:1:x#{k}@4242", lease_for=timedelta(minutes=10)
    )  # a liveness key nobody holds
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert set(await detached_runs.take_over(conn, now=now, dead_owners=True)) == set(ids)
        assert await detached_runs.take_over(conn, now=now, dead_owners=True) == []
    assert (await rows.endpoint_row(endpoint))["failure_count"] == 2
    [failure] = await outbox_rows(engine)
    assert (failure["event"], failure["run_id"]) == ("failure", max(ids))
    assert failure["payload"]["error"] == WORKER_LOST
    assert failure["payload"]["failures"] == 2
