"""Process supervisors: ``--workers N`` (``Multiprocess``) and ``--reload`` (``ChangeReload``).

A supervisor binds the listening sockets itself, then runs the server in child processes
that inherit them. ``supervise(config)`` is what ``fastasgi.run`` calls when the settings
ask for one.
"""

from __future__ import annotations

import logging

from fastasgi.config import Config
from fastasgi.server import _bind_error_message
from fastasgi.supervisors._sockets import bind_sockets, close_sockets, log_listening
from fastasgi.supervisors.multiprocess import Multiprocess
from fastasgi.supervisors.reload import ChangeReload

__all__ = ["ChangeReload", "Multiprocess", "needs_supervisor", "supervise"]

logger = logging.getLogger("fastasgi.error")


def needs_supervisor(config: Config) -> bool:
    return bool(config.reload or (config.workers or 1) > 1)


def supervise(config: Config) -> int:
    """Serve ``config`` under the supervisor it asks for (``--reload`` wins over
    ``--workers``, as in uvicorn) and return the exit code. Raises ``ConfigError`` for a
    setting the supervisor cannot work with; a bind failure is logged and returns 1."""
    supervisor: Multiprocess | ChangeReload
    if config.reload:
        supervisor = ChangeReload(config)
        reservation = False
    else:
        supervisor = Multiprocess(config)
        reservation = config.reuse_port
    try:
        sockets = bind_sockets(config, reservation=reservation)
    except OSError as exc:
        logger.error(_bind_error_message(exc, config))
        return 1
    try:
        log_listening(config, sockets)
        return supervisor.run(sockets)
    finally:
        close_sockets(config, sockets)
