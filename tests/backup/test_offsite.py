"""Off-site copies against a real S3-compatible server (moto in server mode) and a directory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backup.backup_support import counts, manifest_json, scalar
from cronicorn.backup.context import BackupContext, S3Config
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import CorruptBackup, TargetError
from cronicorn.backup.offsite import fetch, remote_names, ship
from cronicorn.backup.restore import RestoreOptions, restore_backup

S3 = tuple[S3Config, str, Any]


def test_upload_is_proven_then_recorded_and_a_new_machine_restores_it(
    seeded: str, ctx: BackupContext, s3: S3, tmp_path: Path
) -> None:
    config, bucket, client = s3
    ctx = replace(ctx, s3=config)
    (tmp_path / ".env").write_text("AUTH_SECRET=kept-offsite\n")
    created = create_backup(ctx, CreateOptions(config_dir=tmp_path))
    url = f"s3://{bucket}/prod/cronicorn"
    shipped = ship(ctx, created.path, url)
    assert shipped.offsite is not None
    assert shipped.offsite.verified
    assert shipped.offsite.url == f"{url}/{created.name}"
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        f"prod/cronicorn/{created.name}/{f}" for f in ("config.enc", "db.dump", "manifest.json")
    ]
    assert manifest_json(created.path)["offsite"]["url"] == shipped.offsite.url
    assert scalar(seeded, "SELECT offsite_url FROM backups WHERE name = %s", created.name)
    assert remote_names(ctx, url) == [created.name]

    other_machine = replace(ctx, backup_dir=tmp_path / "elsewhere")
    path = fetch(other_machine, created.name, url)
    assert path == other_machine.backup_dir / created.name
    before = counts(seeded)
    restore_backup(other_machine, created.name, RestoreOptions(safety_backup=False))
    assert counts(seeded) == before


def test_a_tampered_remote_copy_is_refused_on_download(
    seeded: str, ctx: BackupContext, s3: S3, tmp_path: Path
) -> None:
    config, bucket, client = s3
    ctx = replace(ctx, s3=config)
    created = create_backup(ctx)
    ship(ctx, created.path, f"s3://{bucket}")
    key = f"{created.name}/db.dump"
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[-10] ^= 0xFF
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    target = tmp_path / "restore-here"
    with pytest.raises(CorruptBackup, match=r"file db\.dump: sha256 differs"):
        fetch(replace(ctx, backup_dir=target), created.name, f"s3://{bucket}")
    assert not (target / created.name).exists(), "nothing half-downloaded looks like a backup"


def test_unreachable_storage_is_a_clear_error(seeded: str, ctx: BackupContext) -> None:
    created = create_backup(ctx)
    dead = replace(
        ctx,
        s3=S3Config(
            endpoint_url="http://127.0.0.1:9",
            access_key_id="x",
            secret_access_key="y",
            region="us-east-1",
        ),
    )
    with pytest.raises(TargetError, match=r"upload of db.dump to s3://nowhere failed"):
        ship(dead, created.path, "s3://nowhere")
    assert manifest_json(created.path)["offsite"] is None, "not counted as off-site"


def test_a_directory_target(seeded: str, ctx: BackupContext, tmp_path: Path) -> None:
    created = create_backup(ctx, CreateOptions(fmt="sql-gz"))
    share = tmp_path / "nas"
    shipped = ship(ctx, created.path, str(share))
    assert shipped.offsite is not None
    assert (share / created.name / "db.sql.gz").read_bytes() == (
        created.path / "db.sql.gz"
    ).read_bytes()
    assert remote_names(ctx, str(share)) == [created.name]
