"""Every log line written while a request is served names its request id, structlog's own
lines and the standard library's alike (both go through `logs._SHARED`)."""

from __future__ import annotations

import logging
from typing import Any

from cronicorn.logs import _SHARED
from cronicorn.requestid import set_request_id


def _through_shared(event: dict[str, Any]) -> dict[str, Any]:
    for processor in _SHARED:
        event = processor(logging.getLogger("test"), "info", event)
    return event


def test_a_line_during_a_request_names_it_and_none_after() -> None:
    token = set_request_id("rid-logs")
    try:
        assert _through_shared({"event": "x"})["request_id"] == "rid-logs"
        kept = _through_shared({"event": "x", "request_id": "explicit"})
        assert kept["request_id"] == "explicit", "a line that names one keeps it"
    finally:
        set_request_id(None)
        del token
    assert "request_id" not in _through_shared({"event": "x"})
