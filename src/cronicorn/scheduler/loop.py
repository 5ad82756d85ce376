"""The scheduler loop: claim due endpoints in batches, call them concurrently, write back.

    claim loop ──claims──▶ one task per slot: sleep until due, call (≤ CONCURRENCY at once)
        ▲                                  │
        │ wake: earliest due time,         ▼ result
        │ NOTIFY, freed capacity     RunWriter (batched writes, releases leases)
        │
    maintenance: lease heartbeat; take over the leases of dead workers; retention
    liveness: a session advisory lock held while alive; no claim without it


Claims look `claim_ahead_s` ahead so the database round trip happens before the slot is
due, and each slot then waits on the event loop until its due time by the scheduler's clock
(never early). Capacity counts every held lease (waiting, running or not yet written), so a
slow database slows claiming instead of piling up work. Any one slot's failure (bad stored
schedule, unexpected exception) becomes that run's error; the loop never stops for it.
Database errors are retried on fresh connections with backoff.

Failover (`liveness`): every lease carries the key of its worker's liveness lock. Once a
second, each scheduler takes over the leases whose worker's lock is free (it crashed: its
session ended) and those that expired (it hung: no heartbeat for `lease_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import socket
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg

from cronicorn.domain import NO_QUOTAS, Quotas, month_start
from cronicorn.domain.ids import new_id
from cronicorn.domain.overlap import ALLOW
from cronicorn.errors import first_line
from cronicorn.logs import get_logger
from cronicorn.scheduler import metrics
from cronicorn.scheduler.clock import Clock, utc_now
from cronicorn.scheduler.connection import (
    ReconnectingConnection,
    hung_session_limit_s,
    idle_transaction_limit,
)
from cronicorn.scheduler.liveness import Liveness
from cronicorn.scheduler.outcome import Execute, HttpOutcome, run_of
from cronicorn.scheduler.planning import schedule_problem
from cronicorn.scheduler.retention import RetentionPolicy, run_retention
from cronicorn.scheduler.signing_keys import BatchKeys
from cronicorn.scheduler.wakeup import listen_for_wakeups
from cronicorn.scheduler.writer import Done, Kind, RunWriter
from cronicorn.store import detached_runs
from cronicorn.store.claims import (
    Claimed,
    claim_due,
    lease_token,
    next_due_at,
    open_meters,
    release_unstarted,
    renew_leases,
    sweep_leases,
    take_over,
)
from cronicorn.store.rule_writes import apply_pending

log = get_logger("cronicorn.scheduler")

MIN_WAIT_S = 0.005
MAX_BACKOFF_S = 2.0


class KeySource(Protocol):
    def keys_for(self, user_ids: Iterable[str], now: datetime) -> Awaitable[BatchKeys]: ...


def default_worker_id() -> str:
    """host:pid:random, so runs name the process that made them."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"


@dataclass(frozen=True)
class SchedulerConfig:
    worker_id: str = field(default_factory=default_worker_id)
    concurrency: int = 200
    batch_size: int = 100
    lease_s: float = 15.0
    takeover_every_s: float = 1.0  # how often dead workers' leases are looked for
    sweep_chunk: int = 2000  # endpoints walked per take-over for leases no index finds
    takeover_grace_s: float = 3.0  # after (re)taking our liveness lock: see `liveness`
    claim_ahead_s: float = 0.25
    idle_wake_s: float = 5.0  # safety net: re-check at least this often without NOTIFY
    write_delay_s: float = 0.01
    writers: int = 2  # connections writing results in parallel
    shutdown_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    quotas: Quotas = NO_QUOTAS

    @property
    def max_held(self) -> int:
        """Leases held at once: the calls in flight plus a few batches claimed ahead (only
        slots due within `claim_ahead_s` are claimed, so this bounds memory, not fairness)."""
        return self.concurrency + 4 * self.batch_size

    @property
    def renew_every_s(self) -> float:
        """Heartbeat period: three tries per lease, so one slow round never loses a lease."""
        return max(0.2, min(self.lease_s / 3, 10.0))


