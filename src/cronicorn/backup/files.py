"""Writing backups so that a crash or a full disk never leaves a half backup that looks whole.

A backup is written into a hidden `.NAME.partial` directory, every file is fsynced, and only
then is the directory renamed to `NAME` (and its parent fsynced). Listing ignores hidden
entries, so an interrupted backup is never offered for restore.

The `Opener` is the file-sink seam: tests inject a writer that fails like a full disk does.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cronicorn.backup.errors import BackupError, DiskFull

if TYPE_CHECKING:
    from cronicorn.backup.manifest import FileEntry

Opener = Callable[[Path], BinaryIO]
CHUNK = 1 << 20


def open_for_write(path: Path) -> BinaryIO:
    """A new file only its owner can read: dumps hold password hashes and run history."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def disk_full(exc: OSError, where: Path) -> BackupError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"disk full while writing the backup in {where}: nothing was kept; free space "
            "there or point BACKUP_DIR (or --to) at a larger disk"
        )
    return BackupError(f"cannot write the backup in {where}: {exc.strerror or exc}")


class HashingWriter:
    """Writes chunks, counting bytes and hashing them on the way; fsyncs on close."""

    def __init__(self, path: Path, opener: Opener = open_for_write) -> None:
        self.path = path
        self._handle = opener(path)
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self._digest.update(chunk)
        self.size += len(chunk)

    def close(self) -> FileEntry:
        from cronicorn.backup.manifest import FileEntry

        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return FileEntry(name=self.path.name, size=self.size, sha256=self._digest.hexdigest())

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()


def atomic_write(path: Path, data: bytes) -> FileEntry:
    """Replace one file atomically (temp name, fsync, rename, fsync the directory)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    writer = HashingWriter(tmp)
    try:
        writer.write(data)
        entry = writer.close()
    except BaseException:
        writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return entry.model_copy(update={"name": path.name})


class Staging:
    """A backup directory being written; `publish` makes it visible, `discard` removes it."""

    def __init__(self, root: Path, name: str, opener: Opener = open_for_write) -> None:
        self.root = root
        self.name = name
        self.path = root / f".{name}.partial"
        self.opener = opener
        root.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(mode=0o700)

    def writer(self, filename: str) -> HashingWriter:
        return HashingWriter(self.path / filename, self.opener)

    def write_bytes(self, filename: str, data: bytes) -> FileEntry:
        writer = self.writer(filename)
        try:
            for start in range(0, len(data), CHUNK):
                writer.write(data[start : start + CHUNK])
            return writer.close()
        except BaseException:
            writer.abort()
            raise

    def publish(self) -> Path:
        final = self.root / self.name
        fsync_dir(self.path)
        if final.exists():
            raise BackupError(f"{final} already exists; not overwriting a backup")
        os.rename(self.path, final)
        fsync_dir(self.root)
        return final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
