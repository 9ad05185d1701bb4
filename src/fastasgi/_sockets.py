"""The listening sockets: ``--bind`` values, binding, bind errors and "running on" lines.

An endpoint is where to listen: ``("tcp", (host, port))``, ``("unix", path)`` or
``("fd", n)`` (``Config.endpoints``). ``bind()`` makes the listening sockets of a list of
endpoints, all or none; the single server, the supervisors and ``Config.bind_sockets`` all
bind through it. With ``--workers`` the supervisor binds once and its workers inherit the
sockets, so the port stays open while workers come and go: connections that arrive while a
worker restarts wait in the accept queue instead of being refused. With ``--reuse-port``
each worker gets a set of its own (``bind_like()``), all with ``SO_REUSEPORT`` on the same
addresses, and the kernel spreads new connections over them; the supervisor still holds
every set, and a replacement worker takes over the set of the worker it replaces, so that
the connections queued on it are served rather than reset.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Iterable, Sequence
from typing import Any

from fastasgi import _defaults
from fastasgi.logging import style

#: mode of a unix socket file we create (uvicorn's): the proxy in front of the server usually
#: runs as another user; restrict access with the permissions of the socket's directory.
UDS_MODE = 0o666

Endpoint = tuple[str, Any]

logger = logging.getLogger("fastasgi.error")


class BindError(OSError):
    """A listening socket could not be made; ``where`` names the address
    (``127.0.0.1:8000``, ``[::1]:8000``, a unix socket path, ``fd 3``)."""

    def __init__(self, exc: OSError, where: str) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        self.where = where


def parse_bind(value: str) -> Endpoint:
    """One ``--bind`` value -> an endpoint: ``HOST:PORT``, ``HOST`` (the default port),
    ``[IPV6]:PORT``, ``:PORT`` (all interfaces) -> ("tcp", (host, port)); ``unix:PATH`` ->
    ("unix", path); ``fd://N`` -> ("fd", n). Raises ``ValueError`` saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("is not an address")
    value = value.strip()
    if value.startswith("unix:"):
        path = value[len("unix:") :]
        if not path:
            raise ValueError("has no socket path after 'unix:'")
        return ("unix", path)
    if value.startswith("fd://"):
        number = value[len("fd://") :]
        if not number.isdigit():
            raise ValueError("is not fd://N with N a file descriptor number")
        return ("fd", int(number))
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            raise ValueError("has no ']' after the IPv6 address")
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("is not [IPV6]:PORT")
        port_text = rest[1:] if rest else str(_defaults.PORT)
    elif value.count(":") > 1:
        raise ValueError("is an IPv6 address without brackets; write it as [ADDRESS]:PORT")
    else:
        host, _, port_text = value.partition(":") if ":" in value else (value, "", str(_defaults.PORT))
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"has an invalid port {port_text!r}")
    return ("tcp", (host or None, int(port_text)))


def describe_endpoint(kind: str, where: Any) -> str:
    """An endpoint as error messages show it: ``127.0.0.1:8000``, ``[::1]:8000``, a path,
    ``fd 3``."""
    if kind == "fd":
        return f"fd {where}"
    if kind == "unix":
        return str(where)
    host, port = where
    host = host or "0.0.0.0"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- binding ---------------------------------------------------------------------------


def bind(endpoints: Sequence[Endpoint], backlog: int, reuse_port: bool = False) -> list[socket.socket]:
    """The listening sockets of every endpoint, bound and listening. A host name binds each
    address it resolves to, on one port (the first one's, for port 0). A new unix socket
    file gets mode ``UDS_MODE``; a stale one (nobody listens on it) is replaced and keeps
    its mode. All or nothing: on failure the sockets already made are closed, the unix
    socket files already made removed, and ``BindError`` is raised."""
    sockets: list[socket.socket] = []
    made_paths: list[str] = []
    try:
        for kind, where in endpoints:
            if kind == "fd":
                sockets.append(_socket_from_fd(where))
            elif kind == "unix":
                sockets.append(_bind_unix(where, backlog))
                made_paths.append(where)
            else:
                sockets.extend(_bind_tcp(where[0], where[1], backlog, reuse_port))
    except BaseException:
        close_all(sockets)
        remove_unix_files(made_paths)
        raise
    return sockets


