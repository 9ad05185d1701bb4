"""Process supervisors: ``--workers N`` (``Multiprocess``) and ``--reload`` (``ChangeReload``).

A supervisor binds the listening sockets itself, then runs the server in child processes
that inherit them. ``supervise(config)`` is what ``fastasgi.run`` calls when the settings
ask for one.
"""

from __future__ import annotations

import logging

from fastasgi.config import Config
from fastasgi.server import _bind_error_message
from fastasgi.supervisors._sockets import bind_listeners, close_listeners
from fastasgi.supervisors.multiprocess import Multiprocess
from fastasgi.supervisors.reload import ChangeReload

__all__ = ["ChangeReload", "Multiprocess", "supervise"]

logger = logging.getLogger("fastasgi.error")


def supervise(config: Config) -> int:
    """Serve ``config`` under the supervisor it asks for (``--reload`` wins over
    ``--workers``, as in uvicorn) and return the exit code. Raises ``ConfigError`` for a
    setting the supervisor cannot work with; a bind failure is logged and returns 1."""
    supervisor: Multiprocess | ChangeReload
    supervisor = ChangeReload(config) if config.reload else Multiprocess(config)
    try:
        sockets = bind_listeners(config)
    except OSError as exc:
        logger.error(_bind_error_message(exc, config))
        return 1
    try:
        return supervisor.run(sockets)
    finally:
        close_listeners(config, sockets)
