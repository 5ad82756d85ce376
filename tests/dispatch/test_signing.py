"""Signing: the HMAC scheme, receiver-side verification, and keys encrypted at rest."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from cronicorn.dispatch.signing import (
    SigningKeyError,
    apply_signature,
    decrypt_signing_key,
    encrypt_signing_key,
    generate_signing_key,
    signature_value,
)
from cronicorn.signing import compute_signature, key_bytes, verify

SECRET = "s" * 48
KEY = bytes(range(32))
OLD = bytes(range(100, 132))
NOW = 1_735_689_600


def test_signature_is_hmac_sha256_over_timestamp_dot_body_with_raw_key() -> None:
    body = b'{"a":1}'
    expected = hmac.new(KEY, b"1735689600." + body, hashlib.sha256).hexdigest()
    assert compute_signature(KEY, NOW, body) == expected
    assert signature_value([KEY], NOW, body) == f"sha256={expected}"


def test_two_keys_during_rotation_newest_first() -> None:
    value = signature_value([KEY, OLD], NOW, b"")
    new_sig, old_sig = value.split(",")
    assert new_sig == "sha256=" + compute_signature(KEY, NOW, b"")
    assert old_sig == "sha256=" + compute_signature(OLD, NOW, b"")
    assert verify(KEY, str(NOW), b"", value, now=NOW)
    assert verify(OLD, str(NOW), b"", value, now=NOW)
    assert not verify(bytes(32), str(NOW), b"", value, now=NOW)


def test_apply_signature_replaces_user_headers_in_any_case() -> None:
    headers = {
        "x-cronicorn-signature": "sha256=forged",
        "X-CRONICORN-TIMESTAMP": "1",
        "Authorization": "Bearer t",
    }
    out = apply_signature(headers, [KEY], b"body", now=NOW)
    assert out == {
        "Authorization": "Bearer t",
        "X-Cronicorn-Signature": "sha256=" + compute_signature(KEY, NOW, b"body"),
        "X-Cronicorn-Timestamp": str(NOW),
    }
    # unsigned: user headers untouched
    assert apply_signature(headers, [], b"body") == headers


def test_verify_accepts_hex_text_raw_bytes_and_hex_bytes() -> None:
    raw, shown, prefix = generate_signing_key()
    assert len(raw) == 32
    assert shown == raw.hex()
    assert prefix == "sk_" + shown[:8]
    sig = signature_value([raw], NOW, b"x")
    assert verify(shown, str(NOW), b"x", sig, now=NOW)
    assert verify(shown.upper(), str(NOW), b"x", sig, now=NOW)
    assert verify(raw, str(NOW), b"x", sig, now=NOW)
    assert verify(shown.encode(), str(NOW), b"x", sig, now=NOW)
    assert key_bytes(f"  {shown}\n") == raw
    # the hex *text* used as the key (the TypeScript original) is not what we sign with
    wrong = "sha256=" + hmac.new(shown.encode(), b"%d.x" % NOW, hashlib.sha256).hexdigest()
    assert not verify(shown, str(NOW), b"x", wrong, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "body", "signature", "now", "ok"),
    [
        (str(NOW), b"x", None, NOW, True),
        (str(NOW), b"x", None, NOW + 300, True),
        (str(NOW), b"x", None, NOW + 301, False),  # stale
        (str(NOW), b"x", None, NOW - 301, False),  # from the future
        (str(NOW), b"y", None, NOW, False),  # body changed
        (str(NOW + 1), b"x", None, NOW, False),  # timestamp changed
        (None, b"x", None, NOW, False),
        ("", b"x", None, NOW, False),
        ("12ab", b"x", None, NOW, False),
        ("-1", b"x", None, NOW, False),
        (str(NOW), b"x", "", NOW, False),
        (str(NOW), b"x", "sha1=abc", NOW, False),
        (str(NOW), b"x", "sha256=", NOW, False),
        (str(NOW), b"x", "garbage", NOW, False),
        (str(NOW), b"x", "sha256=\u00e9\u00e9", NOW, False),
    ],
)
def test_verify_rejections(
    timestamp: str | None, body: bytes, signature: str | None, now: int, ok: bool
) -> None:
    sig = signature if signature is not None else signature_value([KEY], NOW, b"x")
    assert verify(KEY, timestamp, body, sig, now=now) is ok


def test_verify_accepts_any_listed_value_and_tolerates_spacing() -> None:
    good = compute_signature(KEY, NOW, b"x")
    header = f"sha256=deadbeef, SHA256={good.upper()} "
    assert verify(KEY, f" {NOW} ", b"x", header, now=NOW)


def test_verify_uses_the_clock_by_default() -> None:
    import time

    stamp = int(time.time())
    assert verify(KEY, str(stamp), b"", signature_value([KEY], stamp, b""))


def test_keys_round_trip_encrypted_with_a_fresh_nonce() -> None:
    raw, shown, _ = generate_signing_key()
    blob = encrypt_signing_key(raw, SECRET)
    again = encrypt_signing_key(shown, SECRET)  # the hex form is accepted too
    assert blob != again
    assert raw not in blob
    assert blob[0] == 1  # versioned
    assert len(blob) == 1 + 12 + 32 + 16
    assert decrypt_signing_key(blob, SECRET) == raw
    assert decrypt_signing_key(again, SECRET) == raw


def test_decrypt_refuses_wrong_secret_and_tampering() -> None:
    blob = encrypt_signing_key(KEY, SECRET)
    with pytest.raises(SigningKeyError, match="AUTH_SECRET"):
        decrypt_signing_key(blob, "t" * 48)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SigningKeyError):
        decrypt_signing_key(tampered, SECRET)
    with pytest.raises(SigningKeyError, match="format"):
        decrypt_signing_key(b"\x02" + blob[1:], SECRET)
    with pytest.raises(SigningKeyError, match="format"):
        decrypt_signing_key(b"\x01short", SECRET)
