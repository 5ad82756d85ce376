"""The SSRF guard: a corpus of tricky URLs (pure), and names that resolve to forbidden
addresses (the real system resolver for `localhost` and this machine's name, a chosen resolver
for the rest, both through the same guard)."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from yarl import URL

from cronicorn.dispatch import ssrf
from cronicorn.dispatch.ssrf import (
    GuardedResolver,
    UrlNotAllowed,
    check_url,
    check_url_syntax,
    ineffective_allowances,
    ip_refusal,
)

V4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
V6_LOOPBACK = ipaddress.ip_network("::1/128")
EVERYTHING = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
PRIVATE_ALL = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("fc00::/7"),
)

# Refused whatever the allow list says (checked with allow = everything).
ALWAYS_REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://169.254.169.254.:80/", "link-local"),
    ("http://2852039166/", "link-local"),  # decimal 169.254.169.254
    ("http://0xa9fea9fe/", "link-local"),  # hex
    ("http://0251.0376.0251.0376/", "link-local"),  # octal
    ("http://0xa9.0xfe.0xa9.0xfe/", "link-local"),
    ("http://169.254.43518/", "link-local"),  # short form a.b.c16
    ("http://169.16689662/", "link-local"),  # short form a.b24
    ("http://%31%36%39.254.169.254/", "link-local"),  # percent-encoded host
    ("http://[::ffff:169.254.169.254]/", "link-local"),  # IPv4-mapped, dotted
    ("http://[::ffff:a9fe:a9fe]/", "link-local"),  # IPv4-mapped, hex
    ("http://[0:0:0:0:0:ffff:a9fe:a9fe]/", "link-local"),
    ("http://[::169.254.169.254]/", "link-local"),  # IPv4-compatible
    ("http://[64:ff9b::169.254.169.254]/", "link-local"),  # NAT64
    ("http://[2002:a9fe:a9fe::1]/", "link-local"),  # 6to4
    ("http://[::ffff:0:a9fe:a9fe]/", "link-local"),  # IPv4-translated
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),  # zone id
    ("http://[FE80::a:b:c:d]:8080/", "link-local"),
    ("http://100.100.100.200/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://METADATA.Google.Internal./", "metadata"),
    ("http://metadata/", "metadata"),
    ("http://0.0.0.0/", "0.0.0.0/8"),
    ("http://0/", "0.0.0.0/8"),
    ("http://0.1.2.3/", "0.0.0.0/8"),
    ("http://[::]/", "unspecified"),
    ("http://[::ffff:0.0.0.0]/", "0.0.0.0/8"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://4294967295/", "broadcast"),
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250:1900/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[::ffff:240.0.0.1]/", "reserved"),
]

# Refused by default, allowed when the allow list covers them.
OVERRIDABLE = [
    ("http://127.0.0.1/", "loopback", (V4_LOOPBACK,)),
    ("http://127.0.0.1:3333/api", "loopback", (V4_LOOPBACK,)),
    ("http://127.1/", "loopback", (V4_LOOPBACK,)),
    ("http://127.0.1/", "loopback", (V4_LOOPBACK,)),
    ("http://2130706433/", "loopback", (V4_LOOPBACK,)),
    ("http://0x7f.1/", "loopback", (V4_LOOPBACK,)),
    ("http://0x7f000001/", "loopback", (V4_LOOPBACK,)),
    ("http://0177.0.0.1/", "loopback", (V4_LOOPBACK,)),
    ("http://0177.1/", "loopback", (V4_LOOPBACK,)),
    ("http://127.255.255.254/", "loopback", (V4_LOOPBACK,)),
    ("http://%31%32%37.0.0.1/", "loopback", (V4_LOOPBACK,)),
    ("http://user:pw@127.0.0.1/", "loopback", (V4_LOOPBACK,)),
    ("http://evil.example@127.0.0.1/", "loopback", (V4_LOOPBACK,)),
    ("http://a@b@127.0.0.1/", "loopback", (V4_LOOPBACK,)),
    ("http://[::1]/", "loopback", (V6_LOOPBACK,)),
    ("http://[0:0:0:0:0:0:0:1]:8080/", "loopback", (V6_LOOPBACK,)),
    ("http://[::ffff:127.0.0.1]/", "loopback", (V4_LOOPBACK,)),
    ("http://[::ffff:7f00:1]/", "loopback", (V4_LOOPBACK,)),
    ("http://[::127.0.0.1]/", "loopback", (V4_LOOPBACK,)),
    ("http://[64:ff9b::7f00:1]/", "loopback", (V4_LOOPBACK,)),
    ("http://[2002:7f00:1::]/", "loopback", (V4_LOOPBACK,)),
    ("http://localhost/", "loopback", (V4_LOOPBACK,)),
    ("http://LOCALHOST./", "loopback", (V4_LOOPBACK,)),
    ("http://api.localhost:8000/", "loopback", (V4_LOOPBACK,)),
    ("http://\u24dbocalhost/", "loopback", (V4_LOOPBACK,)),  # circled l, IDNA-mapped
    ("http://%E2%93%9Bocalhost/", "loopback", (V4_LOOPBACK,)),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "loopback", (V4_LOOPBACK,)),  # fullwidth
    ("http://127\u30020\u30020\u30021/", "loopback", (V4_LOOPBACK,)),  # ideographic full stops
    ("http://localhost/", "loopback", (V6_LOOPBACK,)),
    ("http://10.0.0.1/", "private", PRIVATE_ALL),
    ("http://012.1/", "private", PRIVATE_ALL),  # octal 10.0.0.1
    ("http://167772161/", "private", PRIVATE_ALL),
    ("http://172.16.0.1/", "private", PRIVATE_ALL),
    ("http://172.31.255.255/", "private", PRIVATE_ALL),
    ("http://192.168.1.1/", "private", PRIVATE_ALL),
    ("http://[::ffff:192.168.1.1]/", "private", PRIVATE_ALL),
    ("http://[fc00::1]/", "private", PRIVATE_ALL),
    ("http://[fd12:3456:789a::1]/", "private", PRIVATE_ALL),
    ("http://100.64.0.1/", "carrier-grade NAT", (ipaddress.ip_network("100.64.0.0/10"),)),
    ("http://198.18.0.1/", "benchmarking", (ipaddress.ip_network("198.18.0.0/15"),)),
    ("http://192.0.0.8/", "IETF", (ipaddress.ip_network("192.0.0.0/24"),)),
    ("http://192.0.2.10/", "documentation", (ipaddress.ip_network("192.0.2.0/24"),)),
    ("http://[fec0::1]/", "site-local", (ipaddress.ip_network("fec0::/10"),)),
    ("http://[2001:db8::1]/", "documentation", (ipaddress.ip_network("2001:db8::/32"),)),
    ("http://[100::1]/", "reserved", (ipaddress.ip_network("100::/64"),)),
]

ALLOWED = [
    "http://8.8.8.8/",
    "https://1.1.1.1:8443/path?q=1#frag",
    "http://134744072/",  # 8.8.8.8 in decimal
    "http://172.32.0.1/",  # just outside 172.16/12
    "http://172.15.255.255/",
    "http://100.128.0.1/",  # just outside CGNAT
    "http://169.255.0.1/",
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:8.8.8.8]/",
    "http://[64:ff9b::808:808]/",
    "http://example.com/",
    "https://EXAMPLE.com./webhook",
    "http://127.0.0.1.nip.io/",  # a name: judged by what it resolves to
    "http://127.0.0.1:8080@example.com/",  # userinfo, the host is example.com
    "http://bücher.example/",
    "http://localhost.example.com/",
]

INVALID = [
    ("file:///etc/passwd", "Scheme 'file' not allowed"),
    ("gopher://127.0.0.1:70/_x", "Scheme 'gopher' not allowed"),
    ("ftp://example.com/", "Scheme 'ftp' not allowed"),
    ("javascript:alert(1)", "Scheme 'javascript' not allowed"),
    ("dict://127.0.0.1:11211/", "Scheme 'dict' not allowed"),
    ("ws://example.com/", "Scheme 'ws' not allowed"),
    ("//example.com/", "Invalid URL"),
    ("example.com/path", "Invalid URL"),
    ("", "Invalid URL"),
    ("http://", "Invalid URL"),
    ("http:///path", "Invalid URL"),
    ("http://1.2.3.4.5/", "Invalid URL"),
    ("http://256.1.1.1/", "Invalid URL"),
    ("http://4294967296/", "Invalid URL"),
    ("http://foo.1/", "Invalid URL"),
    ("http://0x/", None),  # WHATWG: "0x" is 0 -> 0.0.0.0, refused
    ("http://09.1.1.1/", "Invalid URL"),
    ("http://a b/", "Invalid URL"),
    ("http://exa%00mple.com/", "Invalid URL"),
    ("http://exa%2fmple.com/", "Invalid URL"),
    ("http://[::1/", "Invalid URL"),
    ("http://[not-an-ip]/", "Invalid URL"),
    ("http://evil.com\\@127.0.0.1/", "Invalid URL"),
    ("http://127.0.0.1:99999/", "Invalid URL"),
]


def refusal(url: str, allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str:
    with pytest.raises(UrlNotAllowed) as info:
        check_url_syntax(url, allow)
    return info.value.reason


@pytest.mark.parametrize(("url", "why"), ALWAYS_REFUSED)
def test_always_refused_even_when_everything_is_allowed(url: str, why: str) -> None:
    assert why in refusal(url, ())
    reason = refusal(url, EVERYTHING)
    assert why in reason
    assert "always refused" in reason


@pytest.mark.parametrize(("url", "why", "allow"), OVERRIDABLE)
def test_refused_unless_allowed(
    url: str, why: str, allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> None:
    reason = refusal(url, ())
    assert why in reason
    assert "CRONICORN_ALLOW_NETWORKS" in reason
    check_url_syntax(url, allow)  # does not raise
    check_url_syntax(url, EVERYTHING)


@pytest.mark.parametrize("url", ALLOWED)
def test_public_urls_pass_syntax(url: str) -> None:
    check_url_syntax(url, ())


@pytest.mark.parametrize(("url", "why"), INVALID)
def test_invalid_urls(url: str, why: str | None) -> None:
    reason = refusal(url, EVERYTHING)
    if why is not None:
        assert reason.startswith(why), reason


def test_allowing_one_range_does_not_allow_its_neighbours() -> None:
    allow = (ipaddress.ip_network("127.0.0.1/32"),)
    check_url_syntax("http://127.0.0.1/", allow)
    assert "loopback" in refusal("http://127.0.0.2/", allow)
    assert "loopback" in refusal("http://[::1]/", allow)
    assert "private" in refusal("http://10.0.0.1/", allow)


def test_zone_ids_are_refused_even_on_allowed_addresses() -> None:
    reason = refusal("http://[::1%25lo]/", EVERYTHING)
    assert "zone" in reason


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("http://2130706433:8080/a?b=1", "http://127.0.0.1:8080/a?b=1"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://0177.0.0.1/", "http://127.0.0.1/"),
        ("http://127.1/x", "http://127.0.0.1/x"),
        ("http://%31%32%37.0.0.1/", "http://127.0.0.1/"),
        ("http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
        ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]/"),
        ("http://LOCALHOST/", "http://localhost/"),
        ("http://ex%41mple.com/", "http://example.com/"),
    ],
)
def test_normalisation_is_what_gets_requested(url: str, normalised: str) -> None:
    target = check_url_syntax(url, EVERYTHING)
    assert target.url == URL(normalised)


def test_urls_of_one_host_share_its_reading_and_keep_their_own_paths() -> None:
    """A scheduler calls thousands of URLs on a few hosts: past the per-URL cache, a URL
    costs its own parse, not the host's (numeric IPv4 forms, policy) again."""
    ssrf._normal_host.cache_clear()
    ssrf._host_refusal.cache_clear()
    urls = [f"http://0x7f.1:8080/t/{i}?q={i}" for i in range(50)]
    targets = [check_url_syntax(url, (V4_LOOPBACK,)) for url in urls]
    assert [t.url for t in targets] == [
        URL(f"http://127.0.0.1:8080/t/{i}?q={i}") for i in range(50)
    ]
    assert ssrf._normal_host.cache_info().misses == 1
    assert ssrf._host_refusal.cache_info().misses == 1
    assert "loopback" in refusal("http://0x7f.1:8080/t/0?q=0", ())  # the allow list is key


