"""Requests under /api/ through the root app: request ids, rate-limit and security headers
and the error envelope are the API's, and a path the /api mount's pattern refuses (a newline)
is answered by the root with its 404 envelope, not a 500."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from api.api_support import Served


@pytest.fixture
def served(shared: tuple[Served, AsyncEngine]) -> Served:
    return shared[0]


async def test_api_requests_keep_request_ids_rate_headers_and_the_envelope(
    served: Served,
) -> None:
    async with served.a.http.get(
        f"{served.base}/api/jobs", headers={**served.a.headers, "x-request-id": "req-direct-1"}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["x-request-id"] == "req-direct-1"
        assert "X-RateLimit-Remaining" in resp.headers
        assert resp.headers["x-content-type-options"] == "nosniff"
    status, body = await served.a.call("GET", "/no/such/route")
    assert status == 404
    assert body["error"]["code"] == "not_found"


async def test_a_path_the_api_mount_refuses_is_answered_by_the_root_as_before(
    served: Served,
) -> None:
    # "%0A" decodes to a newline in the path: the /api mount's pattern does not match it, so
    # the root's routes answer (its not-found envelope), never a 500 from the shortcut.
    url = URL(f"{served.base}/api/%0Ajobs", encoded=True)
    async with served.a.http.get(url, headers=served.a.headers) as resp:
        assert resp.status == 404
        body = await resp.json()
    assert body["error"]["code"] == "not_found"