def bind_like(listeners: Iterable[socket.socket], backlog: int) -> list[socket.socket]:
    """``--reuse-port``: a new set of listeners, with ``SO_REUSEPORT``, on the addresses
    (and ports) of the TCP sockets ``listeners``. All or nothing, as ``bind()``."""
    sockets: list[socket.socket] = []
    try:
        for listener in listeners:
            host, port = listener.getsockname()[:2]
            sockets.extend(_bind_tcp(host, port, backlog, reuse_port=True))
    except BaseException:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def unix_paths(endpoints: Iterable[Endpoint]) -> list[str]:
    """The socket files ``bind(endpoints)`` makes (not those of sockets handed in with
    ``--fd``): they are removed when the server stops."""
    return [where for kind, where in endpoints if kind == "unix"]


def remove_unix_files(paths: Iterable[str]) -> None:
    """Remove socket files we made; a path that is no longer a socket is left alone."""
    for path in paths:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.remove(path)


def _socket_from_fd(fd: int) -> socket.socket:
    try:
        # Socket activation: family and type are read from the descriptor.
        return socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(exc, f"fd {fd}") from None


def _bind_unix(path: str, backlog: int) -> socket.socket:
    # Keep the mode of a socket file that is being replaced (a restart); a new one gets
    # UDS_MODE.
    mode = UDS_MODE
    try:
        status = os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BindError(exc, path) from None
    else:
        if not stat.S_ISSOCK(status.st_mode) or _unix_socket_in_use(path):
            raise BindError(OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)), path)
        mode = stat.S_IMODE(status.st_mode)
        os.unlink(path)  # left by a server that is gone
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(exc, path) from None
    return sock


def _unix_socket_in_use(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _bind_tcp(host: str | None, port: int, backlog: int, reuse_port: bool) -> list[socket.socket]:
    where = describe_endpoint("tcp", (host, port))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(OSError(exc.errno, exc.strerror), where) from None
    seen = set()
    addresses = []
    for family, _, _, _, sockaddr in infos:
        if (family, sockaddr[0]) not in seen:
            seen.add((family, sockaddr[0]))
            addresses.append((family, sockaddr))
    sockets: list[socket.socket] = []
    try:
        for family, sockaddr in addresses:
            if sockets and port == 0:
                sockaddr = (sockaddr[0], sockets[0].getsockname()[1], *sockaddr[2:])
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and len(addresses) > 1:
                # Binding "::" next to "0.0.0.0": the IPv6 socket must leave IPv4 alone.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(sockaddr)
                sock.listen(backlog)
            except OSError as exc:
                shown = describe_endpoint("tcp", (sockaddr[0], sockaddr[1])) if len(addresses) > 1 else where
                raise BindError(exc, shown) from None
    except BaseException:
        close_all(sockets)
        raise
    return sockets


# -- what is logged --------------------------------------------------------------------


def bind_error_message(exc: OSError, endpoints: Sequence[Endpoint]) -> str:
    """One line: ``[Errno 98] address already in use: 127.0.0.1:8000``."""
    if isinstance(exc, BindError):
        where = exc.where
    else:
        where = ", ".join(describe_endpoint(kind, value) for kind, value in endpoints)
    if exc.errno is not None and exc.errno > 0:
        reason = os.strerror(exc.errno)
    else:
        reason = exc.strerror or str(exc)
    reason = reason[:1].lower() + reason[1:]
    return f"[Errno {exc.errno}] {reason}: {where}"


def log_running(sockets: Iterable[socket.socket], endpoints: Sequence[Endpoint], tls: bool) -> None:
    """One "fastasgi running on ..." line per listening socket that ``bind(endpoints)`` made."""
    handed_in = {where for kind, where in endpoints if kind == "fd"}
    suffix = " (Press CTRL+C to quit)"
    for sock in sockets:
        if sock.fileno() in handed_in:
            logger.info("fastasgi running on socket %s" + suffix, sock.getsockname())
        elif sock.family == socket.AF_UNIX:
            logger.info("fastasgi running on unix socket %s" + suffix, sock.getsockname())
        else:
            host, port = sock.getsockname()[:2]
            address_format = "%s://[%s]:%d" if ":" in host else "%s://%s:%d"
            logger.info(
                "fastasgi running on " + address_format + suffix,
                "https" if tls else "http",
                host,
                port,
                extra={"color_message": "fastasgi running on " + style(address_format, bold=True) + suffix},
            )
