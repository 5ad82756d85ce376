"""Process lifecycle shared by the CLI commands: the database a command uses (embedded or
external), start-up checks that fail fast with one clear line, and serving the ASGI app.

uvicorn, the app and the API workers are imported only by the functions that serve: every
command imports this module, and one-shot commands (`cronicorn db status`) start faster."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psycopg

from cronicorn.config import Settings
from cronicorn.embedded import EmbeddedPostgres
from cronicorn.embedded_supervisor import EmbeddedSupervisor
from cronicorn.errors import first_line
from cronicorn.logs import get_logger
from cronicorn.runtime import Runtime
from cronicorn.store.db import libpq_url

if TYPE_CHECKING:
    from cronicorn.app import Role

log = get_logger("cronicorn")


class StartupError(Exception):
    """Something outside the code prevents starting; the message says what and how to fix."""


def install_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks (embedded release) run."""

    def _handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _handler)


@contextlib.contextmanager
def database(settings: Settings, *, supervise: bool = False) -> Iterator[str]:
    """Yield the libpq URL to use; with no DATABASE_URL, run the embedded server meanwhile,
    and with `supervise` (long-running roles) restart it if it crashes."""
    if settings.database_url is not None:
        yield libpq_url(settings.database_url)
        return
    embedded = EmbeddedPostgres(settings.home)
    with embedded.session():
        if not supervise:
            yield embedded.url()
            return
        with EmbeddedSupervisor(embedded):
            yield embedded.url()


def make_runtime(settings: Settings, database_url: str, *, role: str) -> Runtime:
    """The process's Runtime; on the embedded server, health also reports the server."""
    from cronicorn.dispatch.ssrf import ineffective_allowances  # aiohttp: only when serving

    runtime = Runtime.create(settings, database_url, role=role)
    for problem in ineffective_allowances(settings.allow_networks):
        log.warning(
            "allow_networks_ineffective", variable="CRONICORN_ALLOW_NETWORKS", problem=problem
        )
    if settings.embedded:
        runtime.database_server = EmbeddedPostgres(settings.home).report
    return runtime


def describe_target(url: str) -> str:
    """Host and database of a URL, without credentials, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get(
        "host", "local socket"
    )
    return f"{host}{':' + str(parts.port) if parts.port else ''}/{parts.path.lstrip('/')}"


def check_database(url: str, timeout_s: float) -> None:
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout_s))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = first_line(exc)
        raise StartupError(
            f"cannot connect to the database at {describe_target(url)}: {reason}. "
            "Check DATABASE_URL and that PostgreSQL is running."
        ) from None


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP;
    # protocol 0 left Nagle on and stalled every small response by ~40 ms (delayed ACKs).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use; stop the other process or set PORT"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings,
    database_url: str,
    roles: Sequence[tuple[str, Role]],
    *,
    role: str,
    workers: int = 1,
) -> None:
    """Serve the app (and `roles`) on HOST:PORT; with `workers` > 1 (API only), that many
    processes share the socket (see `workers.py`)."""
    sock = bind_socket(settings.host, settings.port)
    names = [n for n, _ in roles]
    log.info("listening", host=settings.host, port=settings.port, roles=names, workers=workers)
    if workers <= 1:
        _serve(settings, database_url, roles, role, sock)
        return
    if roles:
        raise ValueError("background roles run in one process; only the API has workers")
    from cronicorn.workers import WorkersFailed, run_workers

    try:
        run_workers(serve_socket, settings, database_url, role=role, sock=sock, workers=workers)
    except WorkersFailed as exc:
        raise StartupError(str(exc)) from None


def serve_socket(settings: Settings, database_url: str, role: str, sock: socket.socket) -> None:
    """One API worker process (the target `run_workers` spawns)."""
    _serve(settings, database_url, (), role, sock)


def _serve(
    settings: Settings,
    database_url: str,
    roles: Sequence[tuple[str, Role]],
    role: str,
    sock: socket.socket,
) -> None:
    import uvicorn

    from cronicorn.app import create_app

    runtime = make_runtime(settings, database_url, role=role)
    app = create_app(runtime, roles)
    freeze_startup_heap()
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout_s)),
        server_header=False,
    )
    # uvloop (a declared dependency off Windows), as the scheduler uses: less CPU per API
    # request than the default loop (bench/README.md, issue 17).
    with asyncio.Runner(loop_factory=_fast_loop()) as runner:
        runner.run(uvicorn.Server(config).serve(sockets=[sock]))


def freeze_startup_heap() -> None:
    """Take what start-up built (modules, classes, the app: ~230k objects) out of the cyclic
    garbage collector's scans. Every few seconds under load a full collection traversed all
    of it with the event loop stopped, ~250 ms of CPU: the API's p99 was 20x its p50
    (bench/README.md, issue 17). Collected first, so only live objects are frozen; reference
    counting still frees them, only cycles among them would never be reclaimed."""
    gc.collect()
    gc.freeze()


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    return uvloop.new_event_loop


def run_roles(
    settings: Settings, database_url: str, roles: Sequence[tuple[str, Role]], *, role: str
) -> None:
    """Run background roles without an HTTP server (e.g. `cronicorn scheduler`) until
    SIGINT/SIGTERM, then give them `SHUTDOWN_TIMEOUT_S` to drain."""
    from cronicorn.app import supervise

    async def main() -> None:
        runtime = make_runtime(settings, database_url, role=role)
        health = None
        if settings.health_port is not None:
            from cronicorn import role_health

            try:
                health = await role_health.start(runtime, settings.host, settings.health_port)
            except OSError as exc:
                await runtime.close()
                raise StartupError(
                    f"cannot serve health on {settings.host}:{settings.health_port} "
                    f"({exc.strerror}); free the port or change HEALTH_PORT"
                ) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = [
            asyncio.create_task(supervise(name, r, runtime, stop), name=f"role:{name}")
            for name, r in roles
        ]
        log.info("roles_started", roles=[name for name, _ in roles])
        try:
            await stop.wait()
        finally:
            stop.set()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=settings.shutdown_timeout_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            if health is not None:
                health.close()
            await runtime.close()

    freeze_startup_heap()  # as API processes: a scheduler's full collections scanned it all
    asyncio.run(main())
