"""The listening sockets of a supervisor, bound before it starts any server process.

Binding in the supervisor, once, is what lets server processes come and go without the
port ever closing: connections that arrive while a worker restarts wait in the accept
queue instead of being refused. The binding itself is ``Config.bind_endpoint``'s.

With ``--reuse-port`` there is one set of listeners per worker, all with ``SO_REUSEPORT``
on the same addresses (the kernel spreads new connections over them). The supervisor still
binds and holds every set, and a replacement worker takes over the set of the worker it
replaces, so that the connections queued on it are served rather than reset.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

from fastasgi.logging import style

if TYPE_CHECKING:
    from fastasgi.config import Config

logger = logging.getLogger("fastasgi.error")


def bind_listeners(config: Config) -> list[socket.socket]:
    """Bind every endpoint of ``config`` (listening), log where the server runs, and return
    the sockets. Raises ``BindError`` (an ``OSError``)."""
    sockets: list[socket.socket] = []
    try:
        for kind, where in config.endpoints:
            bound = config.bind_endpoint(kind, where, reuse_port=config.reuse_port)
            sockets.extend(bound)
            _log_listening(config, kind, bound)
    except BaseException:
        close_listeners(config, sockets)
        raise
    return sockets


def bind_like(config: Config, listeners: list[socket.socket]) -> list[socket.socket]:
    """``--reuse-port``: a new set of listeners on the addresses (and ports) of ``listeners``."""
    sockets: list[socket.socket] = []
    try:
        for listener in listeners:
            host, port = listener.getsockname()[:2]
            sockets.extend(config.bind_endpoint("tcp", (host, port), reuse_port=True))
    except BaseException:
        close_listeners(config, sockets)
        raise
    return sockets


def close_listeners(config: Config, sockets: list[socket.socket]) -> None:
    """Close sockets; remove the files of the unix sockets we bound (not of one handed in
    with ``--fd``)."""
    handed_in = {where for kind, where in config.endpoints if kind == "fd"}
    for sock in sockets:
        path = None
        if sock.family == socket.AF_UNIX and sock.fileno() not in handed_in:
            path = sock.getsockname()
        sock.close()
        if path and isinstance(path, str):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def _log_listening(config: Config, kind: str, sockets: list[socket.socket]) -> None:
    """The "running on" lines a single server logs when it binds (``Server``'s wording)."""
    suffix = " (Press CTRL+C to quit)"
    for sock in sockets:
        if kind == "fd":
            logger.info("fastasgi running on socket %s" + suffix, sock.getsockname())
        elif kind == "unix":
            logger.info("fastasgi running on unix socket %s" + suffix, sock.getsockname())
        else:
            host, port = sock.getsockname()[:2]
            address_format = "%s://[%s]:%d" if ":" in host else "%s://%s:%d"
            logger.info(
                "fastasgi running on " + address_format + suffix,
                "https" if config.is_ssl else "http",
                host,
                port,
                extra={"color_message": "fastasgi running on " + style(address_format, bold=True) + suffix},
            )
