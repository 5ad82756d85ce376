"""Several API worker processes on one listening socket (`cronicorn api --workers N`).

One Python process serves about one core's worth of requests; more workers use more cores.
The parent binds the port (so "port in use" is still one line), then spawns the workers,
which share the socket and let the kernel spread connections between them. The parent only
supervises: a worker that dies is replaced (unless they keep dying), SIGTERM/Ctrl-C stops
them all gracefully within SHUTDOWN_TIMEOUT_S. Rate limits and sessions live in PostgreSQL,
so they hold across workers; each worker has its own connection pool. Their metrics are
summed through one Prometheus multiprocess directory (`_shared_metrics`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from prometheus_client.multiprocess import mark_process_dead

from cronicorn.api.metrics import MULTIPROC_ENV
from cronicorn.config import Settings
from cronicorn.logs import configure, get_logger

log = get_logger("cronicorn")

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0

ServeOne = Callable[[Settings, str, str, socket.socket], None]
"""Serves the app on the given socket until SIGTERM/SIGINT (`serve.serve_socket`)."""


class WorkersFailed(Exception):
    """Workers kept dying right after start: something is wrong with every one of them."""


def _worker(
    serve_one: ServeOne, settings: Settings, url: str, role: str, sock: socket.socket
) -> None:
    configure(settings.log_level, settings.log_format)  # a spawned process starts bare
    with contextlib.suppress(KeyboardInterrupt):
        serve_one(settings, url, role, sock)


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """One Prometheus multiprocess directory for the workers, so `/metrics` from any of them
    sums all of them. Spawned workers inherit the environment variable and import
    prometheus-client fresh under it. A directory the operator set is used as is (and left
    in place); one made here is removed when the workers are gone."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    path = tempfile.mkdtemp(prefix="cronicorn-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(path, ignore_errors=True)


@_shared_metrics()
def run_workers(
    serve_one: ServeOne,
    settings: Settings,
    url: str,
    *,
    role: str,
    sock: socket.socket,
    workers: int,
) -> None:
    """Run `workers` processes serving on `sock` until KeyboardInterrupt (SIGINT, or SIGTERM
    turned into one by `install_sigterm`), then stop them and wait for them."""
    context = multiprocessing.get_context("spawn")  # no fork of a process holding pools

    def start(index: int) -> BaseProcess:
        process = context.Process(
            target=_worker,
            args=(serve_one, settings, url, role, sock),
            name=f"cronicorn-api-{index}",
        )
        process.start()
        log.info("api_worker_started", worker=index, pid=process.pid)
        return process

    processes = [start(i) for i in range(workers)]
    restarts: deque[float] = deque(maxlen=MAX_RESTARTS)
    try:
        while True:
            wait([p.sentinel for p in processes])
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                log.error("api_worker_exited", worker=index, exitcode=process.exitcode)
                if process.pid is not None:  # its live gauges go; its counts stay in the sum
                    mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                now = time.monotonic()
                if len(restarts) == MAX_RESTARTS and now - restarts[0] < RESTART_WINDOW_S:
                    raise WorkersFailed(
                        f"API workers exited {MAX_RESTARTS} times within "
                        f"{RESTART_WINDOW_S:.0f} s; see the log above for why"
                    )
                restarts.append(now)
                processes[index] = start(index)
    finally:
        _stop(processes, settings.shutdown_timeout_s)


def _stop(processes: list[BaseProcess], timeout_s: float) -> None:
    """SIGTERM every worker (uvicorn drains), then SIGKILL what is left after the timeout."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + timeout_s + 5
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.warning("api_worker_killed", pid=process.pid)
            process.kill()
            process.join(5)
