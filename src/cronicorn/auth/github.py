"""GitHub sign-in (OAuth web flow), speaking to configurable base URLs so tests and GitHub
Enterprise Server work the same way.

Who may sign in:
* a user already linked to this GitHub account (and enabled);
* otherwise an existing user whose email equals one of the GitHub account's VERIFIED emails
  (the account is then linked);
* otherwise a new user is created, only if the login is on `GITHUB_ALLOWED_USERS` or, with no
  allow-list, when `ALLOW_SIGNUP=true`.
With an allow-list, logins not on it are refused in every case (removing someone from the
list locks them out of GitHub sign-in).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.auth.errors import OAuthError, UserExists
from cronicorn.auth.service import create_user
from cronicorn.config import Settings
from cronicorn.store import users
from cronicorn.store.users import UserRow

STATE_TTL_S = 600
HTTP_TIMEOUT_S = 10.0
SCOPE = "read:user user:email"


@dataclass(frozen=True)
class GitHubAccount:
    id: str
    login: str
    name: str | None
    verified_emails: list[str]  # primary first


def callback_url(settings: Settings) -> str:
    return settings.web_url.rstrip("/") + "/api/auth/callback/github"


def authorize_url(settings: Settings, state: str) -> str:
    query = urlencode(
        {
            "client_id": settings.github_client_id or "",
            "redirect_uri": callback_url(settings),
            "scope": SCOPE,
            "state": state,
            "allow_signup": "false",
        }
    )
    return f"{settings.github_oauth_url.rstrip('/')}/login/oauth/authorize?{query}"


# --- state: a random nonce plus where to go afterwards, signed, kept in a short cookie -------


def new_state() -> str:
    return secrets.token_urlsafe(24)


def pack_state_cookie(secret: str, state: str, redirect: str, now_s: float | None = None) -> str:
    payload = json.dumps({"s": state, "r": redirect, "t": int(now_s or time.time())}).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{_sign(secret, body)}"


def unpack_state_cookie(secret: str, cookie: str, now_s: float | None = None) -> tuple[str, str]:
    """(state, redirect) from a cookie we signed and that is not older than 10 minutes."""
    body, _, mac = cookie.partition(".")
    if not mac or not hmac.compare_digest(mac, _sign(secret, body)):
        raise OAuthError("OAuth state cookie is missing or was tampered with")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if (now_s or time.time()) - int(data["t"]) > STATE_TTL_S:
        raise OAuthError("Sign-in took too long; start again")
    return str(data["s"]), str(data["r"])


def _sign(secret: str, body: str) -> str:
    mac = hmac.new(secret.encode(), b"oauth-state:" + body.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def safe_redirect(value: str | None) -> str:
    """Only same-site paths (`/x`), never `//host` or absolute URLs (open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


# --- talking to GitHub -----------------------------------------------------------------------


async def fetch_account(settings: Settings, code: str) -> GitHubAccount:
    """Exchange the callback's code for a token, then read the user and their emails."""
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        token = await _access_token(http, settings, code)
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "User-Agent": "cronicorn",
        }
        api = settings.github_api_url.rstrip("/")
        profile = await _get_json(http, f"{api}/user", headers)
        emails = await _get_json(http, f"{api}/user/emails", headers)
    if not isinstance(profile, dict) or "id" not in profile or "login" not in profile:
        raise OAuthError("GitHub returned an unexpected user profile")
    verified = [
        str(item["email"])
        for item in sorted(
            (e for e in emails if isinstance(e, dict)) if isinstance(emails, list) else [],
            key=lambda e: not e.get("primary"),
        )
        if item.get("verified") and item.get("email")
    ]
    return GitHubAccount(str(profile["id"]), str(profile["login"]), profile.get("name"), verified)


async def _access_token(http: aiohttp.ClientSession, settings: Settings, code: str) -> str:
    secret = settings.github_client_secret
    form = {
        "client_id": settings.github_client_id or "",
        "client_secret": secret.get_secret_value() if secret else "",
        "code": code,
        "redirect_uri": callback_url(settings),
    }
    url = f"{settings.github_oauth_url.rstrip('/')}/login/oauth/access_token"
    try:
        async with http.post(url, data=form, headers={"Accept": "application/json"}) as resp:
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise OAuthError(f"Could not reach GitHub: {type(exc).__name__}") from None
    if not isinstance(data, dict) or not data.get("access_token"):
        error = data.get("error", "no access token") if isinstance(data, dict) else "bad reply"
        raise OAuthError(f"GitHub refused the sign-in: {error}")
    return str(data["access_token"])


async def _get_json(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    try:
        async with http.get(url, headers=headers) as resp:
            if resp.status != 200:
                raise OAuthError(f"GitHub answered {resp.status} for {url}")
            return await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise OAuthError(f"Could not reach GitHub: {type(exc).__name__}") from None


# --- deciding who signs in --------------------------------------------------------------------


async def resolve_user(
    conn: AsyncConnection, settings: Settings, account: GitHubAccount, now: datetime
) -> UserRow:
    """The user this GitHub account signs in as (linked, matched, or created), or OAuthError."""
    allowed = settings.github_allowed_users
    if allowed and account.login.lower() not in allowed:
        raise OAuthError(f"GitHub user {account.login} is not allowed on this server")
    user = await users.get_by_github_id(conn, account.id)
    if user is None:
        user = await _match_email(conn, account, now)
    if user is None:
        user = await _create(conn, settings, account, now)
    if user.disabled_at is not None:
        raise OAuthError("This account is disabled")
    return user


async def _match_email(
    conn: AsyncConnection, account: GitHubAccount, now: datetime
) -> UserRow | None:
    for email in account.verified_emails:
        user = await users.get_by_email(conn, email)
        if user is not None and user.github_id is None:
            await users.link_github(conn, user.id, account.id, now)
            return user
    return None


async def _create(
    conn: AsyncConnection, settings: Settings, account: GitHubAccount, now: datetime
) -> UserRow:
    if not settings.github_allowed_users and not settings.allow_signup:
        raise OAuthError(
            f"No account matches GitHub user {account.login}; ask an administrator to create "
            "one with your verified GitHub email"
        )
    if not account.verified_emails:
        raise OAuthError("Your GitHub account has no verified email address")
    try:
        user = await create_user(
            conn,
            email=account.verified_emails[0],
            password=None,
            name=account.name or account.login,
        )
    except UserExists:
        raise OAuthError("That email belongs to an account linked to another GitHub user") from None
    await users.link_github(conn, user.id, account.id, now)
    return user


def same_state(expected: str, got: str) -> bool:
    return hmac.compare_digest(expected.encode(), got.encode())
