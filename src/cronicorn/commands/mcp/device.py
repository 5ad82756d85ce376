"""The stdio bridge's sign-in when no API key is set: the device flow (RFC 8628) against the
API, and the token kept in `~/.cronicorn/credentials.json` (mode 0600) in the original's
format `{access_token, refresh_token: "", expires_at: epoch ms}`, so either can read it.

Device tokens are sessions that slide while used; there is no refresh grant. At start the
stored token is checked with `/api/auth/get-session`, which also reports the slid expiry, so
the file's `expires_at` follows the server's; a token that is expired (5 minutes early), revoked
or refused is replaced by approving the device again. Everything is printed on stderr: stdout
is the MCP wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import webbrowser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2

CLIENT_ID = "cronicorn-mcp-server"
SCOPE = "openid profile email"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EXPIRY_MARGIN_MS = 5 * 60 * 1000


class SignInError(Exception):
    """The device flow ended without a token (denied, expired, server refused)."""


@dataclass(frozen=True)
class StoredToken:
    access_token: str
    expires_at: int  # epoch milliseconds

    def usable(self, now_ms: int) -> bool:
        return bool(self.access_token) and self.expires_at - EXPIRY_MARGIN_MS > now_ms


def credentials_path(home: Path) -> Path:
    return home / ".cronicorn" / "credentials.json"


def load(path: Path) -> StoredToken | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    token, expires = data.get("access_token"), data.get("expires_at")
    if not isinstance(token, str) or not isinstance(expires, int | float):
        return None
    return StoredToken(token, int(expires))


def save(path: Path, token: StoredToken) -> None:
    """Write the file 0600 (its directory 0700) before any secret is in it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = {"access_token": token.access_token, "refresh_token": "", "expires_at": token.expires_at}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(body, handle, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def forget(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def now_ms() -> int:
    return int(time.time() * 1000)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def check(http: httpx2.AsyncClient, api: str, token: StoredToken) -> StoredToken | None:
    """The token with the server's current expiry, or None if the server refuses it."""
    response = await http.get(
        f"{api}/api/auth/get-session", headers={"Authorization": f"Bearer {token.access_token}"}
    )
    if response.status_code == 401:
        return None
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        return None
    expires = (body.get("session") or {}).get("expiresAt")
    if not isinstance(expires, str):
        return token
    at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    return StoredToken(token.access_token, int(at.timestamp() * 1000))


Sleep = Callable[[float], Awaitable[None]]


async def device_flow(
    http: httpx2.AsyncClient,
    api: str,
    *,
    open_browser: bool,
    clock: Callable[[], int] = now_ms,
    sleep: Sleep = asyncio.sleep,
) -> StoredToken:
    """Ask for codes, show the user where to approve, poll until approved."""
    response = await http.post(
        f"{api}/api/auth/device/code", json={"client_id": CLIENT_ID, "scope": SCOPE}
    )
    codes = _json(response)
    if response.status_code != 200:
        raise SignInError(f"the server refused the device flow: {_why(codes)}")
    page = str(codes.get("verification_uri_complete") or codes.get("verification_uri"))
    say(f"Cronicorn: approve this device at {page} (code {codes['user_code']})")
    if open_browser:
        with contextlib.suppress(Exception):
            webbrowser.open(page)
    interval = max(1.0, float(codes.get("interval", 5)))
    polls = int(float(codes.get("expires_in", 1800)) // interval) + 1
    for _ in range(polls):
        await sleep(interval)
        poll = await http.post(
            f"{api}/api/auth/device/token",
            json={"grant_type": GRANT, "device_code": codes["device_code"], "client_id": CLIENT_ID},
        )
        body = _json(poll)
        if poll.status_code == 200 and isinstance(body.get("access_token"), str):
            expires_in = int(body.get("expires_in") or 0)
            say("Cronicorn: device approved")
            return StoredToken(body["access_token"], clock() + expires_in * 1000)
        error = body.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        raise SignInError(f"device sign-in failed: {_why(body)}")
    raise SignInError("device sign-in failed: the code expired before it was approved")


async def signed_in(
    http: httpx2.AsyncClient,
    api: str,
    path: Path,
    *,
    open_browser: bool,
    renew: bool = False,
    sleep: Sleep = asyncio.sleep,
) -> str:
    """A usable access token: the stored one (checked), else a new one from the device flow."""
    stored = None if renew else load(path)
    if stored is not None and stored.usable(now_ms()):
        current = await check(http, api, stored)
        if current is not None and current.usable(now_ms()):
            if current != stored:
                save(path, current)
            return current.access_token
    forget(path)
    token = await device_flow(http, api, open_browser=open_browser, sleep=sleep)
    save(path, token)
    return token.access_token


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _why(body: dict[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):  # the API's envelope
        return str(error.get("message"))
    description = body.get("error_description")
    return f"{error}: {description}" if description else str(error or "no answer")
