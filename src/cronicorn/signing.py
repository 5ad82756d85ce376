"""Verify Cronicorn's request signatures (receiver side). Standard library only.

Every request Cronicorn sends for a user with a signing key carries two headers:

    X-Cronicorn-Timestamp: 1735689600
    X-Cronicorn-Signature: sha256=5d41402abc4b2a76b9719d911017c592...

The signature is ``lowercase_hex(HMAC-SHA256(key, b"<timestamp>." + body))`` where

* ``key`` is the 32 raw bytes of your signing key. Cronicorn shows the key once, as 64 hex
  characters; **hex-decode it** (``bytes.fromhex(shown_key)``) to get the HMAC key. (The
  TypeScript Cronicorn used the hex text itself as the key; this one does not.)
* ``<timestamp>`` is the ``X-Cronicorn-Timestamp`` value (Unix seconds, ASCII digits);
* ``body`` is the exact request body bytes as received (empty for requests without a body,
  e.g. GET and HEAD, which are never sent with one). Verify against the raw bytes, before any
  JSON parsing.

After a key rotation the previous key keeps signing for a grace period, and the header then
carries one value per key, newest first, separated by a comma:

    X-Cronicorn-Signature: sha256=<hmac with new key>,sha256=<hmac with old key>

Accept the request if any value matches the key you hold, so you can switch keys at leisure.
Reject timestamps more than a few minutes away from your clock (replay protection).

Python receivers can use `verify`::

    # Flask
    from cronicorn.signing import verify

    @app.post("/hook")
    def hook():
        if not verify(os.environ["CRONICORN_SIGNING_KEY"],
                      request.headers.get("X-Cronicorn-Timestamp"),
                      request.get_data(),
                      request.headers.get("X-Cronicorn-Signature")):
            abort(401)
        ...

    # FastAPI
    @app.post("/hook")
    async def hook(request: Request):
        body = await request.body()
        if not verify(KEY, request.headers.get("x-cronicorn-timestamp"), body,
                      request.headers.get("x-cronicorn-signature")):
            raise HTTPException(401)
        ...

Other languages: ``hmac_sha256(hex_decode(key), timestamp + "." + raw_body)``, lowercase hex,
compared in constant time with each ``sha256=`` value of the header.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "KEY_BYTES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "compute_signature",
    "key_bytes",
    "verify",
]

SIGNATURE_HEADER = "X-Cronicorn-Signature"
TIMESTAMP_HEADER = "X-Cronicorn-Timestamp"
KEY_BYTES = 32
_HEX = frozenset("0123456789abcdefABCDEF")


def key_bytes(key: str | bytes) -> bytes:
    """The HMAC key: a `str` is the 64-hex-character key as Cronicorn shows it (hex-decoded);
    `bytes` are the raw 32-byte key (64 bytes of ASCII hex are also accepted and decoded)."""
    if isinstance(key, str):
        text = key.strip()
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ValueError("signing key must be the 64 hex characters Cronicorn shows") from None
    if len(key) == 2 * KEY_BYTES and all(chr(b) in _HEX for b in key):
        return bytes.fromhex(key.decode("ascii"))
    return bytes(key)


def compute_signature(key: bytes, timestamp: int | str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``b"<timestamp>." + body`` under the raw `key`."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify(
    key: str | bytes,
    timestamp_header: str | None,
    body: bytes,
    signature_header: str | None,
    *,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True when `signature_header` holds a valid ``sha256=`` signature of `body` for
    `timestamp_header` under `key`, and the timestamp is within `tolerance_s` seconds of `now`
    (default: the current time) in either direction. Missing or malformed headers give False;
    comparison is constant-time; any of several comma-separated values may match. A `str`
    key that is not hex raises `ValueError` (a configuration error, not a bad request)."""
    if not timestamp_header or not signature_header:
        return False
    stamp = timestamp_header.strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance_s:
        return False
    expected = compute_signature(key_bytes(key), stamp, body).encode("ascii")
    matched = False
    for part in signature_header.split(","):
        scheme, sep, value = part.strip().partition("=")
        if sep != "=" or scheme.strip().lower() != "sha256":
            continue
        candidate = value.strip().lower().encode("ascii", "replace")
        # No early exit: the time taken does not depend on which value matched.
        matched |= hmac.compare_digest(candidate, expected)
    return matched
