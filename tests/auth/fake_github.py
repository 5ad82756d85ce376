"""A local stand-in for GitHub's OAuth endpoints (aiohttp on 127.0.0.1)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

CLIENT_ID = "gh-client"
CLIENT_SECRET = "gh-secret"


@dataclass
class GitHubUser:
    id: int
    login: str
    emails: list[dict[str, Any]]
    name: str | None = None


@dataclass
class FakeGitHub:
    base: str = ""
    next_user: GitHubUser | None = None
    codes: dict[str, GitHubUser] = field(default_factory=dict)
    tokens: dict[str, GitHubUser] = field(default_factory=dict)

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        assert query["client_id"] == CLIENT_ID
        assert self.next_user is not None
        code = secrets.token_hex(8)
        self.codes[code] = self.next_user
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        raise web.HTTPFound(target)

    async def access_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "incorrect_client_credentials"})
        user = self.codes.pop(str(form.get("code")), None)
        if user is None:
            return web.json_response({"error": "bad_verification_code"})
        token = secrets.token_hex(16)
        self.tokens[token] = user
        return web.json_response({"access_token": token, "token_type": "bearer", "scope": "x"})

    def _user(self, request: web.Request) -> GitHubUser:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            raise web.HTTPUnauthorized()
        return self.tokens[token]

    async def user(self, request: web.Request) -> web.Response:
        user = self._user(request)
        return web.json_response(
            {"id": user.id, "login": user.login, "name": user.name, "email": None}
        )

    async def emails(self, request: web.Request) -> web.Response:
        return web.json_response(self._user(request).emails)


@asynccontextmanager
async def fake_github() -> AsyncIterator[FakeGitHub]:
    fake = FakeGitHub()
    app = web.Application()
    app.router.add_get("/login/oauth/authorize", fake.authorize)
    app.router.add_post("/login/oauth/access_token", fake.access_token)
    app.router.add_get("/user", fake.user)
    app.router.add_get("/user/emails", fake.emails)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
