"""The root ASGI app, with one shortcut: a request under a "direct" mount (`/api`) reaches the
mounted app without passing through the root app's framework layers and router.

For such a path those layers only pass the request on: the mounted FastAPI app has its own
error middleware, exception handlers and exit stack, which answer everything first (an
exception it re-raises after answering is re-raised by the root's layers too), and the
mount, added before any other route, is the root router's first and only match. Skipping
them saves a few % of an authenticated `GET /api/jobs`'s CPU (bench/README.md, issue 17). The
root's own middleware (`add_middleware`: request ids, logging, metrics) still wraps the
request, and the scope is exactly the one the mount gives (`Mount.matches`), so neither the
middleware nor the mounted app can tell the difference. Other paths (pages, /mcp, /metrics,
lifespan) take the normal way.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's native OpenTelemetry, off for our apps: nothing here configures OpenTelemetry,
and each app asked for the global providers on every request (~26 us per app, as much as a
middleware layer or two)."""


class RootApp(FastAPI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._direct: list[tuple[str, Mount]] = []
        self._direct_stack: ASGIApp | None = None

    def mount_direct(self, path: str, app: ASGIApp) -> None:
        """`mount(path, app)`, taken directly; only before any other route, so that the
        router would have matched it first anyway."""
        if self.router.routes:
            raise RuntimeError("a direct mount must be the root app's first route")
        self.mount(path, app)
        mount = self.router.routes[-1]
        assert isinstance(mount, Mount)
        self._direct.append((path.rstrip("/") + "/", mount))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._is_direct(scope):
            scope["app"] = self
            await self._direct_app()(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _is_direct(self, scope: Scope) -> bool:
        if scope["type"] != "http" or self.root_path or "fastapi.telemetry" in scope:
            return False
        path: str = scope["path"]
        for prefix, mount in self._direct:
            # (the mount's pattern also refuses some paths with the prefix: a newline…)
            if path.startswith(prefix) and mount.matches(scope)[0] is Match.FULL:
                return not self._native_telemetry.enabled()  # (off here: `NO_TELEMETRY`)
        return False

    def _direct_app(self) -> ASGIApp:
        """The root's own middleware around "enter the matched mount" (built once)."""
        if self._direct_stack is None:
            app: ASGIApp = _EnterMount(self)
            for cls, args, kwargs in reversed(self.user_middleware):
                app = cls(app, *args, **kwargs)
            self._direct_stack = app
        return self._direct_stack


class _EnterMount:
    """What the root router does when a mount matches: the mount's child scope, then its app
    (the root sets no form limits and records no route for a mount)."""

    def __init__(self, root: RootApp) -> None:
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("router", self.root.router)
        for _, mount in self.root._direct:
            match, child_scope = mount.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                await mount.handle(scope, receive, send)
                return
        await self.root.router(scope, receive, send)  # pragma: no cover - matched before
