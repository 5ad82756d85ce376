"""Secret tokens: generation and the one-way hashes that are all the database ever stores.

Tokens carry 256 bits of randomness, so a plain SHA-256 is enough (no salt, no slow hash):
a leaked `sessions` or `api_keys` table cannot be replayed, and lookup stays one indexed
equality. API keys start with `cron_` so a Bearer value can be told apart from a session
token without a second query, and so secret scanners recognise them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

API_KEY_PREFIX = "cron_"
SHOWN_PREFIX_CHARS = 12  # "cron_" + 7 characters: enough to tell keys apart in a list


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def shown_prefix(key: str) -> str:
    """The part of an API key that lists may show (never enough to use it)."""
    return key[:SHOWN_PREFIX_CHARS]


def is_api_key(value: str) -> bool:
    return value.startswith(API_KEY_PREFIX)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(secret: str, session_token: str) -> str:
    """The CSRF token bound to one session (signed double submit).

    Derived from the session token with the server secret, so a cookie planted by a sibling
    subdomain cannot be paired with a header of the attacker's choosing.
    """
    mac = hmac.new(secret.encode(), b"csrf:" + session_token.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:24]).decode().rstrip("=")


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