class Scheduler:
    def __init__(
        self,
        config: SchedulerConfig,
        database_url: str,
        *,
        execute: Execute,
        keys: KeySource | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config = config
        self._url = database_url
        self._execute = execute
        self._keys = keys
        self._clock = clock
        timeout = config.connect_timeout_s
        locking = idle_transaction_limit(config.lease_s)  # connections that hold row locks
        self._claim_db = ReconnectingConnection(
            database_url, purpose="claim", connect_timeout_s=timeout, options=locking
        )
        self._write_dbs = [
            ReconnectingConnection(
                database_url,
                purpose="write",
                connect_timeout_s=timeout,
                options=locking,
                transaction_limit_s=hung_session_limit_s(config.lease_s),
            )
            for _ in range(max(1, config.writers))
        ]
        self._maint_db = ReconnectingConnection(
            database_url, purpose="lease", connect_timeout_s=timeout, options=locking
        )
        self._prune_db = ReconnectingConnection(
            database_url, purpose="prune", connect_timeout_s=timeout
        )
        self._liveness = Liveness(
            database_url,
            connect_timeout_s=timeout,
            check_every_s=config.takeover_every_s,
            grace_s=config.takeover_grace_s,
        )
        self._claim_problem: str | None = None  # why the last claim failed, until one works
        self._writer = RunWriter(
            self._write_dbs,
            clock=clock,
            on_released=self._released,
            gather=min(config.batch_size, 50),
            max_batch=config.max_held,
            max_delay_s=config.write_delay_s,
            min_floor_ms=config.quotas.min_interval_ms,
            lease_s=config.lease_s,
        )
        self._sequence = itertools.count(1)
        self._held: dict[str, str] = {}  # endpoint id -> lease, until written back
        self._swept_to = ""  # where the next chunk of the take-over's walk starts
        self._detached: dict[str, str] = {}  # run id -> its own lease (overlap allow)
        self._detaching: dict[str, asyncio.Event] = {}  # run id -> set once detached
        self._waiting: dict[asyncio.Task[None], Claimed] = {}  # claimed, not yet started
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(config.concurrency)
        self._wake = asyncio.Event()
        self._capacity = asyncio.Event()
        self._draining = False
        self._wake_at: datetime | None = None  # when the idle claim loop next looks
        self._meters_month: datetime | None = None  # the month whose meters are open

    # -- public -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Schedule until `stop` is set, then drain within the shutdown timeout."""
        quiet = asyncio.Event()  # stops the helpers once the drain is over
        writer = asyncio.create_task(self._writer.run(), name="scheduler:writer")
        helpers = [
            asyncio.create_task(self._liveness.run(quiet), name="scheduler:liveness"),
            asyncio.create_task(
                listen_for_wakeups(self._url, self._wake.set, quiet), name="scheduler:listen"
            ),
            asyncio.create_task(self._maintain(quiet), name="scheduler:leases"),
            asyncio.create_task(
                run_retention(
                    self._prune_db, self.config.retention, self._clock, self._take_touched, stop
                ),
                name="scheduler:retention",
            ),
        ]
        log.info("scheduler_started", worker=self.config.worker_id)
        try:
            await self._claim_loop(stop)
        finally:
            await self._drain(writer)
            quiet.set()
            for task in helpers:  # they hold nothing to flush: stop them now
                task.cancel()
            writer.cancel()  # done already, unless it gave up within the drain budget
            await asyncio.gather(*helpers, writer, return_exceptions=True)
            for holder in (self._claim_db, *self._write_dbs, self._maint_db, self._prune_db):
                await holder.close()
            await self._liveness.close()  # last: every lease is written or given back
            metrics.IN_FLIGHT.set(0)
            log.info("scheduler_stopped", worker=self.config.worker_id)

    def wake(self) -> None:
        self._wake.set()

    async def health(self) -> dict[str, Any]:
        """`degraded`, with the reason, while the loop cannot reach PostgreSQL (its liveness
        lock is lost or its last claim failed): it claims nothing then."""
        problem = self._liveness.problem or self._claim_problem
        body: dict[str, Any] = {
            "status": "ok" if problem is None else "degraded",
            "worker": self.config.worker_id,
            "inFlight": len(self._held),
            "writeBacklog": self._writer.backlog,
        }
        if problem is not None:
            body["reason"] = problem
        return body

    # -- claiming ---------------------------------------------------------------------------
    async def _claim_loop(self, stop: asyncio.Event) -> None:
        backoff = 0.05
        while not stop.is_set():
            held = len(self._held) + len(self._detached)
            limit = min(self.config.batch_size, self.config.max_held - held)
            if limit <= 0:
                self._capacity.clear()
                await _wait_any((self._capacity, stop), self.config.idle_wake_s)
                continue
            if not self._liveness.held.is_set():  # peers would take over what we claim
                await _wait_any((self._liveness.held, stop), self.config.idle_wake_s)
                continue
            self._wake.clear()
            now = self._clock()
            try:
                conn = await self._claim_db.get()
                await self._open_meters(conn, now)
                claims = await claim_due(
                    conn,
                    worker=self.config.worker_id,
                    lease=self._new_lease(),
                    now=now,
                    horizon=now + timedelta(seconds=self.config.claim_ahead_s),
                    limit=limit,
                    lease_s=self.config.lease_s,
                    runs_per_month=self.config.quotas.runs_per_month,
                )
                full = len(claims) == limit
                next_due = None if full else await next_due_at(conn)
                backoff = 0.05
                self._claim_problem = None
            except (psycopg.Error, OSError) as exc:
                metrics.DB_ERRORS.labels("claim").inc()
                self._claim_problem = f"claims failing: {first_line(exc)[:200]}"
                await self._claim_db.discard()
                log.warning("claim_failed", error=str(exc).strip()[:200], retry_in_s=backoff)
                await _wait_any((stop,), backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            metrics.CLAIM_BATCH.observe(len(claims))
            if claims:
                await self._start(claims, now)
            if full:
                await asyncio.sleep(0)
                continue
            delay = self._idle_delay(next_due)
            self._wake_at = self._clock() + timedelta(seconds=delay)
            await _wait_any((self._wake, stop), delay)
            self._wake_at = None

    async def _open_meters(self, conn: psycopg.AsyncConnection[Any], now: datetime) -> None:
        """Under a run quota: this month's meters exist before the first claim in it."""
        month = month_start(now)
        if self.config.quotas.runs_per_month > 0 and month != self._meters_month:
            await open_meters(conn, now)
            self._meters_month = month

    def _idle_delay(self, next_due: datetime | None) -> float:
        if next_due is None:
            return self.config.idle_wake_s
        ahead = timedelta(seconds=self.config.claim_ahead_s)
        delay = (next_due - ahead - self._clock()).total_seconds()
        return min(max(delay, MIN_WAIT_S), self.config.idle_wake_s)

    def _wake_for(self, due: datetime) -> None:
        """Wake the idle claim loop if `due` comes before its planned look."""
        wake_at = self._wake_at
        if wake_at is not None and due - timedelta(seconds=self.config.claim_ahead_s) < wake_at:
            self._wake.set()

    def _new_lease(self) -> str:
        return lease_token(self.config.worker_id, next(self._sequence), self._liveness.key)

    async def _start(self, claims: Sequence[Claimed], now: datetime) -> None:
        keys = await self._signing_keys(claims, now)
        for claim in claims:
            self._held[claim.endpoint_id] = claim.lease
            if claim.run_id is None:
                log.warning(
                    "slot_already_ran", endpoint=claim.endpoint_id, due_at=str(claim.due_at)
                )
                self._writer.submit(
                    Done(Kind.CONFLICT, claim.endpoint_id, claim.lease, claim.due_at)
                )
                continue
            problem = keys.errors.get(claim.user_id)
            if problem is not None:
                problem = f"signing keys unavailable, request not sent: {problem}"
            user_keys = keys.keys.get(claim.user_id, [])
            task = asyncio.create_task(self._run_one(claim, user_keys, problem))
            self._waiting[task] = claim
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        metrics.IN_FLIGHT.set(len(self._held))

    async def _signing_keys(self, claims: Sequence[Claimed], now: datetime) -> BatchKeys:
        users = {c.user_id for c in claims if c.run_id is not None}
        if self._keys is None or not users:
            return BatchKeys()
        try:
            return await self._keys.keys_for(users, now)
        except Exception as exc:
            log.warning("signing_keys_unavailable", error=str(exc)[:200])
            return BatchKeys(errors={u: type(exc).__name__ for u in users})

    # -- one slot ---------------------------------------------------------------------------
    async def _run_one(self, claim: Claimed, keys: list[bytes], key_error: str | None) -> None:
        assert claim.run_id is not None
        task = asyncio.current_task()
        started: datetime | None = None
        try:
            await self._sleep_until(claim.due_at)
            async with self._slots:
                if task is not None:
                    self._waiting.pop(task, None)
                started = self._clock()
                metrics.LATENESS.observe(max(0.0, (started - claim.due_at).total_seconds()))
                problem = key_error or schedule_problem(claim.baseline_cron, claim.timezone)
                if problem is not None:
                    outcome = HttpOutcome.failed(problem)
                else:
                    if claim.overlap == ALLOW:
                        self._detach(claim, started)
                    outcome = await self._execute(claim, keys)
        except asyncio.CancelledError:
            if started is None:  # shutdown before it began: `_drain` gives the slot back
                return
            outcome = HttpOutcome.failed("cancelled: the scheduler shut down during the call")
        except Exception as exc:
            log.exception("execution_crashed", endpoint=claim.endpoint_id)
            outcome = HttpOutcome.failed(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if task is not None:
                self._waiting.pop(task, None)
        finished = self._clock()
        started = started or finished
        (metrics.SUCCEEDED if outcome.succeeded else metrics.FAILED).inc()
        kind = Kind.FINISHED
        detaching = self._detaching.pop(claim.run_id, None)
        if detaching is not None:  # written after the detach, which it then follows
            await detaching.wait()
            kind = Kind.DETACHED
        self._writer.submit(
            Done(
                kind,
                claim.endpoint_id,
                claim.lease,
                claim.due_at,
                started,
                run_of(outcome, claim.run_id, started, finished),
            )
        )

    def _detach(self, claim: Claimed, started: datetime) -> None:
        """An `allow` run starts: its endpoint's next slot is planned now and the run goes on
        under a lease of its own (`store.detached_runs`)."""
        assert claim.run_id is not None
        self._detaching[claim.run_id] = asyncio.Event()
        self._writer.submit(
            Done(
                Kind.DETACH,
                claim.endpoint_id,
                claim.lease,
                claim.due_at,
                started,
                run_id=claim.run_id,
            )
        )

    async def _sleep_until(self, due: datetime) -> None:
        """Wait until `due` by the scheduler's clock (re-read after every wake-up)."""
        while True:
            delay = (due - self._clock()).total_seconds()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    def _released(self, items: Sequence[Done], earliest: datetime | None) -> None:
        for item in items:
            if item.kind is Kind.DETACH and item.run_id is not None:
                self._detached[item.run_id] = item.lease
                event = self._detaching.get(item.run_id)
                if event is not None:
                    event.set()
            elif item.kind is Kind.DETACHED and item.outcome is not None:
                self._detached.pop(item.outcome.run_id, None)
                self._wake.set()  # a place freed: the endpoint may be claimable again
                continue
            if self._held.get(item.endpoint_id) == item.lease:
                del self._held[item.endpoint_id]
        metrics.IN_FLIGHT.set(len(self._held))
        self._capacity.set()
        if earliest is not None:
            self._wake_for(earliest)

    def _take_touched(self) -> set[str]:
        touched, self._writer.touched = self._writer.touched, set()
        return touched

    # -- leases -----------------------------------------------------------------------------
    async def _maintain(self, quiet: asyncio.Event) -> None:
        """Heartbeat the held leases every `renew_every_s`; take over lost ones every
        `takeover_every_s` (dead workers: at once; hung workers: once their lease expired)."""
        renewed_at = -math.inf
        while not quiet.is_set():
            try:
                conn = await self._maint_db.get()
                if time.monotonic() - renewed_at >= self.config.renew_every_s:
                    held = list(self._held.items())
                    await renew_leases(conn, held, lease_s=self.config.lease_s)
                    runs = list(self._detached.items())
                    await detached_runs.renew(conn, runs, lease_s=self.config.lease_s)
                    renewed_at = time.monotonic()
                if not self._draining and self._liveness.held.is_set():
                    await self._take_over(conn)  # (leases we take must carry a held key)
                    await apply_pending(conn, self._clock())  # left by a crashed peer
            except (psycopg.Error, OSError) as exc:
                metrics.DB_ERRORS.labels("lease").inc()
                await self._maint_db.discard()
                log.warning("lease_maintenance_failed", error=str(exc).strip()[:200])
            await _wait_any((quiet,), self.config.takeover_every_s)

    async def _take_over(self, conn: psycopg.AsyncConnection[Any]) -> None:
        closed = await detached_runs.take_over(
            conn, now=self._clock(), dead_owners=self._liveness.may_take_over_dead()
        )
        if closed:
            metrics.WORKER_LOST.inc(len(closed))
            log.warning("worker_lost", runs=len(closed), why="detached run's lease lost")
            self._wake.set()
        self._swept_to, swept = await sweep_leases(
            conn, after=self._swept_to, chunk=self.config.sweep_chunk
        )
        lost = await take_over(
            conn,
            lease=self._new_lease(),
            now=self._clock(),
            lease_s=self.config.lease_s,
            dead_owners=self._liveness.may_take_over_dead(),
            swept=swept,
        )
        for item in lost:
            self._held[item.endpoint_id] = item.lease
            if item.run_id is None or item.due_at is None:
                self._writer.submit(Done(Kind.RELEASE, item.endpoint_id, item.lease))
                continue
            metrics.WORKER_LOST.inc()
            log.warning(
                "worker_lost",
                endpoint=item.endpoint_id,
                lease=item.dead_lease,
                why="liveness lock free" if item.owner_gone else "lease expired",
            )
            self._writer.submit(
                Done(Kind.LOST, item.endpoint_id, item.lease, item.due_at, item.started_at)
            )

    # -- shutdown ---------------------------------------------------------------------------
    async def _drain(self, writer: asyncio.Task[None]) -> None:
        """Give back slots not started, let running calls finish (then cancel them), and
        write every result, all within the shutdown timeout."""
        self._draining = True
        budget = self.config.shutdown_timeout_s
        deadline = time.monotonic() + budget
        waiting = dict(self._waiting)  # tasks cancelled before they ever ran do not see it
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        await self._release_unstarted(list(waiting.values()))
        running = list(self._tasks)
        if running:
            log.info("draining", running=len(running))
            _, late = await asyncio.wait(running, timeout=budget * 0.6)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._writer.close(within_s=max(0.5, deadline - time.monotonic() - 0.5))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(writer), max(0.5, deadline - time.monotonic()))

    async def _release_unstarted(self, claims: list[Claimed]) -> None:
        if not claims:
            return
        try:
            conn = await self._claim_db.get()
            await release_unstarted(conn, worker=self.config.worker_id, claims=claims)
        except (psycopg.Error, OSError) as exc:  # their leases expire; others take over
            log.warning("release_failed", error=str(exc).strip()[:200], slots=len(claims))
        for claim in claims:
            if self._held.get(claim.endpoint_id) == claim.lease:
                del self._held[claim.endpoint_id]


async def _wait_any(events: Sequence[asyncio.Event], timeout: float) -> None:
    """Return when any event is set or after `timeout` seconds."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
