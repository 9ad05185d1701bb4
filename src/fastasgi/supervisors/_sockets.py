"""The listening sockets a supervisor binds before it starts any server process.

Binding once, in the supervisor, is what lets workers come and go without the port ever
closing: every worker serves from the same accept queue (the kernel hands each connection
to whichever worker accepts first), and connections that arrive while a worker restarts wait
in that queue instead of being refused.

With ``--reuse-port`` each worker binds a listener of its own instead (``SO_REUSEPORT``: the
kernel spreads new connections over the listeners). The supervisor then holds the addresses
bound but not listening, so that ``--port 0`` resolves to one port that every worker binds,
and no other program can take the port between two workers.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from typing import TYPE_CHECKING

from fastasgi.logging import style

if TYPE_CHECKING:
    from fastasgi.config import Config

logger = logging.getLogger("fastasgi.error")


def bind_sockets(config: Config, *, reservation: bool = False) -> list[socket.socket]:
    """Bind what ``config`` asks for (``--fd``, ``--uds`` or ``--host``/``--port``), as
    ``loop.create_server`` would, and listen with ``--backlog``. With ``reservation`` the
    TCP sockets get ``SO_REUSEPORT`` and are not put in the listening state (see the module
    docstring). Raises ``OSError``."""
    if config.fd is not None:
        # Socket activation: the family and type are read from the descriptor.
        sockets = [socket.socket(fileno=config.fd)]
    elif config.uds is not None:
        sockets = [_bind_unix(config.uds)]
    else:
        sockets = _bind_tcp(config.host, config.port, reuse_port=reservation)
    if not reservation:
        for sock in sockets:
            sock.listen(config.backlog)
    return sockets


def bind_reuse_port_listeners(reservations: list[socket.socket], backlog: int) -> list[socket.socket]:
    """One worker's own listeners for ``--reuse-port``: a new socket on each reserved address."""
    listeners = []
    try:
        for reserved in reservations:
            sock = socket.socket(reserved.family, socket.SOCK_STREAM)
            listeners.append(sock)
            _set_tcp_options(sock, reuse_port=True)
            sock.bind(reserved.getsockname())
            sock.listen(backlog)
    except OSError:
        for sock in listeners:
            sock.close()
        raise
    return listeners


def _bind_tcp(host: str | None, port: int, reuse_port: bool) -> list[socket.socket]:
    # As asyncio's create_server: no host (or "") means every interface, and a name is bound
    # on each address it resolves to.
    infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos))
    sockets: list[socket.socket] = []
    try:
        for family, sockaddr in addresses:
            if sockets and port == 0:
                # Port 0 on several addresses: the first bind picks the port, the rest follow it.
                sockaddr = (sockaddr[0], sockets[0].getsockname()[1], *sockaddr[2:])
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            _set_tcp_options(sock, reuse_port=reuse_port)
            sock.bind(sockaddr)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _set_tcp_options(sock: socket.socket, reuse_port: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        # One socket per family, as asyncio does: no dual-stack IPv6 socket that would
        # collide with the IPv4 one.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


def _bind_unix(path: str) -> socket.socket:
    # As Server._bind: an existing socket file is a leftover and is replaced, keeping its
    # mode; a new one is made usable by any local user (0o666), as uvicorn does.
    mode = 0o666
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISSOCK(st.st_mode):
            mode = stat.S_IMODE(st.st_mode)
            os.remove(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
    except OSError:
        sock.close()
        raise
    return sock


def log_listening(config: Config, sockets: list[socket.socket]) -> None:
    """The "running on" line a single server logs when it binds, logged by the supervisor."""
    if config.fd is not None:
        logger.info("fastasgi running on socket %s (Press CTRL+C to quit)", sockets[0].getsockname())
        return
    if config.uds is not None:
        logger.info("fastasgi running on unix socket %s (Press CTRL+C to quit)", config.uds)
        return
    host = config.host or "0.0.0.0"
    address_format = "%s://[%s]:%d" if ":" in host else "%s://%s:%d"
    logger.info(
        f"fastasgi running on {address_format} (Press CTRL+C to quit)",
        "https" if config.is_ssl else "http",
        host,
        sockets[0].getsockname()[1],
        extra={"color_message": "fastasgi running on " + style(address_format, bold=True) + " (Press CTRL+C to quit)"},
    )


def close_sockets(config: Config, sockets: list[socket.socket]) -> None:
    """Close the supervisor's sockets; remove the ``--uds`` file it created."""
    for sock in sockets:
        sock.close()
    if config.uds is not None and config.fd is None:
        try:
            os.remove(config.uds)
        except FileNotFoundError:
            pass
