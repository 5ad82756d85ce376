"""Request bodies are strictly typed at the edge: a string is not an integer, a boolean is
not an integer (nor an integer a boolean), a number is not a date, and a name of only white
space is no name. Each refusal is a 422 in the one envelope naming the field; query strings
are still parsed from text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, Served
from cronicorn.auth.service import create_user_with_api_key

ENDPOINT = {"name": "ping", "url": "https://example.com/ping", "baselineIntervalMs": 60000}


def _refused_at(status: int, reply: Any, path: str) -> None:
    assert status == 422, reply
    assert reply["error"]["code"] == "validation_error"
    assert path in [d["path"] for d in reply["error"]["details"]], reply


async def _job(client: Client) -> str:
    status, job = await client.call("POST", "/jobs", {"name": "strict"})
    assert status == 201, job
    return str(job["id"])


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"baselineIntervalMs": "60000"}, "baselineIntervalMs"),
        ({"baselineIntervalMs": True}, "baselineIntervalMs"),
        ({"baselineIntervalMs": 60000.5}, "baselineIntervalMs"),
        ({"timeoutMs": "1000"}, "timeoutMs"),
        ({"maxResponseSizeKb": False}, "maxResponseSizeKb"),
        ({"name": 5}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "\t\n"}, "name"),
        ({"headersJson": {"x-a": 1}}, "headersJson.x-a"),
    ],
)
async def test_endpoint_create_refuses_loose_types(
    served: Served, fields: dict[str, Any], path: str
) -> None:
    job = await _job(served.a)
    status, reply = await served.a.call("POST", f"/jobs/{job}/endpoints", ENDPOINT | fields)
    _refused_at(status, reply, path)
    assert (await served.a.call("GET", f"/jobs/{job}/endpoints"))[1]["endpoints"] == []


async def test_every_body_is_strict(served: Served) -> None:
    a = served.a
    job = await _job(a)
    status, ep = await a.call("POST", f"/jobs/{job}/endpoints", ENDPOINT)
    assert status == 201, ep
    steer = f"/endpoints/{ep['id']}"
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/jobs", {"name": "  "}, "name"),
        ("POST", "/jobs", {"name": 1}, "name"),
        ("PATCH", f"/jobs/{job}", {"name": " "}, "name"),
        ("PATCH", f"/jobs/{job}/endpoints/{ep['id']}", {"name": "   "}, "name"),
        ("PATCH", f"/jobs/{job}/endpoints/{ep['id']}", {"minIntervalMs": "5000"}, "minIntervalMs"),
        ("POST", f"{steer}/hints/interval", {"intervalMs": "30000"}, "intervalMs"),
        (
            "POST",
            f"{steer}/hints/interval",
            {"intervalMs": 30000, "ttlMinutes": True},
            "ttlMinutes",
        ),
        ("POST", f"{steer}/hints/oneshot", {"nextRunInMs": "5000"}, "nextRunInMs"),
        ("POST", f"{steer}/hints/oneshot", {"nextRunAt": 1767225600000}, "nextRunAt"),
        ("POST", f"{steer}/pause", {"pausedUntil": 1767225600}, "pausedUntil"),
        ("POST", "/auth/api-key/create", {"name": "  "}, "name"),
        ("POST", "/auth/api-key/create", {"name": "k", "expiresIn": "3600"}, "expiresIn"),
        ("POST", "/auth/api-key/update", {"keyId": "x", "name": " "}, "name"),
        ("POST", "/auth/api-key/delete", {"keyId": 7}, "keyId"),
        ("POST", "/import", {"jobs": [{"name": " "}]}, "jobs.0.name"),
        (
            "POST",
            "/import",
            {"jobs": [{"name": "j", "endpoints": [ENDPOINT | {"timeoutMs": "9"}]}]},
            "jobs.0.endpoints.0.timeoutMs",
        ),
    ]
    for method, path, body, field in cases:
        status, reply = await a.call(method, path, body)
        _refused_at(status, reply, field)
    # Nothing was written by any refused request.
    status, listed = await a.call("GET", "/jobs")
    assert [j["name"] for j in listed["jobs"]] == ["strict"]
    detail = (await a.call("GET", f"/jobs/{job}/endpoints/{ep['id']}"))[1]
    assert (detail["name"], "aiHintIntervalMs" in detail) == ("ping", False)


async def test_well_typed_bodies_and_query_strings_still_pass(served: Served) -> None:
    a = served.a
    job = await _job(a)
    status, ep = await a.call(
        "POST", f"/jobs/{job}/endpoints", ENDPOINT | {"name": "  padded  ", "timeoutMs": 1000}
    )
    assert (status, ep["name"], ep["timeoutMs"]) == (201, "  padded  ", 1000)
    steer = f"/endpoints/{ep['id']}"
    soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    status, reply = await a.call("POST", f"{steer}/hints/oneshot", {"nextRunAt": soon})
    assert status == 204, reply
    status, runs = await a.call("GET", f"{steer}/runs", limit="5", offset="0")
    assert (status, runs["limit"]) == (200, 5)
    status, health = await a.call("GET", f"{steer}/health", sinceHours="2")
    assert (status, health["sinceHours"]) == (200, 2)


async def test_admin_and_sign_in_bodies_are_strict(served: Served, engine: AsyncEngine) -> None:
    a = served.a
    status, reply = await a.call(
        "POST", "/auth/sign-in/email", {"email": "a@example.com", "password": 12345678}
    )
    _refused_at(status, reply, "password")
    _, key = await create_user_with_api_key(engine, "root@example.com", is_admin=True)
    admin = Client(served.base, a.http, {"x-api-key": key}, "")
    for body, field in [
        ({"email": "x@example.com", "isAdmin": "true"}, "isAdmin"),
        ({"email": "x@example.com", "isAdmin": 1}, "isAdmin"),
        ({"email": "x@example.com", "name": "  "}, "name"),
    ]:
        status, reply = await admin.call("POST", "/users", body)
        _refused_at(status, reply, field)
    status, made = await admin.call("POST", "/users", {"email": "x@example.com", "isAdmin": False})
    assert (status, made["user"]["isAdmin"]) == (201, False)
