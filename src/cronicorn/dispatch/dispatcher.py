"""The HTTP dispatcher: one outbound call, bounded in time and memory, through the SSRF guard.

One `aiohttp.ClientSession` per `Dispatcher` (keep-alive pool of `max_connections`), no
cookies kept between calls, no proxies from the environment, no automatic redirects:

* Redirects (301, 302, 303, 307, 308 with a Location) are followed by hand, at most 5; every
  hop passes the SSRF guard (literal addresses before the request, names in the resolver, so
  the address checked is the address connected to). 301/302/303 become GET without a body
  (HEAD stays HEAD); 307/308 keep the method and body. A hop to another origin drops the
  `Authorization`, `Proxy-Authorization` and `Cookie` headers. A 6th redirect fails with
  "Too many redirects (max 5)".
* One deadline (`asyncio.timeout`) covers DNS, connect, TLS, every hop, headers and the body.
* The body is streamed and read up to cap + 1 bytes, never more; a longer body is marked
  truncated and its connection is dropped rather than drained.
* `execute` never raises for HTTP or network problems: every outcome is an `HttpResult`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import time
from typing import Any, Literal, Self

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict
from yarl import URL

from cronicorn.dispatch.models import (
    MAX_REDIRECTS,
    METHODS,
    DispatchConfig,
    HttpRequest,
    HttpResult,
)
from cronicorn.dispatch.signing import apply_signature
from cronicorn.dispatch.ssrf import GuardedResolver, UrlNotAllowed, check_url, check_url_syntax

log = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CROSS_ORIGIN_DROPPED = ("Authorization", "Proxy-Authorization", "Cookie")
_NO_BODY_METHODS = frozenset({"GET", "HEAD"})
_CHUNK = 64 * 1024


class _Progress:
    """What is known so far, for results of exchanges that end early (timeout, broken body)."""

    __slots__ = ("size", "status_code")

    def __init__(self) -> None:
        self.status_code: int | None = None
        self.size = 0


class Dispatcher:
    """Sends `HttpRequest`s. Use as ``async with Dispatcher(config) as d: await d.execute(r)``
    or call `start()` / `close()`. `resolver` replaces the system DNS lookup (its answers still
    pass the SSRF guard); tests use it to choose what names resolve to."""

    def __init__(
        self,
        config: DispatchConfig | None = None,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.config = config or DispatchConfig()
        self._inner_resolver = resolver
        self._guard: GuardedResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None:
            return
        cfg = self.config
        guard = GuardedResolver(cfg.allow_networks, inner=self._inner_resolver, ttl_s=cfg.dns_ttl_s)
        connector = aiohttp.TCPConnector(
            limit=cfg.max_connections,
            resolver=guard,
            use_dns_cache=False,  # the guard caches (checked) answers itself
            keepalive_timeout=cfg.keepalive_s,
        )
        self._guard = guard
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,
            raise_for_status=False,
        )

    async def close(self) -> None:
        session, guard = self._session, self._guard
        self._session = self._guard = None
        if session is not None:
            await session.close()
        if guard is not None:
            await guard.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def check_url(self, url: str) -> None:
        """`UrlNotAllowed` when this dispatcher would refuse the URL (shares its DNS cache)."""
        await check_url(url, self.config.allow_networks, resolver=self._guard)

    async def execute(self, request: HttpRequest) -> HttpResult:
        session = self._session
        if session is None:
            raise RuntimeError("Dispatcher is not started (use 'async with' or start())")
        started = time.monotonic()
        timeout_ms = request.effective_timeout_ms
        progress = _Progress()
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                return await self._exchange(session, request, started, progress)
        except TimeoutError:
            message = f"Request timed out after {timeout_ms}ms"
        except UrlNotAllowed as exc:
            message = f"URL not allowed: {exc.reason}"
        except Exception as exc:
            message = _describe(exc)
        return HttpResult(
            status="failed",
            duration_ms=_elapsed_ms(started),
            status_code=progress.status_code,
            response_size=progress.size,
            error_message=message,
        )

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        request: HttpRequest,
        started: float,
        progress: _Progress,
    ) -> HttpResult:
        allow = self.config.allow_networks
        if not request.url or not request.url.strip():
            raise _Failure("No URL configured for endpoint")
        method = request.method.upper()
        if method not in METHODS:
            raise _Failure(f"Method '{request.method}' is not supported")
        body: bytes | None = None
        if method not in _NO_BODY_METHODS and request.body_json is not None:
            body = json.dumps(request.body_json, separators=(",", ":"), ensure_ascii=False).encode(
                "utf-8"
            )
        headers = self._base_headers(request, body is not None)
        target = check_url_syntax(request.url, allow)
        cap = request.response_cap_bytes
        hops = 0
        while True:
            sent = apply_signature(headers, request.signing_keys, body or b"")
            async with session.request(
                method, target.url, headers=sent, data=body, allow_redirects=False
            ) as resp:
                progress.status_code = resp.status
                location = resp.headers.get("Location") if resp.status in _REDIRECTS else None
                if location is None:
                    return await _finish(resp, cap, started, progress)
                if hops >= MAX_REDIRECTS:
                    raise _Failure(f"Too many redirects (max {MAX_REDIRECTS})")
                hops += 1
                try:
                    next_url = resp.url.join(URL(location))
                except (ValueError, TypeError):
                    raise _Failure(f"Invalid redirect location '{location[:200]}'") from None
            next_target = check_url_syntax(next_url, allow)
            if resp.status in (301, 302, 303) and method != "HEAD":
                method, body = "GET", None
                for name in ("Content-Type", "Content-Length", "Content-Encoding"):
                    headers.popall(name, None)
            if next_target.url.origin() != target.url.origin():
                for name in _CROSS_ORIGIN_DROPPED:
                    headers.popall(name, None)
            target = next_target
            progress.status_code = None

    def _base_headers(self, request: HttpRequest, has_body: bool) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict(request.headers)
        for name in ("Content-Length", "Transfer-Encoding"):
            headers.popall(name, None)
        if "User-Agent" not in headers:
            headers["User-Agent"] = self.config.user_agent
        if has_body and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        return headers


class _Failure(Exception):
    """A failure whose message is final (not an aiohttp error to describe)."""


async def _finish(
    resp: aiohttp.ClientResponse, cap: int, started: float, progress: _Progress
) -> HttpResult:
    chunks: list[bytes] = []
    limit = cap + 1
    size = 0
    complete = True
    broken: str | None = None
    try:
        while size < limit:
            chunk = await resp.content.read(min(limit - size, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            progress.size = size
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionResetError):
        complete = False
        broken = "Connection closed by server before the response body was complete"
    data = b"".join(chunks)
    truncated = size > cap
    if truncated:
        data = data[:cap]
        complete = False
    parsed, text = _capture(data, complete)
    code = resp.status
    status: Literal["success", "failed"]
    if broken is not None:
        status, error = "failed", broken
    elif 200 <= code < 300:
        status, error = "success", None
    else:
        reason = resp.reason or ""
        status, error = "failed", f"HTTP {code} {reason}".rstrip()
    return HttpResult(
        status=status,
        duration_ms=_elapsed_ms(started),
        status_code=code,
        response_json=parsed,
        response_text=text,
        response_size=size,
        truncated=truncated,
        error_message=error,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _capture(data: bytes, complete: bool) -> tuple[Any, str | None]:
    """(parsed JSON, None) for a complete JSON body, else (None, text); (None, None) if empty.
    JSON with NaN/Infinity or NUL characters (which PostgreSQL JSONB cannot store) is kept as
    text."""
    if not data:
        return None, None
    if complete and b"\\u0000" not in data:
        try:
            value = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            pass
        else:
            if value is not None:
                return value, None
    text = data.decode("utf-8", errors="replace")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return None, text


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


_ERRNO_MESSAGES = {
    errno.ECONNREFUSED: "Connection refused",
    errno.ECONNRESET: "Connection reset by server",
    errno.ENETUNREACH: "Network unreachable",
    errno.EHOSTUNREACH: "Host unreachable",
    errno.ETIMEDOUT: "Connection timed out",
}


def _describe(exc: BaseException) -> str:
    """A short, user-facing message for an exception raised during the exchange."""
    if isinstance(exc, _Failure):
        return str(exc)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"Could not resolve host '{exc.host}'"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate verification failed for '{exc.host}': {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error connecting to '{exc.host}': {exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        known = _ERRNO_MESSAGES.get(exc.os_error.errno or 0)
        if known is not None:
            return known
        detail = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"Could not connect to {exc.host}:{exc.port}: {detail}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "Connection closed by server"
    if isinstance(exc, aiohttp.ClientConnectionResetError | ConnectionResetError):
        return "Connection reset by server"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "Connection closed by server before the response body was complete"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"Invalid URL: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"Invalid HTTP response: {exc.message}"
    if isinstance(exc, aiohttp.ClientOSError):
        known = _ERRNO_MESSAGES.get(exc.errno or 0)
        return known or f"Network error: {exc.strerror or exc}"
    if isinstance(exc, aiohttp.ClientError):
        return f"HTTP client error: {exc}"
    if isinstance(exc, ValueError | TypeError | UnicodeError):
        return f"Invalid request: {exc}"
    if isinstance(exc, OSError):
        return f"Network error: {exc.strerror or exc}"
    log.exception("dispatch: unexpected error")
    return f"Unexpected error: {type(exc).__name__}: {exc}"
