"""Scheduled backups: exactly one process per slot, verify/ship/prune after, health probe."""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from backup.backup_support import manifest_json
from cronicorn.backup.context import BackupContext
from cronicorn.backup.layout import scan
from cronicorn.backup.retention import Policy
from cronicorn.backup.scheduled import BackupHealth, ScheduleConfig, backup_role, run_slot
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from support import until

SLOT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def _cfg(tmp_path: Path, **changes: object) -> ScheduleConfig:
    base = ScheduleConfig(
        schedule="0 2 * * *",
        verify=False,
        policy=Policy(daily=30, weekly=52, monthly=12),
        target=None,
        config_dir=tmp_path / "no-config-here",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_many_processes_one_slot_one_backup(
    seeded: str, ctx: BackupContext, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: run_slot(ctx, cfg, SLOT), range(4)))
    assert sorted(o.status for o in outcomes) == ["done", "skipped", "skipped", "skipped"]
    [entry] = scan(ctx.backup_dir)
    assert entry.manifest is not None
    assert entry.manifest.kind == "scheduled"
    late = run_slot(ctx, cfg, SLOT)
    assert late.status == "skipped"
    assert late.detail == "slot already taken by another process"
    with psycopg.connect(seeded) as conn:
        value = conn.execute(
            "SELECT value FROM settings WHERE key = 'backup.last_scheduled_slot'"
        ).fetchone()
    assert value == (SLOT.isoformat(),)


def test_a_slot_is_verified_shipped_and_pruned(
    seeded: str, ctx: BackupContext, tmp_path: Path
) -> None:
    share = tmp_path / "offsite"
    cfg = _cfg(
        tmp_path, verify=True, target=str(share), policy=Policy(daily=1, weekly=0, monthly=0)
    )
    # Every clock the slot reads is pinned: the first backup's name and the second's (and
    # prune's "now") must come from one timeline, whatever today's date is.
    first = run_slot(replace(ctx, clock=lambda: SLOT + timedelta(seconds=5)), cfg, SLOT)
    assert first.status == "done", first.detail
    assert "verified" in first.detail
    manifest = manifest_json(ctx.backup_dir / str(first.name))
    assert manifest["verification"]["ok"] is True
    assert manifest["offsite"]["verified"] is True
    assert (share / str(first.name) / "manifest.json").is_file()
    later = replace(ctx, clock=lambda: SLOT + timedelta(days=1, seconds=5))
    second = run_slot(later, cfg, SLOT + timedelta(days=1))
    assert second.status == "done", second.detail
    names = [e.name for e in scan(ctx.backup_dir)]
    assert names == [second.name], "daily=1 keeps only the newest (also the newest verified)"


async def test_health_probe_warns_after_two_missed_periods(
    engine: AsyncEngine, ctx: BackupContext, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path, verify=True)
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    health = BackupHealth(engine, cfg, replace(ctx, clock=lambda: now))
    body = await health.probe()
    assert body["status"] == "warning"
    assert body["warning"] == "no good backup yet"
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO backups (name, location, format, created_at, verify_ok) VALUES "
            "('a', '/x', 'custom', %(t)s, true), ('b', '/x', 'custom', %(u)s, false)",
            {"t": now - timedelta(hours=30), "u": now - timedelta(hours=1)},
        )
    body = await health.probe()
    assert body["ageSeconds"] == 30 * 3600, "the failed verification does not count"
    assert body["status"] == "warning", "the newest backup failed verification: a reason"
    assert body["verifyFailed"]["name"] == "b"
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO backups (name, location, format, created_at, verify_ok) VALUES "
            "('c', '/x', 'custom', %(t)s, true)",
            {"t": now - timedelta(minutes=30)},
        )
    body = await health.probe()
    assert body["status"] == "ok", "a newer backup verified"
    assert "verifyFailed" not in body
    later = BackupHealth(engine, cfg, replace(ctx, clock=lambda: now + timedelta(hours=49)))
    body = await later.probe()
    assert body["status"] == "warning"
    assert "two schedule periods" in body["warning"]
    off = BackupHealth(engine, _cfg(tmp_path, schedule=""), ctx)
    assert (await off.probe())["status"] == "ok", "no schedule: no age warning"


async def test_two_running_roles_take_turns_never_doubling_a_slot(
    seeded: str, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    settings = load_settings(
        DATABASE_URL=seeded,
        AUTH_SECRET="s" * 40,
        BACKUP_SCHEDULE="*/2 * * * * *",  # every two seconds (leading seconds field)
        BACKUP_VERIFY="false",
        BACKUP_DIR=str(tmp_path / "scheduled"),
        BACKUP_TARGET=str(share),  # retention prunes BACKUP_DIR (one a day); the share keeps all
    )
    runtimes = [Runtime.create(settings, seeded, role="scheduler") for _ in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(backup_role(r, stop)) for r in runtimes]
    try:
        await until(lambda: len(scan(share)) >= 3, timeout=60, what="three scheduled backups")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    made = sorted(e.manifest.created_at for e in scan(share) if e.manifest)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(made)]
    assert all(gap >= 1.0 for gap in gaps), f"two backups for one slot: {gaps}"
    body = await runtimes[0].health_probes["backups"]()
    assert body["status"] == "ok"
    assert body["schedule"] == "*/2 * * * * *"
    for runtime in runtimes:
        await runtime.close()
