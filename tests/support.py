"""Helpers for tests: real servers on 127.0.0.1, CLI subprocesses, polling with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

VENV_BIN = Path(sys.executable).parent
CLI = str(VENV_BIN / "cronicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # Idle keep-alive connections stay open: a client that reuses one after a slow step (a CLI
    # run on a busy machine) must not race the server closing it (connection reset by peer).
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_keep_alive=600
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started, timeout=10, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


async def until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    every: float = 0.05,
) -> None:
    """Poll `predicate` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


def wait_sync(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    for key in ("DATABASE_URL", "CRONICORN_HOME", "AUTH_SECRET", "ADMIN_USER_EMAIL", "PORT"):
        env.pop(key, None)
    env.update({"LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_cli(
    *args: str, env: Mapping[str, str], timeout: float = 120, cwd: Any = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


_started: list[subprocess.Popen[str]] = []


def _spawn(args: tuple[str, ...], env: Mapping[str, str], cwd: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CLI, *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_interruptible,
    )


def _interruptible() -> None:
    """SIGINT as in a terminal: a suite started in the background of a non-interactive
    shell inherits it ignored, and Python then never turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def start_cli(*args: str, env: Mapping[str, str], cwd: Any = None) -> subprocess.Popen[str]:
    """The real `cronicorn` in its own process group; `reap_started` kills what a test left."""
    proc = _spawn(args, env, cwd)
    _started.append(proc)
    return proc


@contextlib.contextmanager
def shared_cli(
    *args: str, env: Mapping[str, str], cwd: Any = None
) -> Iterator[subprocess.Popen[str]]:
    """The real `cronicorn` for a module fixture (one `up` shared by several tests): unlike
    `start_cli`, not reaped after each test; its process group is killed when the block exits."""
    proc = _spawn(args, env, cwd)
    try:
        yield proc
    finally:
        _kill(proc)


def reap_started() -> None:
    """Kill the process group of every CLI process a test left running (an assertion failed
    before the test stopped it), so no server or worker outlives its test."""
    while _started:
        _kill(_started.pop())


async def a_session_waits_on_a_lock(engine: AsyncEngine) -> bool:
    """Whether some connection to this test database is blocked on a lock: how a test knows
    the second party of a race has reached the lock, without sleeping."""
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() LIMIT 1"
            )
        )
    return waiting is not None


def plan_scans(node: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, index or relation) of every scan in an EXPLAIN (FORMAT JSON) plan."""
    found = []
    if "Scan" in node["Node Type"]:
        found.append((node["Node Type"], node.get("Index Name") or node.get("Relation Name", "")))
    for child in node.get("Plans", []):
        found += plan_scans(child)
    return found