def test_ip_refusal_direct() -> None:
    assert ip_refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert ip_refusal(ipaddress.ip_address("2001:4860:4860::8888")) is None
    reason = ip_refusal(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert reason is not None
    assert "private (embedded IPv4 10.0.0.1)" in reason
    # the embedded address may be allowed by its IPv4 network
    assert ip_refusal(ipaddress.ip_address("::ffff:10.0.0.1"), PRIVATE_ALL) is None
    # Teredo carries the client address inverted
    teredo = ipaddress.ip_address("2001:0:4136:e378:8000:63bf:80ff:fffe")  # client 127.0.0.1
    reason = ip_refusal(teredo)
    assert reason is not None
    assert "loopback" in reason


# --------------------------------------------------------------------------------------------
# names (DNS)


async def test_localhost_never_reaches_dns_and_is_loopback() -> None:
    with pytest.raises(UrlNotAllowed, match="localhost"):
        await check_url("http://localhost:3333/", ())
    await check_url("http://localhost:3333/", (V4_LOOPBACK,))


async def test_this_machines_hostname_is_refused_when_it_resolves_to_a_blocked_address() -> None:
    name = socket.gethostname()
    infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    addresses = {ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos}
    if all(ip_refusal(ip) is None for ip in addresses):
        pytest.skip(f"{name} resolves only to public addresses here: {addresses}")
    with pytest.raises(UrlNotAllowed, match="resolves to blocked IP"):
        await check_url(f"http://{name}/", ())
    await check_url(f"http://{name}/", EVERYTHING)


@pytest.mark.parametrize(
    ("answers", "why"),
    [
        (["10.0.0.7"], "private"),
        (["93.184.216.34", "10.0.0.7"], "private"),  # any blocked address refuses the name
        (["169.254.169.254"], "link-local"),
        (["::ffff:127.0.0.1"], "loopback"),
        (["fd00::5"], "private"),
        (["fe80::1%2"], "link-local"),
        (["127.0.0.1"], "loopback"),
        (["not-an-ip"], "unparseable"),
    ],
)
async def test_names_resolving_to_blocked_addresses_are_refused(
    chosen_resolver: type, answers: list[str], why: str
) -> None:
    resolver = chosen_resolver({"svc.example": [answers]})
    with pytest.raises(UrlNotAllowed) as info:
        await check_url("https://svc.example/hook", (), resolver=resolver)
    assert "svc.example" in info.value.reason
    assert why in info.value.reason


async def test_names_resolving_to_public_addresses_pass(chosen_resolver: type) -> None:
    resolver = chosen_resolver({"svc.example": [["93.184.216.34", "2606:2800:220:1::1"]]})
    await check_url("https://svc.example/hook", (), resolver=resolver)


async def test_unresolvable_names_pass_unless_required(chosen_resolver: type) -> None:
    resolver = chosen_resolver({})
    await check_url("https://nowhere.example/", (), resolver=resolver)
    with pytest.raises(UrlNotAllowed, match=r"Could not resolve hostname 'nowhere\.example'"):
        await check_url("https://nowhere.example/", (), resolver=resolver, require_resolvable=True)


async def test_guarded_resolver_caches_and_refuses_metadata_names(chosen_resolver: type) -> None:
    inner = chosen_resolver({"svc.example": [["93.184.216.34"]]})
    guard = GuardedResolver((), inner=inner, ttl_s=60)
    try:
        first = await guard.resolve("svc.example", 443, socket.AF_UNSPEC)
        second = await guard.resolve("svc.example", 8443, socket.AF_UNSPEC)
        assert [r["host"] for r in first] == ["93.184.216.34"]
        assert first[0]["port"] == 443
        assert second[0]["port"] == 8443
        assert inner.calls == {"svc.example": 1}
        with pytest.raises(UrlNotAllowed, match="metadata"):
            await guard.resolve("metadata.google.internal", 80)
        assert "metadata.google.internal" not in inner.calls
    finally:
        await guard.close()


def test_allowances_inside_always_refused_ranges_are_named() -> None:
    allow = [
        ipaddress.ip_network("169.254.169.254/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fe80::/64"),
        ipaddress.ip_network("0.0.0.0/0"),  # wider: it does allow private ranges
    ]
    found = ineffective_allowances(allow)
    assert found == [
        "169.254.169.254/32 is link-local (cloud metadata): always refused, "
        "the allowance has no effect",
        "fe80::/64 is link-local: always refused, the allowance has no effect",
    ]
    assert ineffective_allowances([ipaddress.ip_network("192.168.0.0/16")]) == []
