"""The process entry: ``run()`` serves with one ``Server``, or under a supervisor when the
settings ask for workers or reloading, and turns the outcome into the process's exit code.

Exit codes (uvicorn's, the README's "Exit codes" table): 0 after a normal stop; 1 for a bad
setting, or when the application's own code raised while it was imported or built; 3
(``STARTUP_FAILURE``) when the application cannot be found or called (import string, module,
attribute, factory), its lifespan startup failed, or an address cannot be bound. The
command line's usage errors (an unknown flag, a bad value) exit 2 before any of this.

This module is the top of the import graph: nothing in the package imports it but the
command line and ``fastasgi/__init__.py``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from fastasgi.config import Config, ConfigError
from fastasgi.server import Server, StartupError
from fastasgi.supervisors import supervise

logger = logging.getLogger("fastasgi.error")


#: INFO lines the command line has for the log, written by the next run() once Config has set
#: up logging (the settings taken from UVICORN_* variables: an image built for uvicorn changes
#: how fastasgi listens without a word otherwise)
PENDING_NOTICES: list[str] = []


def run(app: Any, **kwargs: Any) -> None:
    """Serve ``app`` (an ASGI application or a ``"module:attr"`` string) until SIGINT or
    SIGTERM. Keywords are ``Config``'s. On a configuration error or a failed startup the
    reason is logged in one line and the process exits (1 or 3, see above), as
    ``uvicorn.run`` does."""
    notices = list(PENDING_NOTICES)
    PENDING_NOTICES.clear()
    run_command(app, kwargs, notices)


def run_command(app: Any, options: Mapping[str, Any], notices: Sequence[str]) -> None:
    """``run()``'s body: ``notices`` are INFO lines logged once ``Config`` has set up logging."""
    try:
        config = Config(app, **options)
        for notice in notices:
            logger.info(notice)
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
