"""Process supervisors: ``--workers N`` (``Multiprocess``) and ``--reload`` (``ChangeReload``).

A supervisor binds the listening sockets itself, then runs the server in child processes
that inherit them (see ``fastasgi._sockets``). ``supervise(config)`` is what ``fastasgi.run``
calls when the settings ask for one.
"""

from __future__ import annotations

import logging

from fastasgi import _sockets
from fastasgi.config import STARTUP_FAILURE, Config
from fastasgi.supervisors.multiprocess import Multiprocess
from fastasgi.supervisors.reload import ChangeReload

__all__ = ["ChangeReload", "Multiprocess", "supervise"]

logger = logging.getLogger("fastasgi.error")


def supervise(config: Config) -> int:
    """Serve ``config`` under the supervisor it asks for (``--reload`` wins over
    ``--workers``, as in uvicorn) and return the exit code. Raises ``ConfigError`` for a
    setting the supervisor cannot work with; a bind failure is logged and returns 3, as
    uvicorn exits when its supervisor cannot bind."""
    supervisor: Multiprocess | ChangeReload
    supervisor = ChangeReload(config) if config.reload else Multiprocess(config)
    try:
        sockets = _sockets.bind(config.endpoints, config.backlog, config.reuse_port)
    except OSError as exc:
        logger.error(_sockets.bind_error_message(exc, config.endpoints))
        return STARTUP_FAILURE
    _sockets.log_running(sockets, config.endpoints, tls=config.is_ssl)
    try:
        return supervisor.run(sockets)
    finally:
        _sockets.close_all(sockets)
        _sockets.remove_unix_files(_sockets.unix_paths(config.endpoints))
