"""Backups against a managed-like server: TLS only (verify-full), SCRAM, an owner role that
may not create databases, CONNECT on template1/postgres revoked; and the same with the
database named `postgres` (Supabase). Everything runs as the application role."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from backup.backup_support import counts, scalar
from cronicorn.backup.context import BackupContext
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import BackupError, RestoreFailed
from cronicorn.backup.files import sha256_file
from cronicorn.backup.layout import scan
from cronicorn.backup.manifest import FileEntry, read_manifest, write_manifest
from cronicorn.backup.prune import prune
from cronicorn.backup.restore import pending_restore, restore_backup, safety_backups
from cronicorn.backup.retention import Policy
from cronicorn.backup.scheduled import BackupHealth, ScheduleConfig, run_slot
from cronicorn.backup.verify import verify_backup
from cronicorn.store.db import make_async_engine
from managed.managed_server import APP_PASSWORD, ManagedServer
from support import CLI, cli_env, run_cli, start_cli, wait_sync

# xdist groups: one per server (conftest.SCENARIOS). Each test makes, verifies and restores
# real backups (several pg_dump/psql runs, an embedded scratch server, CLI processes): on a
# busy 2-core machine one takes well over the default 120 s, the first also starting the server.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]

TABLES = ("users", "jobs", "endpoints", "runs")


def _ctx(server: ManagedServer, backup_dir: Path) -> BackupContext:
    return BackupContext(database_url=server.url(), backup_dir=backup_dir)


def _database_oid(server: ManagedServer) -> Any:
    return scalar(server.url(), "SELECT oid FROM pg_database WHERE datname = current_database()")


def _diverge(url: str, tag: str) -> dict[str, int]:
    """Make the live data differ from the backup; return the new counts."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO jobs (id, user_id, name) VALUES (%s, 'u-seed', 'added later')", (tag,)
        )
    return counts(url, *TABLES)


def test_create_verify_and_restore_in_place(server: ManagedServer, backup_dir: Path) -> None:
    ctx = _ctx(server, backup_dir)
    backed_up = counts(server.url(), *TABLES)
    created = create_backup(ctx)
    assert created.manifest.row_counts["runs"] == backed_up["runs"]

    on_server = verify_backup(ctx, created.name, scratch="server")
    assert not on_server.ok
    failed = " ".join(c.detail for c in on_server.checks if c.ok is False)
    assert "CREATEDB" in failed
    assert "--scratch embedded" in failed
    report = verify_backup(ctx, created.name)  # auto: no CREATEDB, so embedded
    assert report.scratch == "embedded"
    assert report.ok, report.checks
    assert "auth.users" not in created.manifest.row_counts, "the provider's schemas stay out"

    oid = _database_oid(server)
    changed = _diverge(server.url(), "late-1")
    done = restore_backup(ctx, created.name)
    assert done.ok
    assert counts(server.url(), *TABLES) == backed_up
    assert _database_oid(server) == oid, "the same database, emptied and refilled in place"
    assert done.safety_backup is not None
    restore_backup(ctx, done.safety_backup)
    assert counts(server.url(), *TABLES) == changed, "the safety backup holds what was there"
    if server.database == "postgres":
        assert scalar(server.url(), "SELECT count(*) FROM auth.users") == 1, "left alone"
    _drop_late_jobs(server.url())


