"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronicorn.api import metrics
from cronicorn.logs import get_logger
from cronicorn.requestid import accept_or_new, set_request_id

log = get_logger("cronicorn.http")
# structlog runs its processors (time stamp, context merge) before the standard-library level
# check; the request line is skipped up front when INFO is off (LOG_LEVEL=warning).
_level_gate = logging.getLogger("cronicorn.http")


class RequestIdMiddleware:
    """Binds a request id for the whole request, echoes it, logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = accept_or_new(incoming)
        token = set_request_id(request_id)  # on every log line meanwhile (`logs.add_request_id`)
        started = time.perf_counter()
        status = 500
        root_path = scope.get("root_path", "")

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            metrics.observe(method, _route_label(scope, root_path), status, elapsed)
            if _level_gate.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    method=method,
                    path=scope.get("path"),
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            set_request_id(None)
            del token


def _route_label(scope: Scope, root_path: str) -> str:
    """The matched route's template with the prefixes of the apps it is mounted under
    (`/api/jobs/{id}`): the routers record the innermost match and mounts extend
    `root_path` in the shared scope."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return metrics.UNMATCHED
    mounted: str = scope.get("root_path", "")
    return mounted[len(root_path) :] + template
