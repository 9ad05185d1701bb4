"""Proxy headers: the client address, scheme and host a trusted proxy saw.

Behind a reverse proxy the peer of every connection is the proxy. A proxy that we trust
(``--forwarded-allow-ips``) tells us who its own client was, and how it was reached, in
request headers. ``ProxyHeadersMiddleware`` puts that into the scope of ``http`` and
``websocket`` requests from trusted peers:

- ``client``: from ``X-Forwarded-For`` (uvicorn's rule: walking the list from the right,
  the first address that is not a trusted proxy; the leftmost when all are trusted or when
  every peer is trusted with ``*``), port 0 unless the entry has one;
- ``scheme``: from ``X-Forwarded-Proto`` (``http``/``https``/``ws``/``wss``; a websocket
  scope gets ``ws``/``wss``, an http scope ``http``/``https``);
- ``server``: from ``X-Forwarded-Host`` and ``X-Forwarded-Port`` (a host without a port
  gets the scheme's default port);
- or all three from the RFC 7239 ``Forwarded`` header (``for=``, ``proto=``, ``host=``),
  picking the element of the hop chosen by the same rule.

When a request carries any ``X-Forwarded-*`` header, ``Forwarded`` is ignored: a proxy
that sets the X-Forwarded family (nginx, most load balancers) usually passes a
client-written ``Forwarded`` through untouched, and honouring it would let any client
choose its own address. Headers are left in the scope as they came.

When a list header (X-Forwarded-Proto/-Host/-Port) has one value it is used; when it has
one value per X-Forwarded-For hop, the value of the chosen hop; otherwise its last value
(the one written by the proxy next to us).

Peers that are not trusted cost one dict lookup per request.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastasgi import _defaults

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Any], Callable[..., Any]], Awaitable[None]]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# How many peer addresses to remember the verdict for; the table starts over when full.
_CACHE_SIZE = 4096

_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class TrustedProxies:
    """The peers whose proxy headers are believed: ``--forwarded-allow-ips``.

    Entries are IP addresses, networks in CIDR notation (``10.0.0.0/8``, ``fd00::/8``),
    ``*`` (everyone), or other literals, compared as they are with the client host and,
    for connections on a unix socket (which have no client address), with the socket's
    path. An IPv4 client seen on a dual-stack socket (``::ffff:10.1.2.3``) is matched as
    the IPv4 address.
    """

    def __init__(self, spec: str | Iterable[str]) -> None:
        entries = spec.split(",") if isinstance(spec, str) else list(spec)
        self.always = False
        self.addresses: set[_IPAddress] = set()
        self.networks: list[_IPNetwork] = []
        self.literals: set[str] = set()
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            if entry == "*":
                self.always = True
            elif "/" in entry and not entry.startswith(("/", ".")):
                try:
                    # strict=False: 10.1.2.3/8 means 10.0.0.0/8, as nginx's set_real_ip_from
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(f"has an entry {entry!r} that is not an IP network") from None
            else:
                try:
                    self.addresses.add(ipaddress.ip_address(entry))
                except ValueError:
                    self.literals.add(entry)
        #: host string -> trusted?  Filled as peers are seen (see ProxyHeadersMiddleware).
        self.cache: dict[str, bool] = {}

    def __contains__(self, host: str | None) -> bool:
        if self.always:
            return True
        if not host:
            return False
        verdict = self.cache.get(host)
        if verdict is None:
            verdict = self._compute(host)
            if len(self.cache) >= _CACHE_SIZE:
                self.cache.clear()
            self.cache[host] = verdict
        return verdict

    def _compute(self, host: str) -> bool:
        if host in self.literals:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip in self.addresses or any(ip in network for network in self.networks)

    def trusts_unix_socket(self, scope: Scope) -> bool:
        """A connection on a unix socket: trusted with ``*`` or when the socket's path is
        listed."""
        if self.always:
            return True
        server = scope.get("server")
        return bool(server and server[1] is None and server[0] in self.literals)

    def __repr__(self) -> str:
        if self.always:
            return "TrustedProxies('*')"
        listed = [str(a) for a in self.addresses] + [str(n) for n in self.networks] + sorted(self.literals)
        return f"TrustedProxies({','.join(listed)!r})"


class ProxyHeadersMiddleware:
    """Applies proxy headers from trusted peers to ``http`` and ``websocket`` scopes (see
    the module docstring). ``trusted`` is a ``TrustedProxies`` or its specification.

    ``__call__`` is a plain method that returns the wrapped app's awaitable: the scope is
    complete before the app starts, so no coroutine frame of our own is needed."""

    def __init__(
        self,
        app: ASGIApp,
        trusted: TrustedProxies | str | Iterable[str] = _defaults.FORWARDED_ALLOW_IPS,
        *,
        trusted_hosts: str | Iterable[str] | None = None,
    ) -> None:
        # trusted_hosts: uvicorn's name for the same setting (ProxyHeadersMiddleware(app,
        # trusted_hosts=...)), taken over `trusted` when given
        if trusted_hosts is not None:
            trusted = trusted_hosts
        self.app = app
        self.trusted = trusted if isinstance(trusted, TrustedProxies) else TrustedProxies(trusted)
        self._verdicts = self.trusted.cache

    def __call__(
        self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]
    ) -> Awaitable[None]:
        client = scope.get("client")
        if client is not None:
            trusted = self._verdicts.get(client[0])
            if trusted is None:
                trusted = client[0] in self.trusted
            if trusted:
                apply_proxy_headers(scope, self.trusted)
        elif scope["type"] in ("http", "websocket") and self.trusted.trusts_unix_socket(scope):
            apply_proxy_headers(scope, self.trusted)
        return self.app(scope, receive, send)


# The headers we read, and where each goes in apply_proxy_headers' lists.
_PROXY_HEADERS = {b"x-forwarded-for": 0, b"x-forwarded-proto": 1, b"x-forwarded-host": 2, b"x-forwarded-port": 3,
                  b"forwarded": 4}  # fmt: skip


def apply_proxy_headers(scope: Scope, trusted: TrustedProxies) -> None:
    """Rewrite ``client``, ``scheme`` and ``server`` of ``scope`` from its proxy headers."""
    found: tuple[list[bytes], ...] | None = None
    wanted = _PROXY_HEADERS.get
    for name, value in scope["headers"]:
        index = wanted(name)  # one lookup per header: most requests carry none of ours
        if index is not None:
            if found is None:
                found = ([], [], [], [], [])
            found[index].append(value)
    if found is None:
        return
    forwarded_for, proto, host, port, forwarded = found

    if forwarded_for or proto or host or port:
        hops = _split(forwarded_for)
        chosen = _choose_hop([_host_port(hop)[0] for hop in hops], trusted) if hops else 0
        client = _host_port(hops[chosen]) if hops else None
        _apply(
            scope,
            client,
            _pick(_split(proto), chosen, len(hops)),
            _pick(_split(host), chosen, len(hops)),
            _pick(_split(port), chosen, len(hops)),
        )
    else:
        elements = parse_forwarded(b", ".join(forwarded).decode("latin-1"))
        if not elements:
            return
        chosen = _choose_hop([_host_port(element.get("for", ""))[0] for element in elements], trusted)
        element = elements[chosen]
        node = element.get("for")
        _apply(scope, _host_port(node) if node else None, element.get("proto"), element.get("host"), None)


def _apply(
    scope: Scope,
    client: tuple[str, int] | None,
    proto: str | None,
    host: str | None,
    port: str | None,
) -> None:
    if client is not None and client[0]:
        # An empty X-Forwarded-For entry gives nothing usable: keep the peer (uvicorn #1068).
        scope["client"] = client
    if proto:
        table = _WS_SCHEMES if scope["type"] == "websocket" else _HTTP_SCHEMES
        scheme = table.get(proto.strip().lower())
        if scheme is not None:
            scope["scheme"] = scheme
    if host or port:
        server = scope.get("server")
        server_host: str | None
        if host:
            server_host, server_port = _host_port(host)
        else:
            server_host, server_port = (server[0] if server else None), 0
        if port:
            port = port.strip()
            server_port = int(port) if port.isdigit() and int(port) <= 65535 else server_port
        if not server_port:
            server_port = _DEFAULT_PORTS.get(scope.get("scheme", "http"), 80)
        if server_host:
            scope["server"] = (server_host, server_port)


def _split(values: list[bytes]) -> list[str]:
    """The comma-separated items of one list header that may come in several lines."""
    if not values:
        return []
    return [item.strip() for item in b",".join(values).decode("latin-1").split(",")]


def _choose_hop(hosts: list[str], trusted: TrustedProxies) -> int:
    """Index of the hop to believe: from the right, the first that is not a trusted proxy;
    the leftmost when all are trusted, or when every peer is trusted (``*``), as uvicorn."""
    if trusted.always:
        return 0
    for index in range(len(hosts) - 1, -1, -1):
        if hosts[index] not in trusted:
            return index
    return 0


def _pick(values: list[str], chosen: int, hops: int) -> str | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    if len(values) == hops:
        return values[chosen]
    return values[-1]


def _host_port(value: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``, ``example.com:8080``,
    ``unknown`` -> (host, port); the port is 0 when absent or not a number."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, 0
        host, rest = value[1:end], value[end + 1 :]
        return host, _port(rest[1:]) if rest.startswith(":") else 0
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, _port(port)
    return value, 0


def _port(text: str) -> int:
    return int(text) if text.isdigit() and int(text) <= 65535 else 0


# RFC 7239 4: forwarded-element = [ pair ] *( ";" [ pair ] ); pair = token "=" value;
# value = token / quoted-string. Elements are separated by commas.
_PAIR = re.compile(
    r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[!#$%&\'*+\-.^_`|~0-9A-Za-z:\[\]]*)\s*'
)
_QUOTED_PAIR = re.compile(r"\\(.)")


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """The elements of a ``Forwarded`` header, each a dict of lower-case parameter names to
    unquoted values. A malformed header gives an empty list: it is ignored as a whole."""
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    position = 0
    length = len(value)
    while position < length:
        char = value[position]
        if char == ",":
            elements.append(element)
            element = {}
            position += 1
            continue
        if char in "; \t":
            position += 1
            continue
        match = _PAIR.match(value, position)
        if match is None or (match.end() < length and value[match.end()] not in ";,"):
            return []
        name, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
        if name in element:
            return []  # RFC 7239 4: a parameter must not occur more than once per element
        element[name] = raw
        position = match.end()
    elements.append(element)
    return [element for element in elements if element]
