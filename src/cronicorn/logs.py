"""Structured logging: JSON lines (or a console renderer) through structlog.

Standard-library loggers (uvicorn, alembic, aiohttp) are routed through the same processors so
every line has one shape, and the request id bound in a contextvar appears on all of them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from cronicorn.requestid import current_request_id


def add_request_id(_logger: object, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """The id of the request being served, read from its one contextvar: binding it into
    structlog's context as well cost every request a bind and an unbind (issue 17)."""
    request_id = current_request_id()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


_SHARED: list[Any] = [
    add_request_id,
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(level: str = "info", fmt: str = "json") -> None:
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel("WARNING" if level != "debug" else "DEBUG")


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
