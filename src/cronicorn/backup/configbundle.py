"""The operator's configuration (`.env`, `docker-compose.override.yml`) as one encrypted file.

A tar archive in memory, encrypted with BACKUP_PASSPHRASE (see `crypto`). Restoring is an
explicit, separate step that never overwrites an existing file unless told to.
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cronicorn.backup import crypto
from cronicorn.backup.errors import ConfigExists, CorruptBackup

CONFIG_FILES = (".env", "docker-compose.override.yml")
MAX_FILE_BYTES = 16 << 20  # configuration, not data: refuse absurd sizes


def find_config(config_dir: Path) -> list[Path]:
    return [config_dir / name for name in CONFIG_FILES if (config_dir / name).is_file()]


def pack(files: list[Path], passphrase: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size = len(data)
            info.mode = 0o600
            info.mtime = int(path.stat().st_mtime)
            archive.addfile(info, io.BytesIO(data))
    return crypto.encrypt(buffer.getvalue(), passphrase)


def unpack(blob: bytes, passphrase: str) -> dict[str, bytes]:
    """Decrypt and read the bundle: {file name: content}, only names we ever write."""
    plain = crypto.decrypt(blob, passphrase)
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r") as archive:
            for member in archive.getmembers():
                if member.name not in CONFIG_FILES or not member.isfile():
                    raise CorruptBackup(f"unexpected entry {member.name!r} in the config bundle")
                if member.size > MAX_FILE_BYTES:
                    raise CorruptBackup(f"{member.name} in the config bundle is too large")
                handle = archive.extractfile(member)
                out[member.name] = handle.read() if handle is not None else b""
    except tarfile.TarError as exc:
        raise CorruptBackup(f"the configuration bundle is damaged: {exc}") from None
    return out


@dataclass(frozen=True)
class ConfigRestore:
    written: list[Path]
    unchanged: list[Path]


def write_config(files: dict[str, bytes], dest: Path, *, overwrite: bool) -> ConfigRestore:
    """Write the files into `dest` (mode 0600); refuse before writing anything if one exists
    with different content and `overwrite` is false."""
    dest.mkdir(parents=True, exist_ok=True)
    targets = {dest / name: data for name, data in files.items()}
    unchanged = [p for p, d in targets.items() if p.is_file() and p.read_bytes() == d]
    clashes = [p for p in targets if p.exists() and p not in unchanged]
    if clashes and not overwrite:
        names = ", ".join(str(p) for p in clashes)
        raise ConfigExists(f"{names} already exists; pass --overwrite to replace it")
    written = []
    for path, data in targets.items():
        if path in unchanged:
            continue
        tmp = path.with_name(f".{path.name}.restoring")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        written.append(path)
    return ConfigRestore(written=written, unchanged=unchanged)
