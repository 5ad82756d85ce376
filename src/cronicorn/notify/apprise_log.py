"""What Apprise said while parsing or sending, per thread.

Apprise reports problems only through the `apprise` logger. One handler, installed once,
hands each record to the capture active in the thread that emitted it, so two sends on two
threads never see each other's messages (another user's channel could be named in them).
Apprise's records never reach our process log: they may quote parts of a URL."""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator

import apprise

_local = threading.local()
_installed = threading.Lock()


class _ThreadCapture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        lines: list[str] | None = getattr(_local, "lines", None)
        if lines is not None and record.levelno >= logging.WARNING:
            lines.append(record.getMessage())


_HANDLER = _ThreadCapture(level=logging.WARNING)


def _install() -> None:
    """(Re)attach the handler: logging set-up elsewhere may have reset the logger."""
    logger = logging.getLogger("apprise")
    if logger.handlers == [_HANDLER] and not logger.propagate:
        return
    with _installed:
        logger.handlers[:] = [_HANDLER]
        logger.setLevel(logging.WARNING)
        logger.propagate = False


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


_loaded = False
_load_lock = threading.Lock()


def ensure_loaded() -> None:
    """Load Apprise's plugins once (about a second), with its import-time deprecation
    warnings (`imghdr` on Python 3.11/3.12) silenced: they are Apprise's business, and the
    test suite turns warnings into errors."""
    global _loaded
    if _loaded:
        return
    with _load_lock, warnings.catch_warnings():
        if not _loaded:
            warnings.simplefilter("ignore", DeprecationWarning)
            apprise.Apprise.instantiate("json://localhost/", suppress_exceptions=True)
            _loaded = True
