"""Backup directory layout: names, finding one backup, listing them all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cronicorn.backup.errors import BackupNotFound, CorruptBackup
from cronicorn.backup.manifest import Manifest, read_manifest

PREFIX = "cronicorn-"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def backup_name(at: datetime) -> str:
    return f"{PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def free_name(root: Path, at: datetime) -> str:
    """The name for a backup made at `at`, suffixed -2, -3… if that second is taken."""
    base = backup_name(at)
    name, n = base, 1
    while (root / name).exists() or (root / f".{name}.partial").exists():
        n += 1
        name = f"{base}-{n}"
    return name


def locate(root: Path, name: str) -> Path:
    """A backup by name in `root`, or by path (`./somewhere/cronicorn-…`)."""
    path = Path(name).expanduser() if ("/" in name or name in {".", ".."}) else root / name
    if not path.is_dir():
        raise BackupNotFound(
            f"no backup named {name!r} in {root}; `cronicorn backup list` shows those there"
        )
    return path


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    manifest: Manifest | None
    problem: str | None = None


def scan(root: Path) -> list[Entry]:
    """Complete backups (hidden `.partial` directories are not), newest first; a damaged
    one is listed with its problem so an operator sees it rather than missing it."""
    if not root.is_dir():
        return []
    entries = []
    for path in root.iterdir():
        if not path.is_dir() or not path.name.startswith(PREFIX):
            continue
        try:
            entries.append(Entry(path.name, path, read_manifest(path)))
        except CorruptBackup as exc:
            entries.append(Entry(path.name, path, None, str(exc)))
    epoch = datetime.min.replace(tzinfo=UTC)
    entries.sort(key=lambda e: (e.manifest.created_at if e.manifest else epoch, e.name))
    return entries[::-1]


def partials(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.name.startswith(".") and p.name.endswith(".partial")
    )
