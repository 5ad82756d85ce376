"""Schemathesis against the real app over HTTP: for every operation in /api/doc, generated
valid and invalid requests (20 and 10) never get a 500 and every response matches the
schema the document declares for it. Half the cases aim at real seeded ids, so handlers run
past the 404."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from api.api_support import NO_RATE_LIMITS, add_run, add_session, credentials
from cronicorn.api.endpoints import close_dispatcher
from cronicorn.app import create_app
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store.db import make_async_engine
from support import serve_app

# Examples per operation: valid requests exercise handlers, invalid ones mostly the 422 path.
MAX_EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass
class Target:
    base: str
    headers: dict[str, str]
    ids: dict[str, str]


@contextmanager
def served_in_thread(database_url: str) -> Iterator[Target]:
    """The app on its own event loop in a thread, so synchronous Schemathesis calls can
    reach it; seeded with one user's job, endpoint, run and session."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    settings_ = load_settings(
        DATABASE_URL=database_url,
        AUTH_SECRET="s" * 40,
        CRONICORN_ALLOW_NETWORKS="127.0.0.0/8",
        **NO_RATE_LIMITS,
    )
    app = create_app(Runtime.create(settings_, database_url))
    server = serve_app(app)
    engine = make_async_engine(database_url, pool_size=2, max_overflow=0)

    async def start() -> Target:
        base = await server.__aenter__()
        user_id, headers = await credentials(engine, "fuzz@example.com")
        ids = await _seed(engine, user_id, f"{base}/api/health")
        return Target(base=base, headers=headers, ids=ids)

    async def stop() -> None:
        await server.__aexit__(None, None, None)
        await close_dispatcher(app.routes[0].app)
        await engine.dispose()

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _seed(engine: Any, user_id: str, url: str) -> dict[str, str]:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        job = await job_store.create(conn, user_id, name="fuzz", description=None, now=now)
        ep = await endpoint_store.create(
            conn, user_id, job.id, {"name": "e", "url": url, "baseline_interval_ms": 60000}, now
        )
        run = await add_run(conn, user_id=user_id, endpoint_id=ep.id, started_at=now)
        session = await add_session(conn, user_id=user_id, endpoint_id=ep.id, analyzed_at=now)
    return {"job": job.id, "endpoint": ep.id, "run": run, "session": session}


def _real_ids(path: str, ids: dict[str, str]) -> dict[str, str]:
    if path.startswith("/jobs/{jobId}"):
        return {"jobId": ids["job"], "id": ids["endpoint"]}
    kind = {"/jobs/": "job", "/endpoints/": "endpoint", "/runs/": "run", "/sessions/": "session"}
    for prefix, name in kind.items():
        if path.startswith(prefix):
            return {"id": ids[name]}
    return {}


def _exercise(operation: Any, mode: GenerationMode, target: Target, http: requests.Session) -> None:
    checks = [not_a_server_error, response_schema_conformance]

    @settings(
        max_examples=MAX_EXAMPLES[mode],
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode), aim_real=st.booleans())
    def run(case: Any, aim_real: bool) -> None:
        if aim_real and case.path_parameters:
            case.path_parameters = {**case.path_parameters, **_real_ids(case.path, target.ids)}
        response = case.call(
            base_url=f"{target.base}/api", session=http, headers=target.headers, timeout=30
        )
        case.validate_response(response, checks=checks)

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing in this operation can be made invalid


RESOURCE_TAGS = frozenset(
    {
        "Jobs",
        "Endpoints",
        "Adaptive Scheduling",
        "Execution",
        "AI Analysis",
        "Dashboard",
        "Signing Keys",
        "Usage",
        "Import/Export",
        "health",
    }
)


@pytest.mark.parametrize("area", ["resources", "accounts and the rest"])
def test_fuzz_every_operation(database_url: str, area: str) -> None:
    """Split in two so a failure says whose routes it is in; together they cover every
    operation in the document."""
    with served_in_thread(database_url) as target, requests.Session() as http:
        doc = http.get(f"{target.base}/api/doc", timeout=10).json()
        schema = schemathesis.openapi.from_dict(doc)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 30
        mine = [op for op in operations if RESOURCE_TAGS & set(op.definition.raw.get("tags", []))]
        chosen = mine if area == "resources" else [op for op in operations if op not in mine]
        failures = []
        for operation in chosen:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _exercise(operation, mode, target, http)
                except Exception as exc:  # collect them all, then report
                    failures.append(f"{operation.label} [{mode.value}]: {exc}")
        assert not failures, "\n\n".join(failures)
