"""The floor for `GET /api/jobs`: bare Starlette + psycopg 3 + uvicorn doing the same database
work per request as the real route did before the credential cache (the key looked up by
hash with its user, the rate-limit upsert with asynchronous commit, the user's jobs with
endpoint counts) and answering the same camelCase JSON. `GET /api/health` runs
`SELECT version_num FROM alembic_version`. No middleware, no validation, no pool library.

    DATABASE_URL=postgresql://… PORT=8000 .venv/bin/python bench/bare_route.py
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from datetime import UTC, datetime

import psycopg
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

KEY = """SELECT k.id, k.user_id FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.key_hash = %s AND k.revoked_at IS NULL AND u.disabled_at IS NULL"""
COUNT = """INSERT INTO rate_limits AS r (bucket, window_start, count) VALUES (%s, %s, 1)
ON CONFLICT (bucket, window_start) DO UPDATE SET count = r.count + 1
RETURNING r.count, set_config('synchronous_commit', 'off', true)"""
JOBS = """SELECT j.id, j.user_id, j.name, j.description, j.status, j.created_at, j.updated_at,
j.ai_mode, coalesce(c.n, 0) FROM jobs j LEFT JOIN (SELECT job_id, count(*) AS n FROM endpoints
WHERE user_id = %s GROUP BY job_id) c ON c.job_id = j.id WHERE j.user_id = %s
ORDER BY j.created_at DESC, j.id DESC"""
POOL: asyncio.Queue[psycopg.AsyncConnection[tuple[object, ...]]] = asyncio.Queue()


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def jobs(request: Request) -> Response:
    conn = await POOL.get()
    try:
        digest = hashlib.sha256(request.headers.get("x-api-key", "").encode()).hexdigest()
        found = await (await conn.execute(KEY, (digest,), prepare=True)).fetchone()
        if found is None:
            return Response(b'{"error":"unauthorized"}', 401, media_type="application/json")
        key_id, user_id = found
        window = datetime.now(UTC).replace(second=0, microsecond=0)
        await conn.execute(COUNT, (f"key:{key_id}:read", window), prepare=True)
        rows = await (await conn.execute(JOBS, (user_id, user_id), prepare=True)).fetchall()
    finally:
        POOL.put_nowait(conn)
    out = [
        {
            "id": r[0],
            "userId": r[1],
            "name": r[2],
            "description": r[3],
            "status": r[4],
            "createdAt": iso(r[5]),
            "updatedAt": iso(r[6]),
            "aiMode": r[7],
            "endpointCount": r[8],
        }
        for r in rows
    ]
    return Response(json.dumps({"jobs": out}).encode(), media_type="application/json")


async def health(_request: Request) -> Response:
    conn = await POOL.get()
    try:
        row = await (await conn.execute("SELECT version_num FROM alembic_version")).fetchone()
    finally:
        POOL.put_nowait(conn)
    body = {"status": "ok", "database": "ok", "revision": row[0] if row else None}
    return Response(json.dumps(body).encode(), media_type="application/json")


async def main() -> None:
    for _ in range(10):
        POOL.put_nowait(
            await psycopg.AsyncConnection.connect(os.environ["DATABASE_URL"], autocommit=True)
        )
    app = Starlette(routes=[Route("/api/jobs", jobs), Route("/api/health", health)])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=int(os.environ["PORT"]), log_config=None, access_log=False
    )
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    uvloop.run(main())
