"""`manifest.json`: what a backup holds and the facts needed to trust it later.

The manifest is sealed: `checksum` is the sha256 of its own canonical JSON (every field but
the annotations `checksum`, `verification` and `offsite`, which verify and upload add later).
A damaged or edited manifest therefore fails before any of its numbers are believed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cronicorn.backup.errors import CorruptBackup
from cronicorn.backup.files import atomic_write

MANIFEST = "manifest.json"
CONFIG_BUNDLE = "config.enc"
FORMAT_VERSION = 1

Format = Literal["custom", "sql-gz"]
Kind = Literal["manual", "scheduled", "safety"]

DUMP_FILES: dict[str, str] = {"custom": "db.dump", "sql-gz": "db.sql.gz"}
_ANNOTATIONS = {"checksum", "verification", "offsite"}


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Check(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    ok: bool | None  # None: skipped (e.g. config without a passphrase)
    detail: str = ""


class Verification(BaseModel):
    model_config = ConfigDict(frozen=True)
    at: datetime
    ok: bool
    scratch: str
    checks: list[Check]


class Offsite(BaseModel):
    model_config = ConfigDict(frozen=True)
    url: str
    at: datetime
    verified: bool


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    format_version: int = FORMAT_VERSION
    name: str
    kind: Kind = "manual"
    created_at: datetime
    app_version: str
    revision: str | None
    server_version: str
    pg_dump_version: str
    database: str
    format: Format
    row_counts: dict[str, int]
    files: list[FileEntry]
    config_files: list[str] = []
    notes: list[str] = []
    checksum: str = ""
    verification: Verification | None = None
    offsite: Offsite | None = None

    @property
    def dump_file(self) -> str:
        return DUMP_FILES[self.format]

    @property
    def size_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def entry(self, name: str) -> FileEntry | None:
        return next((e for e in self.files if e.name == name), None)

    def body_digest(self) -> str:
        body = self.model_dump(mode="json", exclude=_ANNOTATIONS)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def sealed(self) -> Manifest:
        return self.model_copy(update={"checksum": self.body_digest()})

    def to_json(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode()


def parse_manifest(raw: bytes, where: str) -> Manifest:
    """Validate bytes read from disk or a target; any doubt is a CorruptBackup."""
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "document"
        raise CorruptBackup(
            f"{where} is not a valid backup manifest ({field}: {first['msg']}); "
            "the backup is damaged: use another one"
        ) from None
    if manifest.format_version > FORMAT_VERSION:
        raise CorruptBackup(
            f"{where} uses manifest format {manifest.format_version}, newer than this Cronicorn "
            "understands: upgrade cronicorn"
        )
    if manifest.checksum != manifest.body_digest():
        raise CorruptBackup(
            f"{where} was altered after the backup was made (its checksum does not match); "
            "do not trust this backup: use another one"
        )
    return manifest


def read_manifest(backup: Path) -> Manifest:
    path = backup / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptBackup(
            f"{backup.name} has no {MANIFEST}: it is not a complete backup; use another one"
        ) from None
    return parse_manifest(raw, f"{backup.name}/{MANIFEST}")


def write_manifest(backup: Path, manifest: Manifest) -> FileEntry:
    """Write (or replace, for annotations) the manifest atomically."""
    return atomic_write(backup / MANIFEST, manifest.to_json())
