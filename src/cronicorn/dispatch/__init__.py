"""Outbound HTTP dispatch: one call, bounded in time and memory, SSRF-guarded and signed."""

from cronicorn.dispatch.dispatcher import Dispatcher
from cronicorn.dispatch.models import DispatchConfig, HttpRequest, HttpResult
from cronicorn.dispatch.refusal import url_refusal
from cronicorn.dispatch.ssrf import UrlNotAllowed, check_url, check_url_syntax

__all__ = [
    "DispatchConfig",
    "Dispatcher",
    "HttpRequest",
    "HttpResult",
    "UrlNotAllowed",
    "check_url",
    "check_url_syntax",
    "url_refusal",
]
