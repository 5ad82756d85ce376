"""Passphrase encryption for the configuration bundle: scrypt, then AES-256-GCM.

Why: `.env` holds AUTH_SECRET and credentials; a backup must never carry it in plaintext.
GCM authenticates as well as encrypts, so a wrong passphrase and an altered file are both
detected (and cannot be told apart, by design). The scrypt cost parameters are stored in the
header so they can be raised later without breaking old backups.

Layout: MAGIC (8) | log2(n) (1) | r (1) | p (1) | salt (16) | nonce (12) | ciphertext+tag.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from cronicorn.backup.errors import CorruptBackup, WrongPassphrase

MAGIC = b"CRNENC1\n"
LOG2_N, R, P = 15, 8, 1  # ~32 MiB and ~0.1 s per derivation: slow to brute force
_HEADER = struct.Struct("!8sBBB16s12s")


def _key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p).derive(passphrase.encode())


def encrypt(data: bytes, passphrase: str) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    header = _HEADER.pack(MAGIC, LOG2_N, R, P, salt, nonce)
    key = _key(passphrase, salt, LOG2_N, R, P)
    return header + AESGCM(key).encrypt(nonce, data, header)


def decrypt(blob: bytes, passphrase: str) -> bytes:
    if len(blob) < _HEADER.size + 16 or not blob.startswith(MAGIC):
        raise CorruptBackup("the configuration bundle is not an encrypted Cronicorn bundle")
    header = blob[: _HEADER.size]
    _, log2_n, r, p, salt, nonce = _HEADER.unpack(header)
    if not (10 <= log2_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
        raise CorruptBackup("the configuration bundle header is damaged")
    key = _key(passphrase, salt, log2_n, r, p)
    try:
        return AESGCM(key).decrypt(nonce, blob[_HEADER.size :], header)
    except InvalidTag:
        raise WrongPassphrase(
            "the configuration bundle does not decrypt: BACKUP_PASSPHRASE is not the one used "
            "for this backup (or the file was altered)"
        ) from None
