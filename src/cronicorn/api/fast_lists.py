"""The hottest authenticated lists answered before the framework (issue 17): `GET /api/jobs`
(and `?status=`), `GET /api/jobs/{jobId}/endpoints` and `GET /api/endpoints/{id}/runs` (with
`status`, `limit`, `offset`), for an API key or bearer token.

Mounts, routers, CORS, the security middleware, dependency solving and response classes were
about half of such a request's CPU. Here the request goes through the same pieces the route
uses and nothing else: the connection-free cached gate (`deps.gate_from_cache`: credential
cache, revocation ping, local rate-limit budget), the same statement on the read pool and
the same serializer (`jobs.jobs_json`, `endpoints.endpoints_json`, `runs.runs_json`), and
another user's job or endpoint is the route's 404. The answer is the framework's byte for
byte and header for header (tests/api/test_fast_path_lists.py).

Anything else takes the framework's way and is answered as before: a path, query or header
out of the ordinary (`Origin`, a body, a cookie, a query parameter not listed or not in its
canonical form) before the gate is asked; and whatever the cached gate cannot decide (no
cached credential, a prune due, a request refused by the budget, which takes nothing; a
spent reservation of the rate limit is renewed here, on the read pool, as the gate would). A
statement that fails after the gate admitted the request also falls through: the framework
runs it again and answers the failure as it does (that request is then counted twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast, get_args

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from cronicorn.api import endpoints, jobs, runs
from cronicorn.api.deps import gate_from_cache, read_pool_of
from cronicorn.api.errors import ApiError, refused
from cronicorn.api.fast_path import (
    FALL_THROUGH,
    MOUNT,
    ApiHeaders,
    json_headers,
    plain_get,
    send_json,
)
from cronicorn.api.params import require_id
from cronicorn.api.security import EXTRA_HEADERS
from cronicorn.error_table import refusal_of
from cronicorn.runtime import Runtime
from cronicorn.store.errors import NotFound
from cronicorn.store.jobs import JobStatus
from cronicorn.store.read_pool import ReadPool
from cronicorn.store.runs import RUN_STATUSES

Read = Callable[[ReadPool, str], Awaitable[bytes]]

REFUSED = FALL_THROUGH | {b"cookie"}  # cookie auth: CSRF and refreshed cookies are the gate's

JOB_STATUSES = frozenset(get_args(JobStatus))


@dataclass(frozen=True)
class _Wanted:
    route: BaseRoute
    read: Read


class ListsFastPath:
    """Pure ASGI, just inside the root app's `RequestIdMiddleware` (request id, log line
    and metrics as for every route)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self.runtime: Runtime = api.state.runtime
        self.headers = ApiHeaders(self.runtime.settings)
        self.jobs = _route(jobs.router, jobs.list_jobs)
        self.endpoints = _route(endpoints.router, endpoints.list_endpoints)
        self.runs = _route(runs.router, runs.list_runs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = self._wanted(scope) if scope["type"] == "http" else None
        if wanted is None or not await self._answered(scope, send, wanted):
            await self.app(scope, receive, send)

    def _wanted(self, scope: Scope) -> _Wanted | None:
        """The route and its read, when the request is one this path answers exactly."""
        path: str = scope["path"]
        if not path.startswith(MOUNT + "/") or not plain_get(scope, REFUSED):
            return None
        query = _query(scope["query_string"])
        if query is None:
            return None
        rest = path[len(MOUNT) :]
        if rest == "/jobs":
            return self._jobs(query)
        job_id = _id_between(rest, "/jobs/", "/endpoints", "Job")
        if job_id is not None:
            if query:
                return None
            return self._endpoints(job_id)
        endpoint_id = _id_between(rest, "/endpoints/", "/runs", "Endpoint")
        if endpoint_id is not None:
            return self._runs(endpoint_id, query)
        return None

    def _jobs(self, query: dict[str, str]) -> _Wanted | None:
        asked = query.pop("status", None)
        if query or (asked is not None and asked not in JOB_STATUSES):
            return None
        status = cast(JobStatus | None, asked)

        def read(pool: ReadPool, user: str) -> Awaitable[bytes]:
            return jobs.jobs_json(pool, user, status)

        return _Wanted(self.jobs, read)

    def _endpoints(self, job_id: str) -> _Wanted:
        def read(pool: ReadPool, user: str) -> Awaitable[bytes]:
            return endpoints.endpoints_json(pool, user, job_id)

        return _Wanted(self.endpoints, read)

    def _runs(self, endpoint_id: str, query: dict[str, str]) -> _Wanted | None:
        status = query.pop("status", None)
        limit = _number(query.pop("limit", str(runs.LIMIT_DEFAULT)), 1, runs.LIMIT_MAX)
        offset = _number(query.pop("offset", "0"), 0, runs.OFFSET_MAX)
        if query or limit is None or offset is None:
            return None
        if status is not None and status not in RUN_STATUSES:
            return None

        def read(pool: ReadPool, user: str) -> Awaitable[bytes]:
            return runs.runs_json(
                pool, user, endpoint_id, status=status, limit=limit, offset=offset
            )

        return _Wanted(self.runs, read)

    def _pool(self) -> ReadPool:
        return read_pool_of(self.api, self.runtime)

    async def _answered(self, scope: Scope, send: Send, wanted: _Wanted) -> bool:
        """Answer through the cached gate; False (nothing sent) when the framework must."""
        extra: list[tuple[bytes, bytes]] = []  # what `_admit` adds: the rate-limit counters
        request = Request(
            {
                "type": "http",
                "app": self.api,  # as the mount hands the request to the API app
                "method": "GET",
                "headers": scope["headers"],
                "state": {EXTRA_HEADERS: extra},
            }
        )
        try:
            user = await gate_from_cache(request, self.runtime, self._pool())
        except ApiError:  # refused by the local budget, which took nothing: the same 429
            return False
        except Exception:  # outside the framework's error handling: let it answer
            return False
        if user is None:
            return False
        try:
            body = await wanted.read(self._pool(), user.user_id)
            status, headers = 200, json_headers(body)
        except NotFound as exc:
            refusal = refusal_of(exc)
            if refusal is None:
                return False
            response = refused(refusal)  # the route's 404, as the error mapping answers it
            status, body, headers = response.status_code, bytes(response.body), response.raw_headers
        except Exception:
            return False
        await send_json(send, scope, wanted.route, status, body, self.headers.of(headers, extra))
        return True


def _route(router: APIRouter, endpoint: Callable[..., Any]) -> BaseRoute:
    """The route of `endpoint`: the one the framework records in the scope (the API app
    includes the routers as they are, with no prefix)."""
    return next(r for r in router.routes if getattr(r, "endpoint", None) is endpoint)


def _query(raw: bytes) -> dict[str, str] | None:
    """`a=b&c=d` with plain ASCII names and values, each name once; None otherwise (percent
    escapes, `+`, blank values or repeated names: the framework parses those)."""
    if not raw:
        return {}
    if not raw.isascii():
        return None
    out: dict[str, str] = {}
    for part in raw.decode("ascii").split("&"):
        name, eq, value = part.partition("=")
        if not eq or not name.isalpha() or not value.isalnum() or name in out:
            return None
        out[name] = value
    return out


def _number(value: str, low: int, high: int) -> int | None:
    """A canonical decimal in [low, high] (no sign, no leading zero), else None."""
    if not value.isdigit() or (value[0] == "0" and value != "0") or len(value) > len(str(high)):
        return None
    number = int(value)
    return number if low <= number <= high else None


def _id_between(rest: str, head: str, tail: str, what: str) -> str | None:
    """The path parameter of `head{id}tail`, when it is one `require_id` accepts."""
    if not rest.startswith(head) or not rest.endswith(tail):
        return None
    value = rest[len(head) : len(rest) - len(tail)]
    if not value or "/" in value:
        return None
    try:
        return require_id(value, what)
    except ApiError:
        return None
