"""Writes finished runs back in batches, on one connection, in the background.

Executions hand their result to `RunWriter.submit` and move on; the writer gathers results
for a few milliseconds (or until a batch is full) and writes the whole batch in one
transaction (`store.run_writes`: lock + re-read, plan with the governor, one UPDATE). A lost
connection is retried with backoff; the write is idempotent because it only touches runs
still `running` and endpoints still held under the same lease. A batch the database rejects
for its data (a body PostgreSQL refuses) is split, so one bad row cannot block the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from cronicorn.domain import ScheduleState
from cronicorn.domain.rules import Effect, already_in_force
from cronicorn.errors import first_line
from cronicorn.logs import get_logger
from cronicorn.scheduler import metrics, overlap_step
from cronicorn.scheduler.clock import Clock
from cronicorn.scheduler.connection import (
    ReconnectingConnection,
    is_connection_error,
    pipeline_if_bounded,
)
from cronicorn.scheduler.planning import plan_after
from cronicorn.scheduler.rules_step import Applied, after_run
from cronicorn.store import detached_runs
from cronicorn.store.outbox import enqueue_facts, enqueue_run_events
from cronicorn.store.rule_writes import apply_pending, queue_effects
from cronicorn.store.run_writes import (
    EndpointUpdate,
    Leased,
    RunOutcome,
    SkippedSlot,
    lock_leased,
    record_skipped,
    write_finished,
)
from cronicorn.store.wakeups import WAKEUP_CHANNEL

log = get_logger("cronicorn.scheduler")
_T = TypeVar("_T")

MAX_BACKOFF_S = 2.0


class Kind(enum.Enum):
    FINISHED = "finished"  # a run ended: write it and plan the next one
    LOST = "lost"  # a dead worker's run, already closed: plan after a failure
    RELEASE = "release"  # nothing ran: keep the plan, drop the lease
    CONFLICT = "conflict"  # the slot already had a run: move on to the next slot
    DETACH = "detach"  # an `allow` run started: plan the next slot, give the run its lease
    DETACHED = "detached"  # a detached run ended: write it (its endpoint's plan stands)


@dataclass(frozen=True, slots=True)
class Done:
    kind: Kind
    endpoint_id: str
    lease: str
    due_at: datetime | None = None
    started_at: datetime | None = None
    outcome: RunOutcome | None = None
    run_id: str | None = None  # DETACH: the run that goes on under its own lease


@dataclass
class _Batch:
    """What one batch transaction writes, gathered while planning its items."""

    outcomes: list[RunOutcome] = field(default_factory=list)
    updates: list[EndpointUpdate] = field(default_factory=list)
    effects: list[tuple[str, Effect]] = field(default_factory=list)  # (source, effect)
    skipped: list[SkippedSlot] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)  # overlap policy of each queued slot
    skipped_by: dict[str, int] = field(default_factory=dict)  # overlap policy -> slots
    detach: list[tuple[str, str]] = field(default_factory=list)  # (run id, lease)
    finished_detached: list[tuple[str, RunOutcome]] = field(default_factory=list)


Released = Callable[[Sequence[Done], datetime | None], None]
"""Called after a batch is written, with the earliest `next_run_at` it planned."""


class RunWriter:
    """Batches results and writes them on `len(dbs)` connections in parallel (batches hold
    disjoint endpoints, so parallel writers never wait on each other's locks)."""

    def __init__(
        self,
        dbs: Sequence[ReconnectingConnection],
        *,
        clock: Clock,
        on_released: Released,
        gather: int,
        max_batch: int,
        max_delay_s: float,
        min_floor_ms: int = 0,
        lease_s: float = 15.0,
    ) -> None:
        self._dbs = list(dbs)
        self._lease_s = lease_s  # of runs detached from their endpoint (overlap allow)
        self._clock = clock
        self._on_released = on_released
        self._gather = max(1, gather)
        self._max_batch = max(self._gather, max_batch)
        self._max_delay_s = max_delay_s
        self._min_floor_ms = min_floor_ms  # QUOTA_MIN_INTERVAL_MS: every endpoint's floor
        self._pending: list[Done] = []
        self._ready = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._give_up_at: float | None = None
        self.touched: set[str] = set()  # endpoints written since retention last looked

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def submit(self, item: Done) -> None:
        self._pending.append(item)
        self._ready.set()
        if len(self._pending) >= self._gather:
            self._full.set()

    def close(self, within_s: float) -> None:
        """Write what is pending, then stop; give up retrying after `within_s` seconds."""
        self._closing = True
        self._give_up_at = time.monotonic() + within_s
        self._ready.set()
        self._full.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._flush(db) for db in self._dbs))

    async def _flush(self, db: ReconnectingConnection) -> None:
        while True:
            await self._ready.wait()
            if not self._pending:
                if self._closing:
                    return
                self._ready.clear()
                continue
            if len(self._pending) < self._gather and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._max_delay_s)
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            if len(self._pending) < self._gather:
                self._full.clear()
            if not batch:
                continue
            written, earliest = await self._write_with_retry(db, batch)
            if not written:
                return
            self._on_released(batch, earliest)

    async def _write_with_retry(
        self, db: ReconnectingConnection, batch: list[Done]
    ) -> tuple[bool, datetime | None]:
        """(written, the earliest next run written); (False, None) after giving up."""
        backoff = 0.05
        while True:
            try:
                try:
                    return True, await self._write(db, batch)
                except psycopg.Error as exc:
                    if is_connection_error(exc):
                        raise
                    log.warning("run_batch_rejected", error=str(exc).strip()[:300], size=len(batch))
                    earliest: datetime | None = None
                    for item in batch:
                        at = await self._write_alone(db, item)
                        if at is not None and (earliest is None or at < earliest):
                            earliest = at
                    return True, earliest
            except (psycopg.Error, OSError) as exc:
                metrics.DB_ERRORS.labels("write").inc()
                await db.discard()
                if self._give_up_at is not None and time.monotonic() > self._give_up_at:
                    log.error("run_writes_abandoned", size=len(batch), error=str(exc)[:200])
                    return False, None
                log.warning("run_write_retry", error=str(exc).strip()[:200], retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _write_alone(self, db: ReconnectingConnection, item: Done) -> datetime | None:
        """Write one item; if the database still rejects it, drop what it refused (the body)
        and say so on the run, so the endpoint is rescheduled all the same."""
        try:
            return await self._write(db, [item])
        except psycopg.Error as exc:
            if is_connection_error(exc) or item.outcome is None:
                raise
            reason = first_line(exc)[:200]
        stripped = replace(
            item.outcome,
            body_json=None,
            body_text=None,
            error=_join(item.outcome.error, f"response not stored: {reason}"),
        )
        return await self._write(db, [replace(item, outcome=stripped)])

    async def _write(self, db: ReconnectingConnection, batch: Sequence[Done]) -> datetime | None:
        conn = await db.get()
        acc = _Batch()
        # Pipeline mode: BEGIN travels with the locking read, the write with COMMIT, so a
        # batch costs two round trips (each one waits behind a busy event loop). Only where
        # the server bounds the transaction: see `connection.TRANSACTION_TIMEOUT_SINCE`.
        async with pipeline_if_bounded(conn), conn.transaction():
            leased = await lock_leased(
                conn,
                [(d.endpoint_id, None if d.kind is Kind.DETACHED else d.lease) for d in batch],
                min_floor_ms=self._min_floor_ms,
            )
            now = self._clock()
            for item in batch:
                self._plan(item, _held(item, leased.get(item.endpoint_id)), now, acc)
            await write_finished(conn, outcomes=acc.outcomes, updates=acc.updates)
            await enqueue_run_events(conn, batch, acc.outcomes, acc.updates, leased, now)
            await self._write_extras(conn, acc, now)
        if acc.effects:
            await _apply_effects(conn, now)
        _count(acc)
        metrics.WRITE_BATCH.observe(len(batch))
        self.touched.update(d.endpoint_id for d in batch if d.outcome is not None)
        return min((u.next_run_at for u in acc.updates), default=None)

    async def _write_extras(self, conn: Any, acc: _Batch, now: datetime) -> None:
        """The rarer parts of a batch, in its transaction: skipped slots, rule effects for
        later, runs detached from or finished apart from their endpoint's lease (after the
        plans: their failure streaks go on from what the plans wrote) and their events."""
        if acc.skipped:
            await record_skipped(conn, acc.skipped)
        if acc.effects:
            await queue_effects(conn, acc.effects)
        if acc.detach:
            await detached_runs.detach(conn, acc.detach, lease_s=self._lease_s)
        if acc.finished_detached:
            facts = await detached_runs.finish(conn, acc.finished_detached)
            await enqueue_facts(conn, facts, now)
            await conn.execute("SELECT pg_notify(%s, '')", (WAKEUP_CHANNEL,))  # a place freed

    def _plan(self, item: Done, row: Leased | None, now: datetime, acc: _Batch) -> None:
        if item.kind is Kind.DETACHED:
            self._plan_detached(item, row, now, acc)
            return
        outcome, update = self._plan_one(item, row, now, acc)
        if outcome is not None:
            acc.outcomes.append(outcome)
        if update is not None:
            acc.updates.append(update)

    def _plan_detached(self, item: Done, row: Leased | None, now: datetime, acc: _Batch) -> None:
        """A detached run ended: its row and its endpoint's counters; its rules' effects,
        its own included, are queued (the endpoint's plan was made when it started)."""
        outcome = item.outcome
        if outcome is None:
            return
        if row is not None:
            applied = after_run(row.rules, outcome, row.state, now, item.endpoint_id)
            if applied is not None:
                outcome = _evolve(outcome, rules_fired=applied.fired)
                acc.effects.extend((item.endpoint_id, e) for e in applied.own_effects)
                acc.effects.extend((item.endpoint_id, e) for e in applied.siblings)
        acc.finished_detached.append((item.lease, outcome))

    def _plan_one(
        self, item: Done, row: Leased | None, now: datetime, acc: _Batch
    ) -> tuple[RunOutcome | None, EndpointUpdate | None]:
        outcome = item.outcome
        if row is None:  # lease lost: another worker took the endpoint over
            return outcome, None
        state = row.state
        if item.kind is Kind.RELEASE or item.due_at is None:
            keep = EndpointUpdate(
                item.endpoint_id,
                item.lease,
                state.next_run_at or now,
                row.next_run_source,
                state.failure_count,
            )
            return outcome, keep
        started = item.started_at or now
        if item.kind is Kind.DETACH:
            if item.run_id is not None:
                acc.detach.append((item.run_id, item.lease))
            update = overlap_step.detached(
                item.endpoint_id, item.lease, state, due_at=item.due_at, started_at=started, now=now
            )
            return None, _labelled(update, row, None)
        applied = (
            after_run(row.rules, outcome, state, now, item.endpoint_id)
            if item.kind is Kind.FINISHED
            else None
        )
        if applied is not None:
            state = applied.state
        succeeded = item.kind is Kind.CONFLICT or (
            outcome is not None and outcome.status == "success"
        )
        finished = outcome.finished_at if outcome is not None else now
        planned = plan_after(
            item.endpoint_id,
            item.lease,
            state,
            due_at=item.due_at,
            started_at=started,
            finished_at=finished,
            succeeded=succeeded,
            now=now,
        )
        update = planned.update
        if item.kind is Kind.CONFLICT:  # nothing ran: the failure streak stands
            update = _evolve(update, failure_count=state.failure_count, last_run_at=None)
        else:
            update = self._overlap(item, row, update, state, started, finished, acc)
        if applied is not None:
            update, outcome = _with_rules(update, outcome, applied, row, now)
            if applied.siblings:
                acc.effects.extend((item.endpoint_id, e) for e in applied.siblings)
        update = _labelled(update, row, applied)
        if planned.error is not None and outcome is not None:
            outcome = _evolve(
                outcome,
                status="failed",
                error=outcome.error if outcome.error else planned.error,
            )
        return outcome, update

    def _overlap(
        self,
        item: Done,
        row: Leased,
        update: EndpointUpdate,
        state: ScheduleState,
        started: datetime,
        until: datetime,
        acc: _Batch,
    ) -> EndpointUpdate:
        """Slots that came due while the run held its endpoint: skipped, or one queued."""
        assert item.due_at is not None
        paused = state.paused_until is not None and state.paused_until > until
        moved, skipped = overlap_step.overlapped(
            item.endpoint_id,
            row.overlap,
            row.state,
            update,
            due_at=item.due_at,
            started_at=started,
            until=until,
            succeeded=update.failure_count == 0,
            paused=paused,
        )
        if skipped:
            acc.skipped.extend(skipped)
            acc.skipped_by[row.overlap] = acc.skipped_by.get(row.overlap, 0) + len(skipped)
        if moved is not update:
            acc.queued.append(row.overlap)
        return moved


def _held(item: Done, row: Leased | None) -> Leased | None:
    """The re-read row, if this item's lease still holds it (a detached run's row is locked
    whoever holds the endpoint)."""
    if row is None or item.kind is Kind.DETACHED or row.lease_owner == item.lease:
        return row
    return None


def _labelled(update: EndpointUpdate, row: Leased, applied: Applied | None) -> EndpointUpdate:
    """Plans from hints a rule wrote are labelled `rule`."""
    if update.source in _HINT_PLANS and (
        (applied is not None and applied.own) or row.hint_source == "rule"
    ):
        return _evolve(update, source="rule")
    return update


def _count(acc: _Batch) -> None:
    for mode, n in acc.skipped_by.items():
        overlap_step.count(mode, n, False)
    for mode in acc.queued:
        overlap_step.count(mode, 0, True)


_HINT_PLANS = frozenset({"ai-interval", "ai-oneshot"})


def _with_rules(
    update: EndpointUpdate,
    outcome: RunOutcome | None,
    applied: Applied,
    row: Leased,
    now: datetime,
) -> tuple[EndpointUpdate, RunOutcome | None]:
    """The fired rules recorded on the run; the endpoint's own effects written with the plan
    (hints the governor consumed or found expired stay cleared), unless the same rule's
    effect is already in force (`domain.rules.already_in_force`: a rule that fires on every
    run re-extends its hint once per tenth of its TTL, not on every run)."""
    if outcome is not None:
        outcome = _evolve(outcome, rules_fired=applied.fired)
    if not applied.own:
        return update, outcome
    state = applied.state
    if update.clear_interval:
        state = replace(state, hint_interval_ms=None, hint_interval_expires_at=None)
    if update.clear_oneshot:
        state = replace(state, hint_oneshot_at=None, hint_oneshot_expires_at=None)
    names = [f["name"] for f in applied.fired if "name" in f and "target" not in f]
    reason = f"rule: {names[0]}" if names else "response rule"
    if _stored_as(row, state, reason) and already_in_force(row.state, state, now):
        return update, outcome
    return _evolve(update, rule_state=state, rule_reason=reason), outcome


def _stored_as(row: Leased, state: ScheduleState, reason: str) -> bool:
    """The row's hint labels are what writing `state` for this rule would store."""
    hinted = state.hint_interval_ms is not None or state.hint_oneshot_at is not None
    if hinted:
        return row.hint_source == "rule" and row.hint_reason == reason
    return row.hint_source is None and row.hint_reason is None


_FIELDS: dict[type, tuple[str, ...]] = {}


def _evolve(obj: _T, **changes: Any) -> _T:
    """`dataclasses.replace` without its per-call field introspection: the rules path runs it
    two or three times per run (profiled: a fifth of that path's time)."""
    cls = type(obj)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    return cls(*[changes[n] if n in changes else getattr(obj, n) for n in names])


async def _apply_effects(conn: Any, now: datetime) -> None:
    """Rule effects queued by the batch, applied once it committed (`store.rule_writes`).
    A database refusal leaves them queued for the maintenance loop, never loses runs."""
    try:
        await apply_pending(conn, now)
    except psycopg.Error as exc:
        if is_connection_error(exc):
            raise
        log.warning("rule_effects_failed", error=first_line(exc)[:200])


def _join(first: str | None, second: str) -> str:
    return second if not first else f"{first}; {second}"
