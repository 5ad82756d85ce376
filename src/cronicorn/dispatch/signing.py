"""Outbound request signing and signing-key storage.

Signing (see `cronicorn.signing` for the receiver's side): HMAC-SHA256 with the raw 32-byte key
over ``b"<unix-seconds>." + exact body bytes sent`` (empty when no body is sent), as
``X-Cronicorn-Signature: sha256=<hex>`` plus ``X-Cronicorn-Timestamp: <unix-seconds>``. With
several keys (a rotation's grace period) the header holds one value per key in the order given
(newest first): ``sha256=<new>,sha256=<old>``.

Keys at rest: ``encrypt_signing_key`` derives an AES-256-GCM key from AUTH_SECRET with
HKDF-SHA256 (info ``b"cronicorn signing keys v1"``, no salt) and stores
``b"\\x01" + nonce(12) + ciphertext+tag``; the version byte is also the associated data.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cronicorn.signing import (
    KEY_BYTES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    key_bytes,
)

__all__ = [
    "KEY_BYTES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SigningKeyError",
    "apply_signature",
    "decrypt_signing_key",
    "encrypt_signing_key",
    "generate_signing_key",
    "signature_value",
]

_BLOB_VERSION = b"\x01"
_NONCE_BYTES = 12
_HKDF_INFO = b"cronicorn signing keys v1"
_SIGNING_HEADERS = frozenset({SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower()})


class SigningKeyError(ValueError):
    """A stored key blob cannot be decrypted (wrong AUTH_SECRET, corrupt or unknown format)."""


def generate_signing_key() -> tuple[bytes, str, str]:
    """A fresh key: (raw 32 bytes, the 64-hex-character form shown to the user once,
    display prefix ``"sk_" + first 8 hex characters``)."""
    raw = secrets.token_bytes(KEY_BYTES)
    shown = raw.hex()
    return raw, shown, "sk_" + shown[:8]


@lru_cache(maxsize=8)
def _aead(auth_secret: str) -> AESGCM:
    if not auth_secret:
        raise SigningKeyError("AUTH_SECRET is empty; cannot encrypt or decrypt signing keys")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        auth_secret.encode("utf-8")
    )
    return AESGCM(derived)


def encrypt_signing_key(raw: bytes | str, auth_secret: str) -> bytes:
    """Encrypt a raw key (bytes, or the 64-hex-character form) for storage."""
    key = key_bytes(raw)
    nonce = os.urandom(_NONCE_BYTES)
    return _BLOB_VERSION + nonce + _aead(auth_secret).encrypt(nonce, key, _BLOB_VERSION)


def decrypt_signing_key(blob: bytes, auth_secret: str) -> bytes:
    """The raw key from `encrypt_signing_key`'s output; `SigningKeyError` if it cannot be
    decrypted with this AUTH_SECRET."""
    blob = bytes(blob)
    if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _BLOB_VERSION:
        raise SigningKeyError("unknown signing key format")
    nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        return _aead(auth_secret).decrypt(nonce, sealed, _BLOB_VERSION)
    except InvalidTag:
        raise SigningKeyError(
            "signing key cannot be decrypted (was AUTH_SECRET changed?)"
        ) from None


def signature_value(keys: Sequence[bytes], timestamp: int, body: bytes) -> str:
    """The `X-Cronicorn-Signature` value: ``sha256=<hex>`` per key, comma-separated, in the
    order of `keys`."""
    return ",".join(f"sha256={compute_signature(k, timestamp, body)}" for k in keys)


def apply_signature(
    headers: Mapping[str, str],
    keys: Sequence[bytes],
    body: bytes,
    *,
    now: float | None = None,
) -> dict[str, str]:
    """`headers` with the signing headers set (any user header of either name, in any letter
    case, is replaced). With no keys the headers are returned unchanged (as a new dict)."""
    out = {k: v for k, v in headers.items() if not keys or k.lower() not in _SIGNING_HEADERS}
    if keys:
        stamp = int(time.time() if now is None else now)
        out[SIGNATURE_HEADER] = signature_value(keys, stamp, body)
        out[TIMESTAMP_HEADER] = str(stamp)
    return out
