"""The configuration bundle: encrypted (scrypt + AES-GCM), never written over a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronicorn.backup import configbundle, crypto
from cronicorn.backup.errors import ConfigExists, CorruptBackup, WrongPassphrase

PASS = "correct horse battery staple"


def test_round_trip_and_no_plaintext() -> None:
    blob = crypto.encrypt(b"AUTH_SECRET=very-secret-value", PASS)
    assert b"very-secret-value" not in blob
    assert crypto.decrypt(blob, PASS) == b"AUTH_SECRET=very-secret-value"
    assert crypto.encrypt(b"same", PASS) != crypto.encrypt(b"same", PASS), "fresh salt and nonce"


def test_wrong_passphrase_and_tampering_are_refused() -> None:
    blob = crypto.encrypt(b"data", PASS)
    with pytest.raises(WrongPassphrase, match="BACKUP_PASSPHRASE is not the one used"):
        crypto.decrypt(blob, "another passphrase!")
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    with pytest.raises(WrongPassphrase):
        crypto.decrypt(bytes(flipped), PASS)
    with pytest.raises(CorruptBackup, match="not an encrypted Cronicorn bundle"):
        crypto.decrypt(b"plain text .env", PASS)


def test_bundle_holds_env_and_override(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTH_SECRET=abc\n")
    (tmp_path / "docker-compose.override.yml").write_text("services: {}\n")
    (tmp_path / "other.txt").write_text("not configuration")
    files = configbundle.find_config(tmp_path)
    assert [p.name for p in files] == [".env", "docker-compose.override.yml"]
    blob = configbundle.pack(files, PASS)
    assert configbundle.unpack(blob, PASS) == {
        ".env": b"AUTH_SECRET=abc\n",
        "docker-compose.override.yml": b"services: {}\n",
    }


def test_restoring_never_overwrites_without_permission(tmp_path: Path) -> None:
    dest = tmp_path / "new-machine"
    dest.mkdir()
    (dest / ".env").write_text("AUTH_SECRET=local-edit\n")
    files = {".env": b"AUTH_SECRET=from-backup\n", "docker-compose.override.yml": b"x: 1\n"}
    with pytest.raises(ConfigExists, match="--overwrite"):
        configbundle.write_config(files, dest, overwrite=False)
    assert (dest / ".env").read_text() == "AUTH_SECRET=local-edit\n"
    assert not (dest / "docker-compose.override.yml").exists(), "all or nothing"
    done = configbundle.write_config(files, dest, overwrite=True)
    assert sorted(p.name for p in done.written) == [".env", "docker-compose.override.yml"]
    assert (dest / ".env").read_bytes() == files[".env"]
    assert (dest / ".env").stat().st_mode & 0o777 == 0o600
    again = configbundle.write_config(files, dest, overwrite=False)
    assert again.written == [], "identical files are left alone, no --overwrite needed"
