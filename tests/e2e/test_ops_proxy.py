"""Proxy headers: X-Forwarded-For/-Proto/-Host/-Port and RFC 7239 Forwarded, believed only
from trusted peers (--forwarded-allow-ips). The rules are checked on the middleware in
process (one table), then end to end through the CLI with trusted and untrusted peers."""

from __future__ import annotations

import json
import sys

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from fastasgi.middleware.proxy_headers import ProxyHeadersMiddleware, TrustedProxies, parse_forwarded
from support.ops import serve
from support.server import HTTP_TIMEOUT, server_env

# --- the rules, on the middleware -----------------------------------------------------------


def scope_from(peer, headers, *, kind="http", server=("10.0.0.1", 8000), scheme=None):
    return {
        "type": kind,
        "scheme": scheme or ("ws" if kind == "websocket" else "http"),
        "client": peer,
        "server": server,
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }


def run_middleware(trusted, scope):
    seen = []

    def inner(scope, receive, send):
        seen.append(scope)
        return "the app's awaitable"

    assert ProxyHeadersMiddleware(inner, trusted)(scope, None, None) == "the app's awaitable"
    assert seen == [scope]
    return scope


PEER = ("127.0.0.1", 50000)
DEFAULT = "127.0.0.1,::1"
UNCHANGED = (PEER, "http", ("10.0.0.1", 8000))

