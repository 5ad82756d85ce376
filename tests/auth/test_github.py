"""GitHub sign-in against a local fake GitHub: state check, email matching, allow-list,
sign-up switch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.auth_support import call, cookies_from, make_user
from auth.conftest import ServeFactory
from auth.fake_github import CLIENT_ID, CLIENT_SECRET, FakeGitHub, GitHubUser, fake_github
from cronicorn.store.tables import users

WEB = "http://cron.test"


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with fake_github() as fake:
        yield fake


def _settings(github: FakeGitHub, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_CLIENT_ID": CLIENT_ID,
        "GITHUB_CLIENT_SECRET": CLIENT_SECRET,
        "GITHUB_OAUTH_URL": github.base,
        "GITHUB_API_URL": github.base,
        "WEB_URL": WEB,
        **extra,
    }


def _octo(**overrides: Any) -> GitHubUser:
    values: dict[str, Any] = {
        "id": 583231,
        "login": "octocat",
        "name": "The Octocat",
        "emails": [
            {"email": "old@example.com", "primary": False, "verified": False},
            {"email": "octo@example.com", "primary": True, "verified": True},
        ],
    }
    values.update(overrides)
    return GitHubUser(**values)


async def _sign_in(
    http: aiohttp.ClientSession, base: str, github: FakeGitHub, user: GitHubUser
) -> tuple[str, dict[str, Any]]:
    """Follow the redirects by hand: us → GitHub → our callback. (Location, cookies)."""
    github.next_user = user
    async with http.get(
        f"{base}/api/auth/sign-in/github?redirect=/jobs", allow_redirects=False
    ) as resp:
        assert resp.status == 302
        to_github = resp.headers["Location"]
        state_cookie = cookies_from(resp)["cronicorn_oauth"].value
    assert to_github.startswith(f"{github.base}/login/oauth/authorize?")
    async with http.get(to_github, allow_redirects=False) as resp:
        callback = resp.headers["Location"]
    assert callback.startswith(f"{WEB}/api/auth/callback/github?")
    local = base + callback[len(WEB) :]
    async with http.get(
        local, headers={"Cookie": f"cronicorn_oauth={state_cookie}"}, allow_redirects=False
    ) as resp:
        assert resp.status == 302
        return resp.headers["Location"], cookies_from(resp)


def _error(location: str) -> str:
    assert location.startswith(f"{WEB}/login?"), location
    return parse_qs(urlsplit(location).query)["error"][0]


async def _emails(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(users.c.email))).scalars())


async def test_existing_user_matched_by_verified_email(
    engine: AsyncEngine,
    serve: ServeFactory,
    http: aiohttp.ClientSession,
    github: FakeGitHub,
) -> None:
    await make_user(engine, "octo@example.com")
    async with serve(**_settings(github)) as base:
        _, config = await call(http, "GET", f"{base}/api/auth/config")
        assert config["hasGitHubOAuth"] is True
        location, cookies = await _sign_in(http, base, github, _octo())
        assert location == f"{WEB}/jobs"
        token = cookies["cronicorn_session"].value
        _status, me = await call(
            http,
            "GET",
            f"{base}/api/auth/get-session",
            headers={"Cookie": f"cronicorn_session={token}"},
        )
        assert me["user"]["email"] == "octo@example.com"
        assert me["user"]["githubLinked"] is True
        # linked by GitHub id now: a changed email still signs in
        renamed = _octo(emails=[{"email": "new@example.com", "primary": True, "verified": True}])
        location, _ = await _sign_in(http, base, github, renamed)
        assert location == f"{WEB}/jobs"


async def test_unknown_users_need_signup_or_allow_list(
    engine: AsyncEngine,
    serve: ServeFactory,
    http: aiohttp.ClientSession,
    github: FakeGitHub,
) -> None:
    await make_user(engine, "old@example.com")  # matches only an UNVERIFIED GitHub email
    async with serve(**_settings(github)) as base:
        location, cookies = await _sign_in(http, base, github, _octo())
        assert "No account matches" in _error(location)
        assert "cronicorn_session" not in cookies or not cookies["cronicorn_session"].value
    assert await _emails(engine) == {"old@example.com"}

    async with serve(**_settings(github, GITHUB_ALLOWED_USERS="hubot, OctoCat")) as base:
        location, _ = await _sign_in(http, base, github, _octo())
        assert location == f"{WEB}/jobs"
        stranger = _octo(
            id=1,
            login="mallory",
            emails=[{"email": "old@example.com", "primary": True, "verified": True}],
        )
        location, _ = await _sign_in(http, base, github, stranger)
        assert "not allowed" in _error(location)
    assert await _emails(engine) == {"old@example.com", "octo@example.com"}

    async with serve(**_settings(github, ALLOW_SIGNUP="true")) as base:
        newcomer = _octo(
            id=2,
            login="newbie",
            emails=[{"email": "newbie@example.com", "primary": True, "verified": True}],
        )
        location, _ = await _sign_in(http, base, github, newcomer)
        assert location == f"{WEB}/jobs"
    assert "newbie@example.com" in await _emails(engine)


async def test_state_must_match(
    engine: AsyncEngine, serve: ServeFactory, http: aiohttp.ClientSession, github: FakeGitHub
) -> None:
    await make_user(engine, "octo@example.com")
    async with serve(**_settings(github)) as base:
        github.next_user = _octo()
        async with http.get(f"{base}/api/auth/sign-in/github", allow_redirects=False) as resp:
            state_cookie = cookies_from(resp)["cronicorn_oauth"].value
            to_github = resp.headers["Location"]
        async with http.get(to_github, allow_redirects=False) as resp:
            callback = base + resp.headers["Location"][len(WEB) :]
        query = parse_qs(urlsplit(callback).query)
        forged = f"{base}/api/auth/callback/github?code={query['code'][0]}&state=forged"
        for url, headers in (
            (forged, {"Cookie": f"cronicorn_oauth={state_cookie}"}),
            (callback, {}),  # no state cookie (another browser)
            (callback, {"Cookie": "cronicorn_oauth=tampered.value"}),
        ):
            async with http.get(url, headers=headers, allow_redirects=False) as resp:
                assert resp.status == 302
                assert "state" in _error(resp.headers["Location"]).lower()
                assert not cookies_from(resp).get("cronicorn_session")


async def test_github_routes_absent_without_configuration(
    base: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{base}/api/auth/sign-in/github", allow_redirects=False) as resp:
        assert resp.status == 404
