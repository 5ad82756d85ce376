"""SSRF guard: which URLs the dispatcher may call.

Two parts:

* Pure parsing and policy (`parse_target`, `check_url_syntax`, `ip_refusal`): the URL is parsed
  the way aiohttp will use it (yarl), then its host is normalised like a WHATWG URL parser does
  (percent-decoding, IDNA, numeric IPv4 forms such as `2130706433`, `0x7f.1`, `0177.0.0.1` and
  `127.1`, bracketed IPv6 with or without a zone id) and an IP literal is checked at once.
* The resolver (`GuardedResolver`): an `aiohttp.abc.AbstractResolver` that resolves a name once,
  refuses it if ANY of its addresses is blocked (fail closed) and otherwise hands aiohttp exactly
  the addresses it checked, so the connection goes to a checked address (no DNS-rebinding gap
  between "check" and "connect"). aiohttp skips resolvers for IP literals, which is why literals
  are checked before each request (and each redirect hop) instead.

Policy (`ip_refusal`):

* Always refused, whatever the allow list says: `0.0.0.0/8`, link-local `169.254.0.0/16` and
  `fe80::/10` (cloud metadata lives there), `::`, broadcast, multicast (`224.0.0.0/4`,
  `ff00::/8`), reserved `240.0.0.0/4`, a few well-known metadata addresses (`100.100.100.200`,
  `192.0.0.192`, `fd00:ec2::254`) and metadata host names (`metadata.google.internal`, ...).
* Refused unless an allowed network (`CRONICORN_ALLOW_NETWORKS`) contains the address: loopback
  (`127.0.0.0/8`, `::1`), private (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`), CGNAT
  `100.64.0.0/10`, benchmarking `198.18.0.0/15`, `192.0.0.0/24`, documentation ranges, site-local
  `fec0::/10`, and any IPv6 address outside global unicast `2000::/3`. The names `localhost` and
  `*.localhost` never go to DNS: they mean 127.0.0.1 and ::1 (RFC 6761) and follow the loopback
  rule.
* IPv6 addresses that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated,
  IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo) are judged by the
  embedded IPv4 address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_HINT = "allow it with CRONICORN_ALLOW_NETWORKS"


class UrlNotAllowed(Exception):
    """The URL may not be called; `reason` is a one-line, user-facing explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _nets(*specs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), label) for cidr, label in specs)


