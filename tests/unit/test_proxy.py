"""The proxy-headers trust rules (fastasgi/middleware/proxy_headers.py), called directly."""

from __future__ import annotations

import pytest

from fastasgi.middleware.proxy_headers import ProxyHeadersMiddleware, TrustedProxies, parse_forwarded


def run(trusted, headers, client=("127.0.0.1", 5000), kind="http", server=("10.0.0.1", 8000)):
    """The scope the app sees behind ProxyHeadersMiddleware(trusted)."""
    seen = []

    def app(scope, receive, send):
        seen.append(scope)

    scope = {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": client,
        "server": server,
        "headers": [(k.lower(), v) for k, v in headers],
    }
    ProxyHeadersMiddleware(app, trusted)(scope, None, None)
    return seen[0]


def test_untrusted_peer_is_left_alone():
    scope = run("10.0.0.9", [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")])
    assert (scope["client"], scope["scheme"]) == (("127.0.0.1", 5000), "http")


def test_trusted_peer_gives_client_and_scheme():
    scope = run("127.0.0.1", [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")])
    assert (scope["client"], scope["scheme"]) == (("1.2.3.4", 0), "https")


@pytest.mark.parametrize(
    "trusted,xff,client",
    [
        # from the right, the first hop that is not a trusted proxy
        ("127.0.0.1,10.0.0.0/8", b"1.1.1.1, 2.2.2.2, 10.0.0.2", "2.2.2.2"),
        ("127.0.0.1,10.0.0.0/8,2.2.2.2", b"1.1.1.1, 2.2.2.2, 10.0.0.2", "1.1.1.1"),
        # every hop trusted, or everyone trusted: the leftmost
        ("127.0.0.1,10.0.0.0/8", b"10.0.0.3, 10.0.0.2", "10.0.0.3"),
        ("*", b"1.1.1.1, 2.2.2.2", "1.1.1.1"),
        # a port in the entry is kept
        ("127.0.0.1", b"[2001:db8::1]:4711", "2001:db8::1"),
    ],
)
def test_x_forwarded_for_hop_choice(trusted, xff, client):
    assert run(trusted, [(b"x-forwarded-for", xff)])["client"][0] == client


def test_ipv4_mapped_peer_matches_the_ipv4_entry():
    scope = run("127.0.0.1", [(b"x-forwarded-for", b"1.2.3.4")], client=("::ffff:127.0.0.1", 5000))
    assert scope["client"] == ("1.2.3.4", 0)


def test_websocket_scheme_follows_the_proto():
    assert run("127.0.0.1", [(b"x-forwarded-proto", b"https")], kind="websocket")["scheme"] == "wss"


def test_forwarded_host_and_port_give_server():
    scope = run("127.0.0.1", [(b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"example.com")])
    assert scope["server"] == ("example.com", 443)
    scope = run("127.0.0.1", [(b"x-forwarded-host", b"example.com"), (b"x-forwarded-port", b"8443")])
    assert scope["server"] == ("example.com", 8443)


def test_rfc7239_forwarded():
    scope = run("127.0.0.1", [(b"forwarded", b'for="[2001:db8::1]:4711";proto=https;host=example.com')])
    assert (scope["client"], scope["scheme"], scope["server"]) == (
        ("2001:db8::1", 4711),
        "https",
        ("example.com", 443),
    )


def test_forwarded_is_ignored_when_x_forwarded_headers_are_present():
    scope = run("127.0.0.1", [(b"forwarded", b"for=6.6.6.6;proto=https"), (b"x-forwarded-for", b"1.2.3.4")])
    assert (scope["client"], scope["scheme"]) == (("1.2.3.4", 0), "http")


@pytest.mark.parametrize("value", ["for=1.2.3.4;for=5.6.7.8", 'for="unterminated', "for"])
def test_malformed_forwarded_is_ignored_as_a_whole(value):
    assert parse_forwarded(value) == []
    assert run("127.0.0.1", [(b"forwarded", value.encode())])["client"] == ("127.0.0.1", 5000)


def test_unix_socket_is_trusted_by_its_path_or_star():
    headers = [(b"x-forwarded-for", b"1.2.3.4")]
    assert run("/run/app.sock", headers, client=None, server=("/run/app.sock", None))["client"] == (
        "1.2.3.4",
        0,
    )
    assert run("*", headers, client=None, server=("/run/app.sock", None))["client"] == ("1.2.3.4", 0)
    assert run("127.0.0.1", headers, client=None, server=("/run/app.sock", None))["client"] is None


def test_trusted_proxies_membership():
    trusted = TrustedProxies("127.0.0.1, 10.0.0.0/8 ,fd00::/8")
    assert "10.200.3.4" in trusted and "fd00::5" in trusted and "127.0.0.1" in trusted
    assert "11.0.0.1" not in trusted and "" not in trusted and "not-an-ip" not in trusted


def test_bad_network_entry_is_refused():
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        TrustedProxies("10.0.0.0/33")


def test_uvicorns_keyword_trusted_hosts():
    """ProxyHeadersMiddleware(app, trusted_hosts=...) as uvicorn spells it."""
    seen = []

    def app(scope, receive, send):
        seen.append(scope)

    headers = [(b"x-forwarded-for", b"1.2.3.4")]
    for trusted_hosts, client in (("127.0.0.1", ("1.2.3.4", 0)), ("10.0.0.9", ("127.0.0.1", 5000))):
        scope = {"type": "http", "scheme": "http", "client": ("127.0.0.1", 5000), "server": None, "headers": headers}
        ProxyHeadersMiddleware(app, trusted_hosts=trusted_hosts)(scope, None, None)
        assert seen.pop()["client"] == client
