"""Channel URLs: what Apprise accepts, what we show, where the SSRF guard looks.

A URL Apprise cannot load is refused with Apprise's own reason. Generic JSON webhooks
(`json://`, `jsons://`) are sent by our dispatcher instead of Apprise, so they are signed like
endpoint calls and pass the SSRF guard on every connection; other self-hosted services
(ntfy, Gotify, SMTP, form webhooks, ...) name a host that is checked by the guard before each
send. Cloud-only services (Slack, Telegram, ...) go to fixed public hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import apprise

from cronicorn.notify.apprise_log import captured, ensure_loaded

MAX_URL = 2048
JSON_WEBHOOKS = {"json": "http", "jsons": "https"}
# Apprise's own query parameters, not the receiver's.
_APPRISE_PARAMS = frozenset(
    {
        "method",
        "overflow",
        "format",
        "retry",
        "wait",
        "optional",
        "cto",
        "rto",
        "verify",
        "emojis",
        "tz",
        "store",
        "image",
    }
)


class InvalidChannelUrl(ValueError):
    """Apprise cannot send to this URL (the message is Apprise's reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ChannelUrl:
    url: str  # as given: secret
    kind: str  # the scheme: json, ntfy, mailto, slack, ...
    preview: str  # Apprise's privacy form (passwords and tokens masked), no query
    webhook: str | None = None  # http(s) target when we send it ourselves (json://)
    headers: tuple[tuple[str, str], ...] = ()  # `+Name=value` parameters of a webhook
    host_check: str | None = None  # http://host:port/ the SSRF guard checks before a send


def parse_channel_url(url: str) -> ChannelUrl:
    """`InvalidChannelUrl` unless Apprise can load `url`."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise InvalidChannelUrl(f"URL must be 1 to {MAX_URL} characters")
    ensure_loaded()
    with captured() as lines:
        plugin: Any = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None or isinstance(plugin, bool):
        raise InvalidChannelUrl("; ".join(_unique(lines)) or "Apprise cannot load this URL")
    scheme = url.split("://", 1)[0].lower()
    preview = str(plugin.url(privacy=True)).split("?", 1)[0]
    if scheme in JSON_WEBHOOKS:
        target, headers = _webhook_target(url, JSON_WEBHOOKS[scheme])
        return ChannelUrl(url, scheme, preview, webhook=target, headers=headers)
    host = str(getattr(plugin, "host", "") or "")
    check = None
    if getattr(plugin, "protocol", None) is not None and host:
        port = getattr(plugin, "port", None)
        check = f"http://{_bracket(host)}{f':{port}' if port else ''}/"
    return ChannelUrl(url, scheme, preview, host_check=check)


def _webhook_target(url: str, http_scheme: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = urlsplit(url)
    query, headers = [], []
    for pair in filter(None, parts.query.split("&")):
        raw_key, _, raw_value = pair.partition("=")
        key, value = unquote(raw_key), unquote(raw_value)
        if key.startswith("+") and len(key) > 1:
            headers.append((key[1:], value))
        elif key.lower() not in _APPRISE_PARAMS and not key.startswith(("-", ":")):
            query.append((key, value))
    target = urlunsplit((http_scheme, parts.netloc, parts.path or "/", urlencode(query), ""))
    return target, tuple(headers)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _unique(lines: list[str]) -> list[str]:
    seen: list[str] = []
    for line in lines:
        text = line.strip()
        if text and text not in seen:
            seen.append(text)
    return seen
