"""HTTP hardening for the pages: a strict CSP (no inline script or style at all), the usual
security headers, `no-store` for pages, and the hook through which dependencies add headers
(a refreshed session cookie) to whatever response a request gets.

Pure ASGI, like the API's `SecurityMiddleware`: SSE responses stream through untouched.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronicorn.config import Settings

EXTRA_HEADERS = "cronicorn_web_extra_headers"

# Scripts and styles only from our own origin (the vendored files): no 'unsafe-inline', no
# eval. Images: ours and data: (none today). connect-src: htmx requests and the SSE stream.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HSTS = b"max-age=31536000; includeSubDomains"


def page_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-security-policy", PAGE_CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]
    if not settings.is_dev:
        headers.append((b"strict-transport-security", HSTS))
    return headers


def add_response_header(request: Request, name: str, value: str) -> None:
    """Have `PageSecurityMiddleware` add this header to the response of this request."""
    extra = request.scope.get("state", {}).get(EXTRA_HEADERS)
    if extra is not None:
        extra.append((name.lower().encode("latin-1"), value.encode("latin-1")))


class PageSecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = page_headers(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra: list[tuple[bytes, bytes]] = []
        scope.setdefault("state", {})[EXTRA_HEADERS] = extra

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in self.headers if pair[0] not in present)
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                headers.extend(extra)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)
