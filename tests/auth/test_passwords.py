"""Changing a password (signed in, current password required) and an operator's reset from
the command line: both sign out the other sessions, and API keys keep working."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.auth_support import PASSWORD, call, make_user, sign_in
from auth.conftest import SECRET
from cronicorn.auth import service
from support import CLI, cli_env, run_cli

NEW = "a brand new passphrase"


async def test_change_password_signs_out_the_other_sessions(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    user_id = await make_user(engine, "pat@example.com")
    async with engine.begin() as conn:
        key, _ = await service.issue_api_key(conn, user_id, name="ci", now=datetime.now(UTC))
    here = await sign_in(http, base, "pat@example.com")
    elsewhere = await sign_in(http, base, "pat@example.com")
    path = "/auth/change-password"

    status, body = await here.call("POST", path, {"currentPassword": "wrong!", "newPassword": NEW})
    assert (status, body["error"]["code"]) == (403, "invalid_credentials")
    status, body = await here.call("POST", path, {"currentPassword": PASSWORD, "newPassword": "x"})
    assert status == 422
    assert body["error"]["details"][0]["path"] == "newPassword"
    status, body = await here.call(
        "POST", path, {"currentPassword": PASSWORD, "newPassword": NEW}, csrf=False
    )
    assert status == 403, "a cookie-authenticated write needs the CSRF header"

    status, body = await here.call("POST", path, {"currentPassword": PASSWORD, "newPassword": NEW})
    assert (status, body) == (200, {"success": True, "revokedSessions": 1})
    assert (await here.call("GET", "/jobs"))[0] == 200, "the calling session stays"
    assert (await elsewhere.call("GET", "/jobs"))[0] == 401
    status, _ = await call(http, "GET", f"{base}/api/jobs", headers={"x-api-key": key})
    assert status == 200, "API keys keep working"
    status, _ = await call(
        http,
        "POST",
        f"{base}/api/auth/sign-in/email",
        json={"email": "pat@example.com", "password": PASSWORD},
    )
    assert status == 401
    await sign_in(http, base, "pat@example.com", NEW)


async def test_an_account_without_a_password_cannot_change_one(
    engine: AsyncEngine, base: str, http: aiohttp.ClientSession
) -> None:
    user_id = await make_user(engine, "gh@example.com", password=None)
    async with engine.begin() as conn:
        key, _ = await service.issue_api_key(conn, user_id, name="ci", now=datetime.now(UTC))
    status, body = await call(
        http,
        "POST",
        f"{base}/api/auth/change-password",
        headers={"x-api-key": key},
        json={"currentPassword": "anything", "newPassword": NEW},
    )
    assert status == 422
    assert body["error"]["details"][0]["path"] == "currentPassword"


@pytest.mark.slow
async def test_operator_resets_a_forgotten_password(
    engine: AsyncEngine, database_url: str, base: str, http: aiohttp.ClientSession
) -> None:
    await make_user(engine, "lost@example.com")
    before = await sign_in(http, base, "lost@example.com")
    env = cli_env(DATABASE_URL=database_url, AUTH_SECRET=SECRET)
    reset = run_cli("users", "set-password", "lost@example.com", env=env)
    assert reset.returncode == 0, reset.stderr
    password = reset.stdout.strip().removeprefix("Password (shown once): ")
    assert len(password) >= 16
    assert "1 session(s) signed out" in reset.stderr
    assert (await before.call("GET", "/jobs"))[0] == 401
    await sign_in(http, base, "lost@example.com", password)

    piped = subprocess.run(
        [CLI, "users", "set-password", "lost@example.com", "--password-stdin"],
        input=NEW + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (piped.returncode, piped.stdout) == (0, "")
    await sign_in(http, base, "lost@example.com", NEW)
    unknown = run_cli("users", "set-password", "nobody@example.com", env=env)
    assert unknown.returncode != 0
    assert len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr
