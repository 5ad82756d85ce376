"""What every backup operation needs, built once from settings (or by a test)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cronicorn import __version__
from cronicorn.backup.tools import ToolFinder
from cronicorn.config import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


class Progress(Protocol):
    """Where long operations report: a phase, tables done of total, bytes written."""

    def update(
        self,
        *,
        phase: str | None = None,
        done: int | None = None,
        total: int | None = None,
        size: int | None = None,
    ) -> None: ...


class NullProgress:
    def update(
        self,
        *,
        phase: str | None = None,
        done: int | None = None,
        total: int | None = None,
        size: int | None = None,
    ) -> None:
        return None


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class BackupContext:
    database_url: str  # libpq URL of the Cronicorn database
    backup_dir: Path
    embedded: bool = False
    passphrase: str | None = None
    finder: ToolFinder = field(default_factory=ToolFinder)
    clock: Callable[[], datetime] = utc_now
    s3: S3Config = field(default_factory=S3Config)
    target_url: str | None = None
    app_version: str = __version__
    verify_scratch: str = "auto"  # BACKUP_VERIFY_SCRATCH: auto | server | embedded

    @classmethod
    def from_settings(cls, settings: Settings, database_url: str) -> BackupContext:
        secret = settings.aws_secret_access_key
        passphrase = settings.backup_passphrase
        return cls(
            database_url=database_url,
            backup_dir=settings.backup_dir,
            embedded=settings.embedded,
            passphrase=passphrase.get_secret_value() if passphrase is not None else None,
            finder=ToolFinder(prefer_bundled=settings.embedded),
            s3=S3Config(
                endpoint_url=settings.s3_endpoint_url,
                access_key_id=settings.aws_access_key_id,
                secret_access_key=secret.get_secret_value() if secret is not None else None,
                region=settings.aws_region,
            ),
            target_url=settings.backup_target,
            verify_scratch=settings.backup_verify_scratch,
        )
