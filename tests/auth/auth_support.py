"""Helpers for the accounts tests: a browser-like session, a movable clock, users."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.auth import service

PASSWORD = "correct horse battery"
T0 = datetime(2025, 3, 10, 12, 0, 10, tzinfo=UTC)


@dataclass
class Clock:
    """A clock the test moves by hand (installed with `set_clock`)."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def make_user(
    engine: AsyncEngine, email: str, *, password: str | None = PASSWORD, admin: bool = False
) -> str:
    async with engine.begin() as conn:
        user = await service.create_user(conn, email=email, password=password, is_admin=admin)
    return user.id


def cookies_from(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """Set-Cookie headers of a response as {name: morsel}."""
    jar: SimpleCookie = SimpleCookie()
    for value in resp.headers.getall("Set-Cookie", []):
        jar.load(value)
    return dict(jar)


def raw_set_cookies(resp: aiohttp.ClientResponse) -> list[str]:
    return list(resp.headers.getall("Set-Cookie", []))


@dataclass
class Browser:
    """A signed-in browser: sends the session cookie, and the CSRF header unless told not to."""

    base: str
    http: aiohttp.ClientSession
    token: str
    csrf: str
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self, *, csrf: bool = True) -> dict[str, str]:
        out = {"Cookie": f"cronicorn_session={self.token}; cronicorn_csrf={self.csrf}"}
        if csrf:
            out["X-CSRF-Token"] = self.csrf
        return {**out, **self.extra}

    async def call(
        self, method: str, path: str, body: Any = None, *, csrf: bool = True
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": self.headers(csrf=csrf)}
        if body is not None:
            kwargs["json"] = body
        async with self.http.request(method, f"{self.base}/api{path}", **kwargs) as resp:
            return resp.status, await _body(resp)


async def _body(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    if resp.content_type == "application/json" and text:
        return await resp.json()
    return text


async def sign_in(
    http: aiohttp.ClientSession, base: str, email: str, password: str = PASSWORD
) -> Browser:
    async with http.post(
        f"{base}/api/auth/sign-in/email", json={"email": email, "password": password}
    ) as resp:
        assert resp.status == 200, await resp.text()
        cookies = cookies_from(resp)
        body = await resp.json()
    assert body["csrfToken"] == cookies["cronicorn_csrf"].value
    return Browser(base, http, cookies["cronicorn_session"].value, body["csrfToken"])


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    async with http.request(method, url, headers=headers or {}, **kwargs) as resp:
        return resp.status, await _body(resp)