# Checked in order; the first match names the reason.
ALWAYS_REFUSED = _nets(
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("100.100.100.200/32", "a cloud metadata address"),
    ("192.0.0.192/32", "a cloud metadata address"),
    ("fd00:ec2::254/128", "a cloud metadata address"),
    ("0.0.0.0/8", "in 0.0.0.0/8 ('this network')"),
    ("255.255.255.255/32", "broadcast"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
    ("::/128", "the unspecified address"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)

REFUSED_UNLESS_ALLOWED = _nets(
    ("127.0.0.0/8", "loopback"),
    ("::1/128", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)"),
    ("198.18.0.0/15", "benchmarking (198.18.0.0/15)"),
    ("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)"),
    ("192.0.2.0/24", "documentation (192.0.2.0/24)"),
    ("198.51.100.0/24", "documentation (198.51.100.0/24)"),
    ("203.0.113.0/24", "documentation (203.0.113.0/24)"),
    ("192.88.99.0/24", "6to4 relay anycast (192.88.99.0/24)"),
    ("fc00::/7", "private (unique local fc00::/7)"),
    ("fec0::/10", "site-local (fec0::/10)"),
    ("2001:db8::/32", "documentation (2001:db8::/32)"),
    ("2001:2::/48", "benchmarking (2001:2::/48)"),
    ("64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)"),
)

_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)

_LOOPBACK_STATIC: tuple[IPAddress, ...] = (
    ipaddress.IPv4Address("127.0.0.1"),
    ipaddress.IPv6Address("::1"),
)

# WHATWG "forbidden domain code points" (after percent-decoding), plus whitespace.
_FORBIDDEN_HOST_CHARS = frozenset(" \t\n\r#%/:<>?@[\\]^|\x7f") | {chr(c) for c in range(0x20)}


# ---------------------------------------------------------------------------------------------
# IP policy


def _match(ip: IPAddress, table: tuple[tuple[IPNetwork, str], ...]) -> str | None:
    for net, label in table:
        if ip.version == net.version and ip in net:
            return label
    return None


def _allowed(ip: IPAddress, allow: Iterable[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in allow)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, translated, compatible, NAT64, 6to4,
    Teredo server and client); empty for an ordinary IPv6 address."""
    packed = int(ip)
    low32 = ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _IPV4_TRANSLATED or ip in _NAT64:
        return [low32]
    if ip in _IPV4_COMPATIBLE and packed > 1:  # not :: and not ::1
        return [low32]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def _plain_refusal(ip: IPAddress, allow: Sequence[IPNetwork]) -> tuple[str, bool] | None:
    """(label, overridable) for a blocked address judged on its own, or None if allowed."""
    label = _match(ip, ALWAYS_REFUSED)
    if label is not None:
        return label, False
    label = _match(ip, REFUSED_UNLESS_ALLOWED)
    if label is None and ip.version == 6 and ip not in _GLOBAL_UNICAST_V6:
        label = "reserved (outside global unicast 2000::/3)"
    if label is None or _allowed(ip, allow):
        return None
    return label, True


def ip_refusal(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Why this address may not be called (a phrase such as "loopback; allow it with ..."),
    or None when it may. `allow` lifts the overridable rules, never the always-refused ones."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    embedded = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    if embedded:  # judged by the IPv4 address it carries
        for v4 in embedded:
            verdict = _plain_refusal(v4, allow)
            if verdict is None:
                continue
            label, overridable = verdict
            if overridable and _allowed(ip, allow):
                continue
            return _phrase(f"{label} (embedded IPv4 {v4})", overridable)
        return None
    verdict = _plain_refusal(ip, allow)
    if verdict is None:
        return None
    label, overridable = verdict
    return _phrase(label, overridable)


def ineffective_allowances(allow: Sequence[IPNetwork]) -> list[str]:
    """Allowed networks that lie wholly inside an always-refused range, one phrase each.

    Such an allowance changes nothing (metadata and link-local stay refused), so an operator
    who wrote it expects something that will not happen: the process warns at start."""
    found = []
    for net in allow:
        for refused, label in ALWAYS_REFUSED:
            if net.version == refused.version and net.subnet_of(refused):  # type: ignore[arg-type]
                found.append(f"{net} is {label}: always refused, the allowance has no effect")
                break
    return found


def _phrase(label: str, overridable: bool) -> str:
    return f"{label}; {ALLOW_HINT}" if overridable else f"{label}; always refused"


def _ip_reason(ip: IPAddress, allow: Sequence[IPNetwork]) -> str | None:
    why = ip_refusal(ip, allow)
    return None if why is None else f"IP address '{ip}' is {why}"


# ---------------------------------------------------------------------------------------------
# Host parsing (WHATWG-like)


def _parse_ipv4_number(part: str) -> int | None:
    if part == "":
        return None
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
        if part == "":
            return 0
    elif len(part) > 1 and part[0] == "0":
        part, base = part[1:], 8
    digits = {10: "0123456789", 8: "01234567", 16: "0123456789abcdefABCDEF"}[base]
    if any(c not in digits for c in part):
        return None
    return int(part, base)


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "":
        if len(parts) == 1:
            return False
        parts = parts[:-1]
    last = parts[-1]
    if last != "" and last.isascii() and last.isdigit():
        return True
    return _parse_ipv4_number(last) is not None


def _parse_ipv4(host: str) -> ipaddress.IPv4Address:
    """WHATWG IPv4 parser (the caller knows the host ends in a number)."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    if len(parts) > 4:
        raise UrlNotAllowed(f"Invalid URL: host '{host}' is not a valid IPv4 address")
    numbers = [_parse_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        raise UrlNotAllowed(f"Invalid URL: host '{host}' is not a valid IPv4 address")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise UrlNotAllowed(f"Invalid URL: host '{host}' is not a valid IPv4 address")
    result = values[-1]
    for i, n in enumerate(values[:-1]):
        result += n * 256 ** (3 - i)
    return ipaddress.IPv4Address(result)


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed URL: `url` has the canonical host (what aiohttp is given), `host` is that host
    without brackets, `ip` is set when the host is an IP literal."""

    url: URL
    host: str
    ip: IPAddress | None


def parse_target(url: str | URL) -> Target:
    """Parse and normalise a URL; `UrlNotAllowed` for an invalid URL, a scheme other than
    http/https, or a missing or malformed host. Applies no address policy."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
    except (ValueError, TypeError) as exc:
        raise UrlNotAllowed(f"Invalid URL: {exc}") from None
    scheme = parsed.scheme.lower()
    if not scheme:
        raise UrlNotAllowed("Invalid URL: it must be absolute (http:// or https://)")
    if scheme not in ("http", "https"):
        raise UrlNotAllowed(f"Scheme '{scheme}' not allowed. Only HTTP and HTTPS are permitted.")
    raw = parsed.raw_host
    if not raw:
        raise UrlNotAllowed("Invalid URL: no host")
    found = _normal_host(raw)
    if isinstance(found, str):
        raise UrlNotAllowed(found)
    host, ip = found
    if host != raw:
        try:
            parsed = parsed.with_host(host)
        except ValueError as exc:
            raise UrlNotAllowed(f"Invalid URL: host '{raw}': {exc}") from None
    return Target(parsed, host, ip)


@lru_cache(maxsize=4096)
def _normal_host(raw: str) -> tuple[str, IPAddress | None] | str:
    """The host as a WHATWG parser leaves it and its address when it is an IP literal, or why
    it is no valid host. Cached per host, not per URL: an installation's URLs share a few
    hosts, and the numeric IPv4 forms cost more to read than the rest of the URL."""
    if ":" in raw:  # bracketed IPv6 (yarl strips the brackets)
        address, _, zone = raw.partition("%")
        try:
            ip6 = ipaddress.IPv6Address(address)
        except ValueError:
            return f"Invalid URL: '{raw}' is not a valid IPv6 address"
        if zone:
            # Judge the address first so a link-local target gets the precise reason.
            return raw, ipaddress.IPv6Address(f"{ip6.compressed}%{zone}")
        return ip6.compressed, ip6
    host = raw
    if "%" in host:
        try:
            host = unquote_to_bytes(host).decode("utf-8")
        except UnicodeDecodeError:
            return f"Invalid URL: host '{raw}' is not valid UTF-8"
    if any(c in _FORBIDDEN_HOST_CHARS for c in host):
        return f"Invalid URL: host '{raw}' contains a forbidden character"
    if not host.isascii():
        try:
            host = URL.build(scheme="http", host=host).raw_host or ""
        except ValueError as exc:
            return f"Invalid URL: host '{raw}': {exc}"
    host = host.lower()
    if host in ("", "."):
        return "Invalid URL: no host"
    if _ends_in_number(host):
        try:
            ip4 = _parse_ipv4(host)
        except UrlNotAllowed as exc:
            return exc.reason
        return str(ip4), ip4
    return host, None


def _bare_name(host: str) -> str:
    return host.rstrip(".").lower()


def is_localhost_name(host: str) -> bool:
    name = _bare_name(host)
    return name == "localhost" or name.endswith(".localhost")


def _name_refusal(host: str) -> str | None:
    name = _bare_name(host)
    if name in METADATA_NAMES:
        return f"Hostname '{host}' is a cloud metadata service; always refused"
    return None


def _localhost_addresses(host: str, allow: Sequence[IPNetwork]) -> list[IPAddress]:
    """`localhost` / `*.localhost` mean loopback (RFC 6761): the allowed loopback addresses,
    or `UrlNotAllowed` when neither 127.0.0.1 nor ::1 is allowed."""
    allowed = [ip for ip in _LOOPBACK_STATIC if ip_refusal(ip, allow) is None]
    if not allowed:
        raise UrlNotAllowed(
            f"Hostname '{host}' is not allowed (resolves to loopback); {ALLOW_HINT}"
        )
    return allowed


@lru_cache(maxsize=16384)
def _syntax_verdict(url: str, allow: tuple[IPNetwork, ...]) -> Target | str:
    # Per URL, so that each scheduled call parses nothing; 16,384 verdicts take ~5 MB.
    try:
        target = parse_target(url)
    except UrlNotAllowed as exc:
        return exc.reason
    return _host_refusal(target.host, target.ip, allow) or target


@lru_cache(maxsize=4096)
def _host_refusal(host: str, ip: IPAddress | None, allow: tuple[IPNetwork, ...]) -> str | None:
    if ip is not None:
        reason = _ip_reason(ip, allow)
        if reason is not None:
            return reason
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
            return "IPv6 zone identifiers are not allowed in URLs"
        return None
    reason = _name_refusal(host)
    if reason is not None:
        return reason
    if is_localhost_name(host):
        try:
            _localhost_addresses(host, allow)
        except UrlNotAllowed as exc:
            return exc.reason
    return None


def check_url_syntax(url: str | URL, allow_networks: Iterable[IPNetwork] = ()) -> Target:
    """Everything that can be decided without DNS: syntax, scheme, IP literals (with all their
    spellings), metadata names, `localhost`. Returns the normalised target (its `url` is what
    should be requested) or raises `UrlNotAllowed`. A host name still needs `check_url` or the
    `GuardedResolver` for its addresses."""
    allow = tuple(allow_networks)
    verdict = _syntax_verdict(str(url) if isinstance(url, URL) else url, allow)
    if isinstance(verdict, str):
        raise UrlNotAllowed(verdict)
    return verdict


# ---------------------------------------------------------------------------------------------
# Resolver


class GuardedResolver(AbstractResolver):
    """Resolves once, refuses when any address is blocked, returns only checked addresses.

    `inner` does the lookups (default: aiohttp's `DefaultResolver`, a threaded `getaddrinfo`
    unless aiodns is installed); tests inject one whose answers they choose. Answers are cached
    for `ttl_s` seconds (0 disables) and concurrent lookups of one name share a single query.
    Refusals raise `UrlNotAllowed` (not an `OSError`, so aiohttp does not disguise it as a DNS
    failure); lookup failures raise the inner resolver's `OSError`.
    """

    def __init__(
        self,
        allow_networks: Iterable[IPNetwork] = (),
        *,
        inner: AbstractResolver | None = None,
        ttl_s: float = 60.0,
        max_entries: int = 1024,
    ) -> None:
        self._allow = tuple(allow_networks)
        self._inner = inner
        self._owns_inner = inner is None
        self._ttl = ttl_s
        self._max_entries = max_entries
        self._cache: dict[tuple[str, int], tuple[float, list[ResolveResult]]] = {}
        self._inflight: dict[tuple[str, int], asyncio.Task[list[ResolveResult]]] = {}

    @property
    def allow_networks(self) -> tuple[IPNetwork, ...]:
        return self._allow

    def _resolver(self) -> AbstractResolver:
        if self._inner is None:
            self._inner = DefaultResolver()
        return self._inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        reason = _name_refusal(host)
        if reason is not None:
            raise UrlNotAllowed(reason)
        if is_localhost_name(host):
            return [
                _result(host, str(ip), port)
                for ip in _localhost_addresses(host, self._allow)
                if family in (socket.AF_UNSPEC, _family(ip))
            ] or _no_address(host)
        infos = await self._lookup(host, int(family))
        if not infos:
            raise OSError(socket.EAI_NONAME, f"Could not resolve hostname '{host}'")
        for info in infos:
            try:
                ip = ipaddress.ip_address(info["host"])
            except ValueError:
                raise UrlNotAllowed(
                    f"Hostname '{host}' resolves to an unparseable address '{info['host']}'"
                ) from None
            why = ip_refusal(ip, self._allow)
            if why is not None:
                raise UrlNotAllowed(f"Hostname '{host}' resolves to blocked IP '{ip}' ({why})")
        return [{**info, "hostname": host, "port": port} for info in infos]

    async def _lookup(self, host: str, family: int) -> list[ResolveResult]:
        key = (host.lower(), family)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(
                self._resolver().resolve(host, 0, socket.AddressFamily(family))
            )
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settle(key, t))
        return await asyncio.shield(task)

    def _settle(self, key: tuple[str, int], task: asyncio.Task[list[ResolveResult]]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None or self._ttl <= 0:
            return
        if len(self._cache) >= self._max_entries:
            now = time.monotonic()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
        self._cache[key] = (time.monotonic() + self._ttl, task.result())

    async def check(self, target: Target) -> None:
        """Full check of a target whose syntax already passed: resolve names and judge every
        address. Lookup failures propagate as `OSError`."""
        if target.ip is None:
            await self.resolve(target.host, 0, socket.AF_UNSPEC)

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        self._inflight.clear()
        self._cache.clear()
        if self._owns_inner and self._inner is not None:
            await self._inner.close()
            self._inner = None


def _family(ip: IPAddress) -> socket.AddressFamily:
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


def _result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "hostname": host,
        "host": address,
        "port": port,
        "family": family,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    }


def _no_address(host: str) -> list[ResolveResult]:
    raise OSError(socket.EAI_NONAME, f"Could not resolve hostname '{host}'")


async def check_url(
    url: str | URL,
    allow_networks: Iterable[IPNetwork] = (),
    *,
    resolver: AbstractResolver | None = None,
    require_resolvable: bool = False,
    dns_timeout_s: float = 5.0,
) -> None:
    """Create/edit-time validation: raises `UrlNotAllowed(reason)` when the dispatcher would
    refuse this URL (syntax, scheme, address policy, names resolving to blocked addresses).

    A name that does not resolve (or not within `dns_timeout_s`) passes unless
    `require_resolvable`: the service may simply not be up yet, and a run will report
    "Could not resolve host". `resolver` is the lookup to use: a `GuardedResolver` is used as
    is (with its own allow list and cache), another resolver is wrapped in a guard for
    `allow_networks`; default: the system resolver.
    """
    allow = tuple(allow_networks)
    target = check_url_syntax(url, allow)
    if target.ip is not None or is_localhost_name(target.host):
        return
    if isinstance(resolver, GuardedResolver):
        guard, owned = resolver, False
    else:
        guard, owned = GuardedResolver(allow, inner=resolver, ttl_s=0), True
    try:
        async with asyncio.timeout(dns_timeout_s):
            await guard.check(target)
    except (OSError, TimeoutError):
        if require_resolvable:
            raise UrlNotAllowed(f"Could not resolve hostname '{target.host}'") from None
    finally:
        if owned:
            await guard.close()
