"""What Apprise said while parsing or sending, per thread.

Apprise reports problems only through the `apprise` logger. One handler, installed once,
hands each record to the capture active in the thread that emitted it, so two sends on two
threads never see each other's messages (another user's channel could be named in them).
Apprise's records never reach our process log: they may quote parts of a URL."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

_local = threading.local()
_installed = threading.Lock()
_done = False


class _ThreadCapture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        lines: list[str] | None = getattr(_local, "lines", None)
        if lines is not None and record.levelno >= logging.WARNING:
            lines.append(record.getMessage())


def _install() -> None:
    global _done
    with _installed:
        if _done:
            return
        logger = logging.getLogger("apprise")
        logger.handlers[:] = [_ThreadCapture(level=logging.WARNING)]
        logger.setLevel(logging.WARNING)
        logger.propagate = False
        _done = True


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """Apprise's warnings and errors in this thread while the block runs."""
    _install()
    lines: list[str] = []
    previous = getattr(_local, "lines", None)
    _local.lines = lines
    try:
        yield lines
    finally:
        _local.lines = previous
