"""Faults: a full disk, a busy lock, tools too old. Nothing partial may look like a backup."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import pytest

from backup.backup_support import scalar, seed
from cronicorn.backup import pg
from cronicorn.backup.context import BackupContext
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import BackupBusy, DiskFull, ToolError
from cronicorn.backup.layout import partials, scan
from cronicorn.backup.restore import pending_restore, restore_backup
from cronicorn.backup.tools import ToolFinder


class _FullDisk:
    """A file that accepts `limit` bytes, then fails like a full disk (ENOSPC)."""

    def __init__(self, path: Path, limit: int) -> None:
        self._file = open(path, "xb")  # noqa: SIM115 - closed by the writer
        self._left = limit

    def write(self, data: bytes) -> int:
        if len(data) > self._left:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._left -= len(data)
        return self._file.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._file, name)


def _nothing_left(ctx: BackupContext, root: Path) -> None:
    assert scan(root) == []
    assert partials(root) == []
    assert list(root.iterdir()) == [] if root.exists() else True
    assert scalar(ctx.database_url, "SELECT count(*) FROM backups") == 0


def test_disk_full_at_the_file_sink_leaves_no_backup(seeded: str, ctx: BackupContext) -> None:
    seed(seeded, runs=5_000, tag="more-")

    def opener(path: Path) -> BinaryIO:
        return _FullDisk(path, limit=64 * 1024)  # type: ignore[return-value]

    with pytest.raises(DiskFull, match="disk full while writing the backup"):
        create_backup(ctx, opener=opener)
    _nothing_left(ctx, ctx.backup_dir)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the file-sink test covers it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_leaves_no_backup(
    seeded: str, ctx: BackupContext, tiny_disk: Path
) -> None:
    noise = " || ".join(["md5(random()::text)"] * 16)  # hex: compresses only about 2:1
    with pg.connect(seeded) as conn:
        conn.execute(
            "INSERT INTO runs (id, endpoint_id, user_id, status, source, started_at, due_at, "
            f"response_text) SELECT 'big-' || g, 'ep-1', 'u-seed', 'success', 'manual', now(), "
            f"now() + g * interval '1 s', {noise} FROM generate_series(1, 8000) g"
        )
    small = replace(ctx, backup_dir=tiny_disk / "backups")
    with pytest.raises(DiskFull):
        create_backup(small, CreateOptions(fmt="sql-gz"))
    _nothing_left(small, small.backup_dir)


def test_two_backups_at_once_the_second_is_refused(seeded: str, ctx: BackupContext) -> None:
    held = pg.try_backup_lock(seeded)
    try:
        with pytest.raises(BackupBusy) as caught:
            create_backup(ctx)
        message = str(caught.value)
        assert "another backup or restore of database" in message
        assert f"cronicorn-backup on {socket.gethostname()} (pid {os.getpid()})" in message
        assert f"pid {held.conn.info.backend_pid}" not in message
    finally:
        pg.release_backup_lock(held)
    assert create_backup(ctx).name, "free again once the first is done"


def test_a_pg_dump_older_than_the_server_is_refused_before_writing(
    seeded: str, ctx: BackupContext, tmp_path: Path
) -> None:
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 16.2'\n")
    fake.chmod(0o755)
    old_tools = replace(ctx, finder=ToolFinder(search_path=str(fake.parent), bundled_dir=None))
    with pytest.raises(ToolError, match=r"pg_dump 16.2 .* older than PostgreSQL 18.*client-18"):
        create_backup(old_tools)
    assert not ctx.backup_dir.exists()


def test_a_full_disk_during_a_restores_safety_backup_leaves_the_data(
    seeded: str, ctx: BackupContext, tiny_disk: Path
) -> None:
    """The safety backup comes before anything is touched: when it cannot be written the
    restore stops there, the database as it was, no marker left behind."""
    created = create_backup(ctx)
    noise = " || ".join(["md5(random()::text)"] * 16)
    with pg.connect(seeded) as conn:
        conn.execute(
            "INSERT INTO runs (id, endpoint_id, user_id, status, source, started_at, due_at, "
            f"response_text) SELECT 'big-' || g, 'ep-1', 'u-seed', 'success', 'manual', now(), "
            f"now() + g * interval '1 s', {noise} FROM generate_series(1, 8000) g"
        )
    before = scalar(seeded, "SELECT count(*) FROM runs")
    small = replace(ctx, backup_dir=tiny_disk / "backups")
    with pytest.raises(DiskFull):
        restore_backup(small, str(created.path))
    assert scalar(seeded, "SELECT count(*) FROM runs") == before
    assert pending_restore(small.backup_dir) is None
    assert partials(small.backup_dir) == []