CASES = [
    # (name, trusted, peer, headers, kind, expected (client, scheme, server))
    ("untrusted peer", DEFAULT, ("10.1.1.1", 4000), [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")],
     "http", (("10.1.1.1", 4000), "http", ("10.0.0.1", 8000))),
    ("xff and proto", DEFAULT, PEER, [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")],
     "http", (("1.2.3.4", 0), "https", ("10.0.0.1", 8000))),
    ("rightmost untrusted hop", DEFAULT, PEER, [("x-forwarded-for", "1.2.3.4, 10.0.0.5")],
     "http", (("10.0.0.5", 0), "http", ("10.0.0.1", 8000))),
    ("trusted hop skipped by CIDR", "127.0.0.1, 10.0.0.0/8", PEER, [("x-forwarded-for", "1.2.3.4, 10.0.0.5")],
     "http", (("1.2.3.4", 0), "http", ("10.0.0.1", 8000))),
    ("all hops trusted: leftmost", "127.0.0.1,10.0.0.0/8", PEER, [("x-forwarded-for", "10.0.0.1, 10.0.0.2")],
     "http", (("10.0.0.1", 0), "http", ("10.0.0.1", 8000))),
    ("star trusts all: leftmost", "*", ("8.8.8.8", 1), [("x-forwarded-for", "1.2.3.4, 5.6.7.8")],
     "http", (("1.2.3.4", 0), "http", ("10.0.0.1", 8000))),
    ("ip with port", DEFAULT, PEER, [("x-forwarded-for", "1.2.3.4:5678")],
     "http", (("1.2.3.4", 5678), "http", ("10.0.0.1", 8000))),
    ("bracketed ipv6 with port", DEFAULT, PEER, [("x-forwarded-for", "[2001:db8::1]:443")],
     "http", (("2001:db8::1", 443), "http", ("10.0.0.1", 8000))),
    ("bare ipv6", DEFAULT, PEER, [("x-forwarded-for", "2001:db8::1")],
     "http", (("2001:db8::1", 0), "http", ("10.0.0.1", 8000))),
    ("several header lines joined", DEFAULT, PEER, [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "5.6.7.8")],
     "http", (("5.6.7.8", 0), "http", ("10.0.0.1", 8000))),
    ("empty xff keeps the peer", DEFAULT, PEER, [("x-forwarded-for", "")], "http", UNCHANGED),
    ("unknown proto ignored", DEFAULT, PEER, [("x-forwarded-proto", "gopher")], "http", UNCHANGED),
    ("proto is case-insensitive", DEFAULT, PEER, [("x-forwarded-proto", " HTTPS ")],
     "http", (PEER, "https", ("10.0.0.1", 8000))),
    ("websocket gets wss", DEFAULT, PEER, [("x-forwarded-proto", "https")],
     "websocket", (PEER, "wss", ("10.0.0.1", 8000))),
    ("http scope never gets ws", DEFAULT, PEER, [("x-forwarded-proto", "wss")],
     "http", (PEER, "https", ("10.0.0.1", 8000))),
    ("proto of the chosen hop", "127.0.0.1,10.0.0.0/8", PEER,
     [("x-forwarded-for", "1.2.3.4, 10.0.0.5"), ("x-forwarded-proto", "https, http")],
     "http", (("1.2.3.4", 0), "https", ("10.0.0.1", 8000))),
    ("host with default port", DEFAULT, PEER, [("x-forwarded-host", "example.com"), ("x-forwarded-proto", "https")],
     "http", (PEER, "https", ("example.com", 443))),
    ("host with port", DEFAULT, PEER, [("x-forwarded-host", "example.com:8443")],
     "http", (PEER, "http", ("example.com", 8443))),
    ("port alone", DEFAULT, PEER, [("x-forwarded-port", "8080")], "http", (PEER, "http", ("10.0.0.1", 8080))),
    ("host and port", DEFAULT, PEER, [("x-forwarded-host", "[::1]:9000"), ("x-forwarded-port", "9443")],
     "http", (PEER, "http", ("::1", 9443))),
    ("bad port ignored", DEFAULT, PEER, [("x-forwarded-host", "example.com"), ("x-forwarded-port", "99999")],
     "http", (PEER, "http", ("example.com", 80))),
    ("forwarded, star: leftmost element", "*", PEER,
     [("forwarded", 'for=192.0.2.60;proto=https;host=example.com, for="[2001:db8:cafe::17]:4711"')],
     "http", (("192.0.2.60", 0), "https", ("example.com", 443))),
    ("forwarded, rightmost untrusted element", DEFAULT, PEER,
     [("forwarded", 'for=1.2.3.4;proto=https;host="shop.example:8443", for=127.0.0.1;proto=http')],
     "http", (("1.2.3.4", 0), "https", ("shop.example", 8443))),
    ("forwarded ipv6 node", DEFAULT, PEER, [("forwarded", 'For="[2001:db8:cafe::17]:4711";Proto=HTTPS')],
     "http", (("2001:db8:cafe::17", 4711), "https", ("10.0.0.1", 8000))),
    ("forwarded obfuscated node", DEFAULT, PEER, [("forwarded", "for=_hidden;proto=https")],
     "http", (("_hidden", 0), "https", ("10.0.0.1", 8000))),
    ("forwarded ignored next to x-forwarded-for", DEFAULT, PEER,
     [("forwarded", "for=6.6.6.6;proto=https"), ("x-forwarded-for", "1.2.3.4")],
     "http", (("1.2.3.4", 0), "http", ("10.0.0.1", 8000))),
    ("malformed forwarded ignored", DEFAULT, PEER, [("forwarded", "for=1.2.3.4;proto")], "http", UNCHANGED),
    ("duplicate parameter: malformed", DEFAULT, PEER, [("forwarded", "for=1.2.3.4;for=5.6.7.8")], "http", UNCHANGED),
    ("websocket forwarded", DEFAULT, PEER, [("forwarded", "for=1.2.3.4;proto=http")],
     "websocket", (("1.2.3.4", 0), "ws", ("10.0.0.1", 8000))),
    ("ipv4-mapped peer", DEFAULT, ("::ffff:127.0.0.1", 5), [("x-forwarded-for", "1.2.3.4")],
     "http", (("1.2.3.4", 0), "http", ("10.0.0.1", 8000))),
    ("ipv6 peer in a network", "fd00::/8", ("fd12::1", 5), [("x-forwarded-for", "1.2.3.4")],
     "http", (("1.2.3.4", 0), "http", ("10.0.0.1", 8000))),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, trusted, peer, headers, kind, expected", CASES, ids=[case[0] for case in CASES]
)
def test_proxy_header_rules(name, trusted, peer, headers, kind, expected):
    scope = scope_from(peer, headers, kind=kind)
    original_headers = list(scope["headers"])
    run_middleware(trusted, scope)
    client, scheme, server = expected
    if kind == "websocket" and expected[1] in ("http", "https"):
        scheme = {"http": "ws", "https": "wss"}[scheme]
    assert (scope["client"], scope["scheme"], scope["server"]) == (client, scheme, server)
    assert scope["headers"] == original_headers  # headers are left as they came


def test_unix_socket_peer_trusted_by_its_path_or_star():
    headers = [("x-forwarded-for", "1.2.3.4")]
    listed = run_middleware("/run/app.sock", scope_from(None, headers, server=("/run/app.sock", None)))
    assert listed["client"] == ("1.2.3.4", 0)
    star = run_middleware("*", scope_from(None, headers, server=("/run/app.sock", None)))
    assert star["client"] == ("1.2.3.4", 0)
    other = run_middleware(DEFAULT, scope_from(None, headers, server=("/run/app.sock", None)))
    assert other["client"] is None


def test_lifespan_scope_passes_untouched():
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    assert run_middleware("*", scope) == {"type": "lifespan", "asgi": {"version": "3.0"}}


def test_trusted_proxies_parsing():
    trusted = TrustedProxies(" 127.0.0.1 , 10.1.2.3/8,fd00::/8,::1,/run/app.sock,, ")
    assert "10.200.0.1" in trusted and "127.0.0.1" in trusted and "::1" in trusted and "fd00::5" in trusted
    assert (
        "11.0.0.1" not in trusted and "" not in trusted and None not in trusted and "not-an-ip" not in trusted
    )
    assert "/run/app.sock" in trusted.literals
    assert TrustedProxies(["*"]).always and "8.8.8.8" in TrustedProxies("*")
    for bad in ("10.0.0.0/33", "1.2.3/8", "fd00::/200"):
        with pytest.raises(ValueError, match="is not an IP network"):
            TrustedProxies(bad)


def test_parse_forwarded():
    assert parse_forwarded('for="_gazonk"') == [{"for": "_gazonk"}]
    assert parse_forwarded('For="[2001:db8:cafe::17]:4711"') == [{"for": "[2001:db8:cafe::17]:4711"}]
    assert parse_forwarded("for=192.0.2.60;proto=http;by=203.0.113.43") == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}
    ]
    assert parse_forwarded("for=192.0.2.43, for=198.51.100.17") == [
        {"for": "192.0.2.43"},
        {"for": "198.51.100.17"},
    ]
    assert parse_forwarded('for="a\\"b"') == [{"for": 'a"b'}]
    assert (
        parse_forwarded("") == [] and parse_forwarded("garbage") == [] and parse_forwarded('for="open') == []
    )


