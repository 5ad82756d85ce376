"""Bring the embedded PostgreSQL back after it crashes, while cronicorn roles use it.

Why: a SIGKILLed or crashed postmaster otherwise leaves every role failing (health 503) until
an operator happens to run `cronicorn db start`. Every long-running process that uses the
embedded server (`up`, `api`, `scheduler`) runs one of these in a thread: a thread, because
restarting blocks (waiting for the shared lock, `pg_ctl -w` through crash recovery) and must
not stall the event loop or depend on which loop (uvicorn, API workers) the process runs.

Several local processes share one server; the restart happens under the server's file lock
and is skipped when another process already did it, so one server restarts once. A server
stopped by `cronicorn db stop` stays stopped. An external DATABASE_URL is never supervised.
Pools recover on their own: engines pre-ping, so a dead pooled connection is replaced.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from cronicorn.embedded import EmbeddedError, EmbeddedPostgres
from cronicorn.errors import first_line
from cronicorn.logs import get_logger

log = get_logger("cronicorn.embedded")

Clock = Callable[[], datetime]

POLL_S = 1.0
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def retry_delay(attempt: int, first: float = FIRST_RETRY_S, cap: float = MAX_RETRY_S) -> float:
    """Exponential backoff between failed restarts, capped: a server that cannot start (disk
    full, old backends still holding shared memory) is retried without a busy loop."""
    return float(min(cap, first * 2 ** max(0, attempt - 1)))


_LOG_LINE = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] (.*)$")  # "%m [%p] message"


def failure_reason(exc: BaseException) -> str:
    """Why PostgreSQL refused to start, in one line: the last FATAL of the server log's tail
    (which the error carries), the complaint its process logged just before it (a bad setting
    is a LOG line, then "FATAL: configuration file … contains errors") and its DETAIL/HINT."""
    lines = [m.groups() for m in map(_LOG_LINE.match, str(exc).splitlines()) if m]
    fatal = [i for i, (_, text) in enumerate(lines) if text.startswith("FATAL")]
    if not fatal:
        return first_line(exc)
    at = fatal[-1]
    pid = lines[at][0]
    before = [t for who, t in lines[:at] if who == pid and ("invalid" in t or "ERROR" in t)]
    after = [t for who, t in lines[at + 1 :] if who == pid and t.startswith(("DETAIL", "HINT"))]
    return "; ".join(" ".join(t.split()) for t in [*before[-1:], lines[at][1], *after])


class EmbeddedSupervisor:
    """Watch the shared server from a daemon thread; `with` starts and stops the watch."""

    def __init__(
        self,
        server: EmbeddedPostgres,
        *,
        clock: Clock = utc_now,
        poll_s: float = POLL_S,
        first_retry_s: float = FIRST_RETRY_S,
        max_retry_s: float = MAX_RETRY_S,
    ) -> None:
        self.server = server
        self.clock = clock
        self.poll_s = poll_s
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedded-pg", daemon=True)
        self._told_stopped = False

    def __enter__(self) -> EmbeddedSupervisor:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        # A restart in progress holds the lock; releasing the server waits for it anyway.
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # never let the watch die; the next poll tries again
                log.exception("embedded_postgres_supervisor_error")

    def check(self) -> None:
        """One look: nothing to do while the server runs; otherwise restart it."""
        if self.server.running():
            self._told_stopped = False
            self.server.settle_restarting()
            return
        if self.server.stopped_on_purpose:
            if not self._told_stopped:
                log.warning(
                    "embedded_postgres_stopped",
                    message="embedded PostgreSQL was stopped by `cronicorn db stop`; "
                    "not restarting it (run `cronicorn db start`)",
                )
                self._told_stopped = True
            return
        self.recover(self.server.dead_postmaster_pid())

    def recover(self, pid: int | None) -> None:
        """Restart with capped exponential backoff until it runs again (or we are stopped)."""
        self.server.note_crash(pid, self.clock())
        who = f" (pid {pid})" if pid else ""
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            log.error(
                "embedded_postgres_exited",
                message=f"embedded PostgreSQL{who} exited unexpectedly; "
                f"restarting, attempt {attempt}",
                pid=pid,
                attempt=attempt,
            )
            started = time.monotonic()
            try:
                restarted = self.server.restart_after_crash(self.clock)
            except EmbeddedError as exc:
                delay = retry_delay(attempt, self.first_retry_s, self.max_retry_s)
                reason = failure_reason(exc)
                self.server.note_restart_error(reason)
                log.error(
                    "embedded_postgres_restart_failed",
                    error=reason,
                    attempt=attempt,
                    retry_in_s=delay,
                    hint=f"server log: {self.server.pgdata / 'server.log'}",
                )
                if self._stop.wait(delay):
                    return
                continue
            if restarted:
                log.warning(
                    "embedded_postgres_restarted",
                    message="embedded PostgreSQL restarted; crash recovery done in "
                    f"{time.monotonic() - started:.1f} s",
                    restarts=self.server.crashes().restarts,
                )
            else:
                log.info("embedded_postgres_restarted_elsewhere", attempt=attempt)
            return
