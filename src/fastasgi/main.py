"""The process entry: ``run()`` serves with one ``Server``, or under a supervisor when the
settings ask for workers or reloading, and turns the outcome into the process's exit code.

Exit codes (uvicorn's): 0 after a normal stop, 1 for a bad setting, an application that
cannot be imported or an address that cannot be bound, 3 (``STARTUP_FAILURE``) when the
application's lifespan startup failed.

This module is the top of the import graph: nothing in the package imports it but the
command line and ``fastasgi/__init__.py``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from fastasgi.config import Config, ConfigError
from fastasgi.server import Server, StartupError
from fastasgi.supervisors import supervise

logger = logging.getLogger("fastasgi.error")


def run(app: Any, **kwargs: Any) -> None:
    """Serve ``app`` (an ASGI application or a ``"module:attr"`` string) until SIGINT or
    SIGTERM. Keywords are ``Config``'s. On a configuration error or a failed startup the
    reason is logged in one line and the process exits (1, or 3 when the app's startup
    failed), as ``uvicorn.run`` does."""
    try:
        config = Config(app, **kwargs)
        if config.supervised:
            exit_code = supervise(config)
            if exit_code:
                sys.exit(exit_code)
            return
        server = Server(config)
        # The process exits 0 after a graceful stop, SIGTERM included, rather than dying of
        # the signal raised again (see Server.reraise_signals).
        server.reraise_signals = False
        server.run()
    except ConfigError as exc:
        logger.error(str(exc), exc_info=exc.__cause__ if exc.show_cause else None)
        sys.exit(exc.exit_code)
    except StartupError as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        pass
