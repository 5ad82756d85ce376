"""The hot list routes on the read pool (issue 17): `GET /api/jobs/{jobId}/endpoints` and
`GET /api/endpoints/{id}/runs` answer what they answered through the engine. The endpoint
list is the single-endpoint route's JSON, item for item and byte for byte (that route still
goes through FastAPI's `response_model` serialization); the runs page is the engine's page
for every combination of filters and a cursor; another user's job or endpoint is the same
404, byte for byte, as one that does not exist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, Served, add_run
from cronicorn.domain.ids import new_id
from cronicorn.schemas.history import RUN_ITEM_JSON, RunListItem
from cronicorn.schemas.jobs import JobList, JobWithCount
from cronicorn.store import jobs as job_store
from cronicorn.store import runs as run_store
from cronicorn.store.errors import NotFound
from cronicorn.store.read_pool import ReadPool
from cronicorn.store.runs import RunSummary

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
RICH = {
    "name": "rich ✓",
    "description": 'ünïcode "quoted" \\ and </script>',
    "url": "https://example.com/rich?q=1&r=2",
    "method": "POST",
    "headersJson": {"X-One": "1", "Content-Type": "application/json"},
    "bodyJson": {"n": 1.5, "big": 1e100, "small": 1e-7, "s": "é", "list": [None, True, {}]},
    "timeoutMs": 5000,
    "maxExecutionTimeMs": 20000,
    "maxResponseSizeKb": 64,
    "baselineCron": "*/5 * * * *",
    "timezone": "Europe/Paris",
    "minIntervalMs": 60000,
    "maxIntervalMs": 3600000,
    "aiMode": "off",
}

ADAPTIVE = {  # every JSON-valued field of an endpoint
    "name": "adaptive",
    "url": "https://e.com/status",
    "baselineIntervalMs": 60000,
    "assertions": {
        "statuses": ["2xx", 304],
        "conditions": [{"jsonPath": "$.load", "op": "<", "value": 2.5}],
    },
    "rules": [
        {
            "name": "calm ✓",
            "when": {"jsonPath": "$.status", "op": "==", "value": "idle"},
            "then": {"action": "pause", "forMinutes": 15},
        }
    ],
    "retry": {"attempts": 3, "backoff": "fixed", "initialDelayMs": 500, "on": ["5xx"]},
    "overlap": "allow",
    "maxConcurrent": 3,
}


async def _raw(client: Client, path: str, **params: Any) -> tuple[int, bytes]:
    headers = {**client.headers, "X-Request-Id": "rid-fast"}
    url = f"{client.base}/api{path}"
    async with client.http.get(url, headers=headers, params=params or None) as resp:
        return resp.status, await resp.read()


@pytest.fixture(scope="module")
async def seeded(shared: tuple[Served, AsyncEngine]) -> dict[str, Any]:
    served, engine = shared
    a = served.a
    status, job = await a.call("POST", "/jobs", {"name": "fast lists"})
    assert status == 201
    status, empty = await a.call("POST", "/jobs", {"name": "no endpoints"})
    assert status == 201
    ids = []
    plain = {"name": "plain", "url": "https://e.com", "baselineIntervalMs": 60000}
    for body in (RICH, plain, ADAPTIVE):
        status, ep = await a.call("POST", f"/jobs/{job['id']}/endpoints", body)
        assert status == 201, ep
        ids.append(ep["id"])
    for kind, hint in (("interval", {"intervalMs": 90000}), ("oneshot", {"nextRunInMs": 5000})):
        status, _ = await a.call("POST", f"/endpoints/{ids[0]}/hints/{kind}", hint)
        assert status == 204
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    status, _ = await a.call("POST", f"/endpoints/{ids[1]}/pause", {"pausedUntil": soon})
    assert status in (200, 204)
    async with engine.begin() as conn:
        for n in range(7):
            await add_run(
                conn,
                user_id=a.user_id,
                endpoint_id=ids[0],
                started_at=START + timedelta(minutes=n),
                status="failed" if n % 3 == 0 else "success",
            )
    return {"job": job["id"], "empty": empty["id"], "endpoints": ids, "a": a, "b": served.b}


async def test_the_endpoint_list_is_the_single_routes_json(seeded: dict[str, Any]) -> None:
    a, job = seeded["a"], seeded["job"]
    singles = []
    for endpoint_id in seeded["endpoints"]:
        status, body = await _raw(a, f"/jobs/{job}/endpoints/{endpoint_id}")
        assert status == 200
        singles.append(body)
    status, listed = await _raw(a, f"/jobs/{job}/endpoints")
    assert status == 200
    assert listed == b'{"endpoints":[' + b",".join(singles) + b"]}"
    for field in (b'"aiHintIntervalMs":90000', b'"aiHintNextRunAt"', b'"pausedUntil"'):
        assert field in listed
    for field in (b'"aiHintExpiresAt"', b'"assertions"', b'"rules"', b'"retry"', b'"headersJson"'):
        assert field in listed
    assert await _raw(a, f"/jobs/{seeded['empty']}/endpoints") == (200, b'{"endpoints":[]}')


async def test_another_users_job_and_endpoint_are_the_same_404(seeded: dict[str, Any]) -> None:
    b = seeded["b"]
    pairs = [
        (f"/jobs/{seeded['job']}/endpoints", f"/jobs/{new_id()}/endpoints"),
        (f"/endpoints/{seeded['endpoints'][0]}/runs", f"/endpoints/{new_id()}/runs"),
    ]
    for theirs, nobodys in pairs:
        foreign, missing = await _raw(b, theirs), await _raw(b, nobodys)
        assert foreign[0] == 404
        assert foreign == missing


FILTERS: list[dict[str, Any]] = [
    {},
    {"status": "failed"},
    {"since": START + timedelta(minutes=1)},
    {"until": START + timedelta(minutes=2)},
    {"status": "success", "since": START, "until": START + timedelta(minutes=3), "offset": 1},
    {"limit": 2},
    {"limit": 2, "offset": 5},
]


def _item(run: RunSummary) -> str:
    fields = {name: getattr(run, name) for name in RunListItem.model_fields if name != "run_id"}
    return RunListItem(run_id=run.id, **fields).model_dump_json(by_alias=True)


async def test_the_runs_page_is_the_engines(
    seeded: dict[str, Any], shared: tuple[Served, AsyncEngine]
) -> None:
    """The page PostgreSQL writes is the engine's page, each run `RunListItem`'s JSON."""
    _, engine = shared
    a, endpoint_id = seeded["a"], seeded["endpoints"][0]
    pool = ReadPool(engine.url.render_as_string(hide_password=False), 2)
    try:
        for filters in FILTERS:
            cursor = None
            for _ in range(5):  # first page, then follow the cursor
                async with engine.connect() as conn:
                    want = await run_store.page_for_endpoint(
                        conn, a.user_id, endpoint_id, cursor=cursor, **filters
                    )
                got = await run_store.page_json_for_endpoint(
                    pool, a.user_id, endpoint_id, RUN_ITEM_JSON, cursor=cursor, **filters
                )
                assert got.items == [_item(run) for run in want.items], filters
                assert (got.total, got.next_cursor) == (want.total, want.next_cursor), filters
                if want.next_cursor is None:
                    break
                cursor = want.next_cursor
        with pytest.raises(NotFound):
            await run_store.page_json_for_endpoint(
                pool, seeded["b"].user_id, endpoint_id, RUN_ITEM_JSON
            )
    finally:
        await pool.close()


async def test_the_job_list_is_the_models_json(
    seeded: dict[str, Any], shared: tuple[Served, AsyncEngine]
) -> None:
    """`GET /api/jobs` as PostgreSQL writes it is `JobList`'s JSON of the engine's rows
    (endpoint counts, an absent description, an archived job's `archivedAt`)."""
    _, engine = shared
    a = seeded["a"]
    status, archived = await a.call("POST", "/jobs", {"name": "gone", "description": "é\n"})
    assert status == 201
    assert (await a.call("DELETE", f"/jobs/{archived['id']}"))[0] == 200
    async with engine.connect() as conn:
        rows = await job_store.list_with_counts(conn, a.user_id)
    want = JobList(jobs=[JobWithCount.counted(row, n) for row, n in rows])
    assert {n for _, n in rows} >= {0, 3}
    assert any(r.archived_at for r, _ in rows)
    assert await _raw(a, "/jobs") == (200, want.model_dump_json(by_alias=True).encode())
