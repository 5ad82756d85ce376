"""Off-site copies: a `Target` is a local directory (a mounted share, another disk) or
S3-compatible storage (AWS, MinIO, R2, Backblaze…).

An upload counts only once it is proven: every file is read back from the target and its
size and sha256 compared with the manifest. The manifest goes last, so a remote backup with
a manifest is complete; downloads check every file before anything is used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from cronicorn.backup.context import S3Config
from cronicorn.backup.errors import BackupNotFound, TargetError
from cronicorn.backup.files import CHUNK, Staging, fsync_dir, sha256_file
from cronicorn.backup.loading import require_intact
from cronicorn.backup.manifest import (
    CONFIG_BUNDLE,
    DUMP_FILES,
    MANIFEST,
    Manifest,
    parse_manifest,
    read_manifest,
)
from cronicorn.errors import first_line


class Target(Protocol):
    url: str

    def upload(self, backup: Path, manifest: Manifest) -> str:
        """Copy a backup there and prove the copy; return where it lives."""
        ...

    def names(self) -> list[str]: ...

    def download(self, name: str, dest_root: Path) -> Path:
        """Fetch a backup into `dest_root/name`, checked against its manifest."""
        ...

    def delete(self, name: str) -> None: ...


def open_target(url: str, s3: S3Config) -> Target:
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise TargetError(f"{url}: name a bucket, e.g. s3://my-bucket/cronicorn")
        return S3Target(parts.netloc, parts.path.strip("/"), s3)
    return LocalTarget(Path(url).expanduser())


def _files(manifest: Manifest) -> list[str]:
    return [entry.name for entry in manifest.files]


class LocalTarget:
    """Another directory; written like a local backup (hidden name, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = str(self.root)

    def upload(self, backup: Path, manifest: Manifest) -> str:
        final = self.root / manifest.name
        if final.exists():
            require_intact(final, read_manifest(final))
            return str(final)
        staging = Staging(self.root, manifest.name)
        try:
            for name in [*_files(manifest), MANIFEST]:
                shutil.copyfile(backup / name, staging.path / name)
                with open(staging.path / name, "rb+") as handle:
                    os.fsync(handle.fileno())
            require_intact(staging.path, manifest)
            staging.publish()
        except OSError as exc:
            staging.discard()
            raise TargetError(f"copying {manifest.name} to {self.root} failed: {exc}") from None
        except BaseException:
            staging.discard()
            raise
        return str(final)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST).is_file())

    def download(self, name: str, dest_root: Path) -> Path:
        source = self.root / name
        if not (source / MANIFEST).is_file():
            raise BackupNotFound(f"no backup named {name!r} in {self.root}")
        manifest = read_manifest(source)
        require_intact(source, manifest)
        LocalTarget(dest_root).upload(source, manifest)
        return dest_root / name

    def delete(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)
        fsync_dir(self.root)


class S3Target:
    """`s3://bucket/prefix`: objects `prefix/NAME/FILE`."""

    def __init__(self, bucket: str, prefix: str, config: S3Config) -> None:
        self.bucket, self.prefix = bucket, prefix
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        self._client = _s3_client(config)

    def _key(self, name: str, file: str = "") -> str:
        parts = [p for p in (self.prefix, name, file) if p]
        return "/".join(parts)

    def upload(self, backup: Path, manifest: Manifest) -> str:
        for name in [*_files(manifest), MANIFEST]:
            self._put(backup / name, self._key(manifest.name, name))
        for entry in manifest.files:
            self._prove(self._key(manifest.name, entry.name), entry.size, entry.sha256)
        size, digest = sha256_file(backup / MANIFEST)
        self._prove(self._key(manifest.name, MANIFEST), size, digest)
        return f"s3://{self.bucket}/{self._key(manifest.name)}"

    def _put(self, path: Path, key: str) -> None:
        try:
            self._client.upload_file(str(path), self.bucket, key)
        except Exception as exc:
            raise TargetError(
                f"upload of {path.name} to {self.url} failed: {first_line(exc)}"
            ) from None

    def _prove(self, key: str, size: int, sha256: str) -> None:
        """HEAD for the size, then read the object back and hash it."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
            if int(head["ContentLength"]) != size:
                raise TargetError(
                    f"s3://{self.bucket}/{key} has {head['ContentLength']} bytes, expected {size}"
                )
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            digest = hashlib.sha256()
            for chunk in body.iter_chunks(CHUNK):
                digest.update(chunk)
        except TargetError:
            raise
        except Exception as exc:
            raise TargetError(
                f"checking s3://{self.bucket}/{key} failed: {first_line(exc)}"
            ) from None
        if digest.hexdigest() != sha256:
            raise TargetError(f"s3://{self.bucket}/{key} does not match its sha256 after upload")

    def names(self) -> list[str]:
        prefix = self._key("") + "/" if self.prefix else ""
        found: set[str] = set()
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    rest = str(obj["Key"])[len(prefix) :]
                    name, _, file = rest.partition("/")
                    if file == MANIFEST:
                        found.add(name)
        except Exception as exc:
            raise TargetError(f"listing {self.url} failed: {first_line(exc)}") from None
        return sorted(found)

    def download(self, name: str, dest_root: Path) -> Path:
        key = self._key(name, MANIFEST)
        try:
            raw = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self._client.exceptions.NoSuchKey:
            raise BackupNotFound(f"no backup named {name!r} in {self.url}") from None
        except Exception as exc:
            raise TargetError(f"reading {name} from {self.url} failed: {first_line(exc)}") from None
        manifest = parse_manifest(raw, f"{self.url}/{name}/{MANIFEST}")
        staging = Staging(dest_root, name)
        try:
            for file in _files(manifest):
                target = str(staging.path / file)
                self._client.download_file(self.bucket, self._key(name, file), target)
            (staging.path / MANIFEST).write_bytes(raw)
            require_intact(staging.path, manifest)
            return staging.publish()
        except BaseException:
            staging.discard()
            raise

    def delete(self, name: str) -> None:
        files = [*DUMP_FILES.values(), CONFIG_BUNDLE, MANIFEST]
        keys = [{"Key": self._key(name, file)} for file in files]
        self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})


def _s3_client(config: S3Config) -> Any:
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
    except ImportError:
        raise TargetError(
            "S3 targets need boto3: pip install 'cronicorn[s3]' (or pip install boto3)"
        ) from None
    return boto3.client(
        "s3",
        endpoint_url=config.endpoint_url,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        region_name=config.region,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10),
    )