def _drop_late_jobs(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM jobs WHERE id LIKE 'late-%'")


class _StopAt:
    """A progress sink that stops the restore when it reaches `phase` (as a kill would)."""

    def __init__(self, phase: str) -> None:
        self.phase = phase

    def update(self, *, phase: str | None = None, **_: object) -> None:
        if phase is not None and phase.startswith(self.phase):
            raise KeyboardInterrupt


PHASES = (
    "safety backup",
    "loading",
    "checking row counts",
    "applying migrations",
    "indexing local backups",
)


def test_stopped_at_any_step_the_database_holds_old_or_restored_data(
    server: ManagedServer, backup_dir: Path
) -> None:
    ctx = _ctx(server, backup_dir)
    backed_up = counts(server.url(), *TABLES)
    created = create_backup(ctx)
    for n, phase in enumerate(PHASES):
        old = _diverge(server.url(), f"late-{phase[:4]}-{n}")
        with pytest.raises((RestoreFailed, KeyboardInterrupt)):
            restore_backup(ctx, created.name, progress=_StopAt(phase))
        now = counts(server.url(), *TABLES)
        assert now in (old, backed_up), (phase, now)
        if phase in ("safety backup", "loading"):
            assert now == old, f"stopped before the load committed ({phase}): old data"
        else:
            assert now == backed_up, f"stopped after the load committed ({phase}): restored"
        _drop_late_jobs(server.url())


def _bad_dump(ctx: BackupContext, name: str) -> str:
    """A sealed plain backup whose SQL fails at its very end (after every table loaded)."""
    made = create_backup(ctx, CreateOptions(fmt="sql-gz"))
    dump = made.path / "db.sql.gz"
    dump.write_bytes(gzip.compress(gzip.decompress(dump.read_bytes()) + b"\nSELECT 1/0;\n"))
    size, digest = sha256_file(dump)
    manifest = read_manifest(made.path)
    files = [FileEntry(name=dump.name, size=size, sha256=digest)]
    write_manifest(made.path, manifest.model_copy(update={"files": files}).sealed())
    return made.name


def test_a_bad_dump_leaves_the_old_data_and_every_safety_backup_stays_pinned(
    server: ManagedServer, backup_dir: Path
) -> None:
    ctx = _ctx(server, backup_dir)
    bad = _bad_dump(ctx, "bad")
    old = _diverge(server.url(), "late-bad")
    for _attempt in range(2):
        with pytest.raises(RestoreFailed, match="division by zero") as caught:
            restore_backup(ctx, bad)
        assert "never a mix" in str(caught.value)
        assert counts(server.url(), *TABLES) == old
    pinned = safety_backups(pending_restore(backup_dir))
    assert len(pinned) == 2, "the retry added its safety backup; the first is still listed"
    pruned = prune(replace(ctx, clock=lambda: datetime.now(UTC)), Policy(0, 0, 0))
    left = {e.name for e in scan(backup_dir)}
    assert set(pinned) <= left, pruned.plan
    _drop_late_jobs(server.url())


def test_missing_privileges_are_found_before_anything_is_touched(
    server: ManagedServer, backup_dir: Path
) -> None:
    ctx = _ctx(server, backup_dir)
    created = create_backup(ctx)
    server.admin("CREATE TABLE public.admin_owned (x int)", database=server.database)
    try:
        old = _diverge(server.url(), "late-priv")
        with pytest.raises(BackupError, match=r"ownership of admin_owned.*nothing was changed"):
            restore_backup(ctx, created.name)
        assert counts(server.url(), *TABLES) == old
        assert [e.name for e in scan(backup_dir)] == [created.name], "no safety backup either"
        assert pending_restore(backup_dir) is None
    finally:
        server.admin("DROP TABLE public.admin_owned", database=server.database)
        _drop_late_jobs(server.url())


def test_a_scheduled_backup_is_made_and_verified(
    server: ManagedServer, backup_dir: Path, tmp_path: Path
) -> None:
    ctx = _ctx(server, backup_dir)
    cfg = ScheduleConfig(
        schedule="0 2 * * *", verify=True, policy=Policy(), target=None, config_dir=tmp_path
    )
    slot = datetime(2031, 1, 2, 2, 0, tzinfo=UTC)
    _forget_slots(server.url())
    outcome = run_slot(replace(ctx, clock=lambda: slot), cfg, slot)
    assert outcome.status == "done", outcome.detail
    assert "verified (embedded scratch)" in outcome.detail


def test_a_killed_restore_leaves_the_old_data_and_no_password_in_sight(
    server: ManagedServer, backup_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(DATABASE_URL=server.url(), BACKUP_DIR=str(backup_dir), AUTH_SECRET="k" * 40)
    create_backup(_ctx(server, backup_dir))  # the CLI's create is checked below (verify scratch)
    old = _diverge(server.url(), "late-kill")
    with psycopg.connect(server.url()) as blocker:
        blocker.execute("LOCK TABLE runs IN ACCESS SHARE MODE")
        name = scan(backup_dir)[0].name
        restore = start_cli("backup", "restore", name, env=env, cwd=tmp_path)
        wait_sync(lambda: _load_waits(server.url()), timeout=120, what="the load to wait")
        for pid in _group(restore.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert APP_PASSWORD.encode() not in cmdline, "the password is never in argv"
        os.killpg(restore.pid, signal.SIGKILL)
        restore.wait()
        blocker.rollback()
    assert counts(server.url(), *TABLES) == old, "killed mid-load: rolled back"
    listed = run_cli("backup", "list", env=env, cwd=tmp_path)
    assert "did not finish" in " ".join(listed.stderr.split())
    assert APP_PASSWORD not in listed.stderr + listed.stdout
    _drop_late_jobs(server.url())


def _load_waits(url: str) -> bool:
    row = scalar(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cronicorn-restore' "
        "AND wait_event_type = 'Lock'",
    )
    return bool(row)


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids


def test_the_seed_pages_manual_procedure(server: ManagedServer, tmp_path: Path) -> None:
    """docs/self-hosting/managed-postgres.md: pg_dump of schema public | gzip, then one psql
    transaction that drops schema public and loads the dump (no DROP DATABASE, no CREATEDB;
    Supabase's own schemas in the same database are neither dumped nor touched)."""
    env = cli_env(DATABASE_URL=server.url(), AUTH_SECRET="k" * 40)
    env["PATH"] = f"{Path(CLI).parent}:{env['PATH']}"
    expected = counts(server.url(), *TABLES)
    dump = tmp_path / "cronicorn-backup.sql.gz"
    _shell(f'pg_dump "$(cronicorn db url)" -n public --no-owner --no-acl | gzip > {dump}', env)
    _diverge(server.url(), "late-seed")
    _shell(
        "( echo 'BEGIN; DROP SCHEMA public CASCADE;'; "
        f"gunzip -c {dump}; echo 'COMMIT;' ) | psql \"$(cronicorn db url)\" -v ON_ERROR_STOP=1 -q",
        env,
    )
    assert counts(server.url(), *TABLES) == expected
    if server.database == "postgres":
        assert scalar(server.url(), "SELECT count(*) FROM auth.users") == 1, "left alone"
    migrated = run_cli("migrate", env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "No pending migrations" in migrated.stdout


def _shell(script: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ERROR" not in done.stderr, done.stderr


async def test_a_failed_scheduled_verification_is_a_failure_with_a_reason(
    server: ManagedServer, backup_dir: Path, tmp_path: Path
) -> None:
    """BACKUP_VERIFY_SCRATCH=server without CREATEDB: the run fails (the role logs it as an
    error and counts it as `failed`) and health says which backup and why."""
    ctx = replace(_ctx(server, backup_dir), verify_scratch="server")
    cfg = ScheduleConfig(
        schedule="0 2 * * *", verify=True, policy=Policy(), target=None, config_dir=tmp_path
    )
    slot = datetime(2032, 3, 4, 2, 0, tzinfo=UTC)
    _forget_slots(server.url())
    outcome = run_slot(replace(ctx, clock=lambda: slot), cfg, slot)
    assert outcome.status == "failed"
    assert "verification failed" in outcome.detail
    assert "CREATEDB" in outcome.detail
    engine = make_async_engine(server.url(), pool_size=1, max_overflow=0)
    try:
        body = await BackupHealth(engine, cfg, replace(ctx, clock=lambda: slot)).probe()
    finally:
        await engine.dispose()
    assert body["status"] == "warning"
    rows = scalar(
        server.url(),
        "SELECT json_agg(json_build_array(name, created_at, verify_ok, location)) FROM backups",
    )
    assert "verifyFailed" in body, (body, rows, outcome)
    assert body["verifyFailed"]["name"] == outcome.name
    assert "CREATEDB" in body["verifyFailed"]["reason"]


def _forget_slots(url: str) -> None:
    """The module shares one database: each scheduled test starts with no slot taken."""
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM settings WHERE key = 'backup.last_scheduled_slot'")


def test_the_cli_honours_backup_verify_scratch(
    server: ManagedServer, backup_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(DATABASE_URL=server.url(), BACKUP_DIR=str(backup_dir), AUTH_SECRET="k" * 40)
    made = run_cli("backup", "create", "--no-config", "--json", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    name = scan(backup_dir)[0].name
    auto = run_cli("backup", "verify", name, "--json", env=env, cwd=tmp_path, timeout=180)
    assert auto.returncode == 0, auto.stdout + auto.stderr
    assert '"scratch": "embedded"' in auto.stdout, "auto without CREATEDB: embedded"
    forced = {**env, "BACKUP_VERIFY_SCRATCH": "server"}
    refused = run_cli("backup", "verify", name, env=forced, cwd=tmp_path)
    assert refused.returncode == 1
    assert "(scratch: server)" in refused.stdout
    assert "CREATEDB" in refused.stdout
    for output in (made, auto, refused):
        for secret in (APP_PASSWORD, quote(APP_PASSWORD, safe="")):
            assert secret not in output.stdout + output.stderr
