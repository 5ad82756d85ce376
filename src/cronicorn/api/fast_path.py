"""What routes answered before the framework (issue 17: `api.health.HealthFastPath`,
`api.fast_lists.ListsFastPath`) share: which requests they may take, and the headers the API's
middleware would have added to their answers.

Such a route runs inside the root app's `RequestIdMiddleware` (request id, log line, metrics
as for every route) but skips the mounts, routers, CORS, security middleware, dependency
solving and response classes: on a 2-core machine those were most of a cheap request's CPU.
Its answers must be the framework's byte for byte and header for header (the tests compare
the app with and without the fast path), so anything unusual takes the framework's way.
"""

from __future__ import annotations

from starlette.routing import BaseRoute
from starlette.types import Scope, Send

from cronicorn.api.security import JSON_CSP, security_headers
from cronicorn.config import Settings

MOUNT = "/api"  # where `cronicorn.app` mounts the API (it takes it from here)

FALL_THROUGH = frozenset({b"origin", b"content-length", b"transfer-encoding"})
"""Request headers that send a request the framework's way: CORS answers an `Origin`, the
security middleware caps a body."""

JSON_TYPE = (b"content-type", b"application/json")


def plain_get(scope: Scope, refused: frozenset[bytes] = FALL_THROUGH) -> bool:
    """An HTTP GET under the root app (no `root_path`) with none of the `refused` headers."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
        return False
    return not any(name in refused for name, _ in scope["headers"])


class ApiHeaders:
    """The headers `SecurityMiddleware` and `CORSMiddleware` add, in their order, to a
    response that has none of them: security headers, the JSON CSP, the headers dependencies
    asked for (rate-limit counters), then `Vary: Origin`."""

    def __init__(self, settings: Settings) -> None:
        self.security = [
            *security_headers(settings),
            (b"content-security-policy", JSON_CSP.encode()),
        ]

    def of(
        self, response_headers: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        return [*response_headers, *self.security, *extra, (b"vary", b"Origin")]


async def send_json(
    send: Send,
    scope: Scope,
    route: BaseRoute,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Send a complete answer of a route of the API, recorded as the framework records it:
    the mount's `root_path` and the matched `route`, from which `RequestIdMiddleware` takes
    the metric's route label."""
    scope["root_path"] = MOUNT
    scope["route"] = route
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """What `Response(body, media_type="application/json")` and `JSONResponse` send."""
    return [(b"content-length", str(len(body)).encode()), JSON_TYPE]
