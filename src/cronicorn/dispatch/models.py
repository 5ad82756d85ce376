"""The dispatcher's value types: what to send, what came back, and how to behave."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cronicorn import __version__

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]

DEFAULT_TIMEOUT_MS = 30_000
MIN_TIMEOUT_MS = 1_000
MAX_TIMEOUT_MS = 1_800_000
DEFAULT_MAX_RESPONSE_KB = 100
MAX_RESPONSE_KB = 10_240  # 10 MiB: the most any single response body may hold in memory
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """How a `Dispatcher` behaves. `allow_networks` (CRONICORN_ALLOW_NETWORKS, parsed by the
    settings) lifts the SSRF rule for loopback/private ranges inside those networks; it never
    allows link-local, metadata, multicast or reserved addresses."""

    allow_networks: tuple[IPNetwork, ...] = ()
    max_connections: int = 512
    dns_ttl_s: float = 60.0
    user_agent: str = f"Cronicorn/{__version__}"
    keepalive_s: float = 15.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_networks", tuple(self.allow_networks))


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One outbound call.

    * `body_json` is sent (compact JSON, UTF-8) only for POST/PUT/PATCH/DELETE and only when it
      is not None; GET and HEAD never carry a body.
    * `timeout_ms` is one deadline for the whole exchange (connect, redirects, headers, body),
      clamped to 1 s .. 30 min.
    * `max_response_size_kb` caps how much of the response body is read (0 .. 10 MiB).
    * `signing_keys` are raw keys, newest first; empty means unsigned.
    """

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body_json: Any = None
    timeout_ms: int | None = DEFAULT_TIMEOUT_MS
    max_response_size_kb: int | None = DEFAULT_MAX_RESPONSE_KB
    signing_keys: Sequence[bytes] = ()

    @property
    def effective_timeout_ms(self) -> int:
        value = DEFAULT_TIMEOUT_MS if self.timeout_ms is None else int(self.timeout_ms)
        return min(max(value, MIN_TIMEOUT_MS), MAX_TIMEOUT_MS)

    @property
    def response_cap_bytes(self) -> int:
        kb = self.max_response_size_kb
        if kb is None:
            kb = DEFAULT_MAX_RESPONSE_KB
        return min(max(int(kb), 0), MAX_RESPONSE_KB) * 1024


@dataclass(frozen=True, slots=True)
class HttpResult:
    """What happened. `status` is "success" for a final 2xx response, else "failed" with
    `error_message`. `status_code` is set whenever response headers arrived (also on a timeout
    or a broken body after them). The body (up to the cap) is in `response_json` when it was
    read completely and parses as JSON (any content type), else in `response_text` (UTF-8 with
    replacement characters); both are None for an empty body. `response_size` is the number
    of (decoded) body bytes read, at most cap + 1; `truncated` means the body was longer than
    the cap. `duration_ms` is monotonic time for the whole exchange."""

    status: Literal["success", "failed"]
    duration_ms: int
    status_code: int | None = None
    response_json: Any = None
    response_text: str | None = None
    response_size: int = 0
    truncated: bool = False
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"
