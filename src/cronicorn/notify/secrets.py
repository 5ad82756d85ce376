"""Channel URLs at rest: they hold tokens and passwords, so they are stored encrypted like
signing keys (AES-256-GCM under a key derived from AUTH_SECRET with HKDF-SHA256, its own
`info` so the two key uses never share a key). Blob: b"\\x01" + nonce(12) + ciphertext+tag."""

from __future__ import annotations

import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_NONCE = 12
_INFO = b"cronicorn channel urls v1"


class ChannelSecretError(ValueError):
    """A stored channel URL cannot be decrypted (AUTH_SECRET changed, or corrupt)."""


@lru_cache(maxsize=8)
def _aead(auth_secret: str) -> AESGCM:
    if not auth_secret:
        raise ChannelSecretError("AUTH_SECRET is empty; cannot encrypt channel URLs")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        auth_secret.encode("utf-8")
    )
    return AESGCM(key)


def encrypt_url(url: str, auth_secret: str) -> bytes:
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + _aead(auth_secret).encrypt(nonce, url.encode("utf-8"), _VERSION)


def decrypt_url(blob: bytes, auth_secret: str) -> str:
    blob = bytes(blob)
    if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
        raise ChannelSecretError("unknown channel URL format")
    try:
        plain = _aead(auth_secret).decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], _VERSION)
    except InvalidTag:
        raise ChannelSecretError(
            "channel URL cannot be decrypted (was AUTH_SECRET changed?)"
        ) from None
    return plain.decode("utf-8")
