"""Scheduled backups: the `backups` background role, its health probe and metrics.

Any number of scheduler processes may run this role; exactly one performs each slot. At a
slot every process tries the backup lock (`pg_try_advisory_lock`); the winner records the
slot in the `settings` table (compare-and-set under the lock) before dumping, so a process
that wakes late, after the winner released the lock, finds the slot taken and skips it.
After the dump: verify (BACKUP_VERIFY), ship off-site (BACKUP_TARGET), prune (retention).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.backup import catalog, pg
from cronicorn.backup.context import BackupContext
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import BackupBusy, BackupError
from cronicorn.backup.offsite import ship
from cronicorn.backup.prune import prune
from cronicorn.backup.retention import Policy
from cronicorn.backup.verify import verify_backup
from cronicorn.config import Settings
from cronicorn.domain.cron import next_cron_time
from cronicorn.errors import first_line
from cronicorn.logs import get_logger
from cronicorn.runtime import Runtime
from cronicorn.store import outbox

log = get_logger("cronicorn.backup")

MAX_SLEEP_S = 60.0  # re-read the wall clock at least this often (suspend, clock steps)

LAST_GOOD = Gauge(
    "cronicorn_backup_last_good_timestamp_seconds",
    "Unix time of the newest good backup (verified, or any when BACKUP_VERIFY=false); 0: none",
)
RUNS = Counter(
    "cronicorn_backup_scheduled_runs", "Scheduled backup slots handled here", ["outcome"]
)


@dataclass(frozen=True)
class ScheduleConfig:
    schedule: str
    verify: bool
    policy: Policy
    target: str | None
    config_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings, config_dir: Path | None = None) -> ScheduleConfig:
        return cls(
            schedule=settings.backup_schedule,
            verify=settings.backup_verify,
            policy=Policy(
                daily=settings.backup_keep_daily,
                weekly=settings.backup_keep_weekly,
                monthly=settings.backup_keep_monthly,
            ),
            target=settings.backup_target,
            config_dir=config_dir or Path.cwd(),
        )


@dataclass(frozen=True)
class Outcome:
    slot: datetime
    status: str  # done | skipped | failed
    name: str | None = None
    detail: str = ""


def run_slot(
    ctx: BackupContext, cfg: ScheduleConfig, slot: datetime, cancel: threading.Event | None = None
) -> Outcome:
    """Perform the backup for `slot` unless another process has it or had it."""
    try:
        lock = pg.try_backup_lock(ctx.database_url)
    except BackupBusy:
        return Outcome(slot, "skipped", detail="another process holds the backup lock")
    try:
        if not catalog.claim_scheduled_slot(ctx.database_url, slot):
            return Outcome(slot, "skipped", detail="slot already taken by another process")
        opts = CreateOptions(kind="scheduled", config_dir=cfg.config_dir, require_config=False)
        created = create_backup(ctx, opts, lock=lock, cancel=cancel)
        notes = []
        if cancel is not None and cancel.is_set():
            return Outcome(slot, "done", created.name, "stopping: verify and prune skipped")
        if cfg.verify:
            report = verify_backup(ctx, created.name, scratch=ctx.verify_scratch)
            if not report.ok:
                failed = "; ".join(f"{c.name}: {c.detail}" for c in report.checks if c.ok is False)
                return Outcome(slot, "failed", created.name, f"verification failed: {failed}")
            notes.append(f"verified ({report.scratch} scratch)")
        if cfg.target:
            ship(ctx, created.path, cfg.target)
            notes.append(f"copied to {cfg.target}")
        pruned = prune(ctx, cfg.policy, lock=lock)
        notes.append(f"pruned {len(pruned.deleted)}")
        return Outcome(slot, "done", created.name, ", ".join(notes))
    except BackupError as exc:
        return Outcome(slot, "failed", detail=str(exc))
    finally:
        pg.release_backup_lock(lock)


def schedule_period(schedule: str, now: datetime) -> timedelta | None:
    if not schedule:
        return None
    first = next_cron_time(schedule, "UTC", now)
    return next_cron_time(schedule, "UTC", first) - first


class BackupHealth:
    """The `backups` section of /api/health: age of the last good backup, and a warning
    when it is older than two schedule periods."""

    def __init__(self, engine: AsyncEngine, cfg: ScheduleConfig, ctx: BackupContext) -> None:
        self.engine, self.cfg, self.ctx = engine, cfg, ctx

    async def probe(self) -> dict[str, Any]:
        last = await catalog.last_good(self.engine, verified_only=self.cfg.verify)
        LAST_GOOD.set(last.timestamp() if last else 0)
        now = self.ctx.clock()
        period = schedule_period(self.cfg.schedule, now)
        body: dict[str, Any] = {
            "status": "ok",
            "schedule": self.cfg.schedule or None,
            "lastGoodAt": last.isoformat() if last else None,
            "ageSeconds": round((now - last).total_seconds()) if last else None,
        }
        if last is None:
            body["status"] = "warning" if period else "disabled"
            body["warning"] = "no good backup yet" if period else "scheduled backups are off"
        elif period is not None and now - last > 2 * period:
            body["status"] = "warning"
            body["warning"] = "the last good backup is older than two schedule periods"
        if self.cfg.verify and (failed := await catalog.newest_failed_verification(self.engine)):
            body["status"] = "warning"
            body["verifyFailed"] = failed
            body.setdefault("warning", f"backup {failed['name']} failed verification")
        return body


async def backup_role(runtime: Runtime, stop: asyncio.Event) -> None:
    """Background role: sleep until each slot of BACKUP_SCHEDULE, then run it."""
    ctx = BackupContext.from_settings(runtime.settings, runtime.database_url)
    cfg = ScheduleConfig.from_settings(runtime.settings)
    runtime.health_probes["backups"] = BackupHealth(runtime.engine, cfg, ctx).probe
    if not cfg.schedule:
        await stop.wait()
        return
    after = ctx.clock()
    while not stop.is_set():
        slot = next_cron_time(cfg.schedule, "UTC", after)
        if not await _sleep_until(ctx, slot, stop):
            return
        await handle_slot(runtime.engine, ctx, cfg, slot, stop)
        after = slot


async def handle_slot(
    engine: AsyncEngine,
    ctx: BackupContext,
    cfg: ScheduleConfig,
    slot: datetime,
    stop: asyncio.Event,
) -> Outcome:
    """Run one slot, count and log it; a failure is also a `backup_failed` notification to
    the admins who subscribed (the outbox delivers it like any other event), unless the
    process is stopping (a dump cut short by a shutdown is not news for a pager)."""
    outcome = await _run_in_thread(ctx, cfg, slot, stop)
    RUNS.labels(outcome.status).inc()
    (log.error if outcome.status == "failed" else log.info)(
        "scheduled_backup",
        status=outcome.status,
        slot=slot.isoformat(),
        name=outcome.name,
        detail=outcome.detail,
    )
    if outcome.status == "failed" and not stop.is_set():
        await _notify_failed(engine, outcome, ctx.clock())
    return outcome


async def _notify_failed(engine: AsyncEngine, outcome: Outcome, now: datetime) -> None:
    """One event per slot (several processes reporting one slot add one row per channel);
    a database that cannot take it is logged, never a crash of the role."""
    payload = {
        "slot": outcome.slot.isoformat(),
        "error": outcome.detail[:2000],
        "at": now.isoformat(),
    }
    if outcome.name:
        payload["name"] = outcome.name
    try:
        async with engine.begin() as conn:
            await outbox.enqueue_admin_event(
                conn, "backup_failed", f"backup_failed:{outcome.slot.isoformat()}", payload, now
            )
    except (SQLAlchemyError, OSError) as exc:
        log.warning("backup_failure_not_notified", error=first_line(exc)[:200])


async def _sleep_until(ctx: BackupContext, at: datetime, stop: asyncio.Event) -> bool:
    """False when asked to stop first."""
    while (delay := (at - ctx.clock()).total_seconds()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(delay, MAX_SLEEP_S))
            return False
    return not stop.is_set()


async def _run_in_thread(
    ctx: BackupContext, cfg: ScheduleConfig, slot: datetime, stop: asyncio.Event
) -> Outcome:
    cancel = threading.Event()
    work = asyncio.ensure_future(asyncio.to_thread(run_slot, ctx, cfg, slot, cancel))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            cancel.set()  # pg_dump is terminated; the partial backup is discarded
        return await work
    finally:
        stopping.cancel()
