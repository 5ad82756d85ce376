"""Health over HTTP for processes that serve no API (`cronicorn scheduler`, `cronicorn planner`).

With HEALTH_PORT set, such a process answers `GET /health` with what `/api/health` would say
about it: the database answers, and each role's own probe (the scheduler says `degraded` while
it cannot claim). 200 when all is well, else 503. `GET /livez` answers 200 while the event loop
runs, for liveness checks that must not restart a process during a database outage. Docker,
Kubernetes and systemd can thus tell a working scheduler from a process that merely exists
(the original's `pgrep` checks could not). A few dozen lines of asyncio instead of a web
framework: the scheduler's process stays small and this listener cannot slow its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from sqlalchemy import text

from cronicorn import __version__
from cronicorn.runtime import Runtime

DB_TIMEOUT_S = 2.0
UNHEALTHY = frozenset({"degraded", "error", "unavailable"})
_REQUEST_LIMIT = 8192


async def report(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    """The status code and body of `GET /health` for this process."""
    body: dict[str, Any] = {"status": "ok", "version": __version__}
    ok = True
    try:
        async with asyncio.timeout(DB_TIMEOUT_S), runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        body["database"] = "ok"
    except Exception:  # any failure to answer is "unreachable", never a crash of the probe
        body["database"] = "unreachable"
        ok = False
    for name, probe in list(runtime.health_probes.items()):
        try:
            section = await probe()
        except Exception as exc:
            section = {"status": "error", "error": type(exc).__name__}
        body[name] = section
        if isinstance(section, dict) and section.get("status") in UNHEALTHY:
            ok = False
    if not ok:
        body["status"] = "unavailable"
    return (200 if ok else 503), body


async def _answer(runtime: Runtime, path: str) -> tuple[int, dict[str, Any]]:
    if path == "/health":
        return await report(runtime)
    if path == "/livez":
        return 200, {"status": "ok"}
    return 404, {"error": {"code": "not_found", "message": "GET /health or /livez"}}


def _handler(runtime: Runtime) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head[:_REQUEST_LIMIT].decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            if method not in {"GET", "HEAD"}:
                status, body = 405, {"error": {"code": "method_not_allowed", "message": "GET"}}
            else:
                status, body = await _answer(runtime, path)
            payload = json.dumps(body).encode()
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                status, "Service Unavailable"
            )
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(payload)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that sends no request gets no answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return handle


async def start(runtime: Runtime, host: str, port: int) -> asyncio.Server:
    """Listen on host:port; the caller closes the returned server at shutdown."""
    return await asyncio.start_server(_handler(runtime), host, port, limit=_REQUEST_LIMIT)
