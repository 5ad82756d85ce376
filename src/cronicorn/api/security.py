"""HTTP hardening for the API: security headers, CORS for WEB_URL, a request-body cap, and
the hook through which dependencies add response headers (rate-limit counters, refreshed
cookies) whatever response the route returns.

Pure ASGI (no BaseHTTPMiddleware): the body cap must see the raw `receive` stream, and the
hot path should not pay for an extra task per request.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronicorn.config import Settings
from cronicorn.requestid import current_request_id

EXTRA_HEADERS = "cronicorn_extra_headers"

JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"
RATE_HEADERS = ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"]
CORS_ALLOW_HEADERS = ["x-api-key", "authorization", "content-type", "x-csrf-token", "x-request-id"]
CORS_EXPOSE_HEADERS = ["x-request-id", *RATE_HEADERS]


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if not settings.is_dev:
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


def add_response_header(request: Request, name: str, value: str) -> None:
    """Have `SecurityMiddleware` add this header to whatever response this request gets."""
    extra = request.scope.get("state", {}).get(EXTRA_HEADERS)
    if extra is not None:
        extra.append((name.lower().encode("latin-1"), value.encode("latin-1")))


class BodyTooLarge(Exception):
    pass


class SecurityMiddleware:
    """Security headers, extra headers from dependencies, and the body-size cap."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.headers = security_headers(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra: list[tuple[bytes, bytes]] = []
        scope.setdefault("state", {})[EXTRA_HEADERS] = extra

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._decorate(list(message.get("headers", [])), extra)
            await send(message)

        declared = self._declared_length(scope)
        if declared > self.max_body:
            await self._too_large(send_wrapper)
            return
        if declared == 0 and not self._chunked(scope):  # no body (most GETs): nothing to cap
            await self.app(scope, receive, send_wrapper)
            return
        try:
            body_receive = await self._buffer(receive)
        except BodyTooLarge:
            await self._too_large(send_wrapper)
            return
        await self.app(scope, body_receive, send_wrapper)

    def _decorate(
        self, headers: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        headers.extend(pair for pair in self.headers if pair[0] not in present)
        if b"content-security-policy" not in present:
            headers.append((b"content-security-policy", JSON_CSP.encode()))
        headers.extend(extra)
        return headers

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    @staticmethod
    def _chunked(scope: Scope) -> bool:
        """A body without Content-Length (Transfer-Encoding): only reading it tells its size."""
        return any(name == b"transfer-encoding" for name, _ in scope.get("headers", []))

    async def _buffer(self, receive: Receive) -> Receive:
        """Read the body up to the cap, then replay it; over the cap raises `BodyTooLarge`."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            size += len(message.get("body", b""))
            if size > self.max_body:
                raise BodyTooLarge
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return _replay([whole], receive)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"Request body is larger than {self.max_body} bytes "
                    "(MAX_BODY_BYTES)",
                    "details": None,
                    "requestId": current_request_id(),
                }
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], then: Receive) -> Receive:
    """Hand out the buffered messages, then the real stream (so disconnects still arrive)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive


def install(api: FastAPI, settings: Settings) -> None:
    """Add the hardening middleware to the API app (CORS outermost, so preflights pass)."""
    api.add_middleware(SecurityMiddleware, settings=settings)
    api.add_middleware(
        CORSMiddleware,
        allow_origins=[settings.web_url.rstrip("/")],
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=600,
    )