# --- end to end, through the CLI ----------------------------------------------------------------


def scope_via(server, headers):
    return httpx.get(server.url + "/scope", headers=headers, timeout=HTTP_TIMEOUT).json()


XFF = {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https", "x-forwarded-host": "shop.example"}


def test_default_trusts_loopback_proxy_and_logs_the_real_client():
    with serve() as server:
        scope = scope_via(server, XFF)
        assert (scope["client"], scope["scheme"], scope["server"]) == (
            ["203.0.113.9", 0],
            "https",
            ["shop.example", 443],
        )
        assert scope_via(server, {"forwarded": "for=198.51.100.7;proto=https"})["client"] == [
            "198.51.100.7",
            0,
        ]
        with ws_connect(
            f"ws://127.0.0.1:{server.port}/scope", additional_headers=XFF, open_timeout=HTTP_TIMEOUT
        ) as ws:
            ws_scope = json.loads(ws.recv(timeout=HTTP_TIMEOUT))
        assert (ws_scope["client"], ws_scope["scheme"]) == (["203.0.113.9", 0], "wss")
        server.wait_for(r'INFO:     203\.0\.113\.9:0 - "GET /scope HTTP/1\.1" 200 OK', stream="stdout")


@pytest.mark.parametrize(
    "args, env, trusted",
    [
        (["--forwarded-allow-ips", "10.9.9.9"], {}, False),
        (["--forwarded-allow-ips", "10.9.9.9,127.0.0.0/8"], {}, True),
        (["--forwarded-allow-ips", "*"], {}, True),
        (["--no-proxy-headers"], {}, False),
        ([], {"FORWARDED_ALLOW_IPS": "10.9.9.9"}, False),
        ([], {"FORWARDED_ALLOW_IPS": "*"}, True),
        ([], {"FASTASGI_FORWARDED_ALLOW_IPS": "10.9.9.9"}, False),
        (["--forwarded-allow-ips", "127.0.0.1"], {"FORWARDED_ALLOW_IPS": "10.9.9.9"}, True),  # the flag wins
    ],
    ids=["other-ip", "cidr", "star", "off", "env-untrusted", "env-star", "fastasgi-env", "flag-over-env"],
)
def test_trusted_and_untrusted_peers(args, env, trusted):
    with serve(*args, env=server_env(env)) as server:
        scope = scope_via(server, XFF)
    if trusted:
        assert (scope["client"][0], scope["scheme"]) == ("203.0.113.9", "https")
    else:
        assert (scope["client"][0], scope["scheme"], scope["server"][1]) == ("127.0.0.1", "http", server.port)


def test_bad_forwarded_allow_ips_is_one_line():
    from support.server import run_cli

    result = run_cli("ops_app:app", "--forwarded-allow-ips", "10.0.0.0/40")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ERROR:    Invalid value for '--forwarded-allow-ips': '10.0.0.0/40' has an entry '10.0.0.0/40' "
        "that is not an IP network."
    ]


if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")
