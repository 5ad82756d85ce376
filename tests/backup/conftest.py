"""Fixtures for the backup tests: a backup context on the per-test database, seeded rows,
and a real S3-compatible server (moto in server mode on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backup.backup_support import seed
from cronicorn.backup.context import BackupContext, S3Config

PASSPHRASE = "correct horse battery staple"
S3_CREDENTIALS = S3Config(access_key_id="testing", secret_access_key="testing", region="us-east-1")


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers this marker; declare it too so `-p no:xdist` runs still collect.
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one worker")


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def ctx(database_url: str, backup_dir: Path) -> BackupContext:
    """External-server rules (PATH first, the wheel's when PATH's pg_dump is too old)."""
    return BackupContext(database_url=database_url, backup_dir=backup_dir, passphrase=PASSPHRASE)


@pytest.fixture
def seeded(database_url: str) -> str:
    seed(database_url)
    return database_url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, request: pytest.FixtureRequest) -> tuple[S3Config, str, Any]:
    """(config, a fresh bucket name, a boto3 client) against the moto server."""
    import uuid

    import boto3

    config = S3Config(
        endpoint_url=s3_endpoint,
        access_key_id=S3_CREDENTIALS.access_key_id,
        secret_access_key=S3_CREDENTIALS.secret_access_key,
        region=S3_CREDENTIALS.region,
    )
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        region_name=config.region,
    )
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return config, bucket, client
