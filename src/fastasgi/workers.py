"""A gunicorn worker class: ``gunicorn -k fastasgi.workers.FastASGIWorker main:app``.

gunicorn's arbiter binds the sockets, forks the workers, restarts them and handles its
signals; each worker runs a fastasgi ``Server`` on the sockets it inherited. gunicorn's
settings pass through as below (the settings table's ``gunicorn`` column,
``fastasgi._settings``, says which gunicorn setting each fastasgi one is read from):

=========================  ==============================================================
gunicorn                   fastasgi
=========================  ==============================================================
``--bind``, ``--workers``  the arbiter's sockets and processes (``--reuse-port`` too)
``--keep-alive``           ``timeout_keep_alive``
``--timeout``              the worker heartbeat (``notify()`` every ``timeout / 2`` s from
                           the event loop: a blocked loop gets the worker restarted)
``--graceful-timeout``     ``timeout_graceful_shutdown`` (SIGTERM: finish in-flight requests)
``--max-requests``         ``limit_max_requests`` (gunicorn adds ``--max-requests-jitter``)
``--backlog``              ``backlog``
``--limit-request-fields`` ``limit_request_fields``
``--header-map``           ``header_map`` (``drop``, ``refuse`` or ``dangerous``: request
                           header fields whose name contains ``_``)
``--forwarded-allow-ips``  ``forwarded_allow_ips``
``--proxy-protocol``       ``proxy_protocol`` (``off``, ``v1``, ``v2``, ``auto``; a bare flag
                           or ``true`` is ``auto``). The peers trusted to send the header are
                           ``--forwarded-allow-ips``'s (fastasgi has one list of trusted
                           proxies): ``--proxy-allow-from`` is not read, and a worker says
                           so in the log when it differs.
``--keyfile``,             ``ssl_keyfile``, ``ssl_certfile``, ``ssl_ca_certs``,
``--certfile``, ...        ``ssl_cert_reqs``, ``ssl_ciphers``
``--access-logfile``,      fastasgi's access and error lines go to gunicorn's handlers;
``--error-logfile``,       without an access log file no access line is even formatted.
``--log-level``            A ``logconfig_dict`` (or ``--log-config-json``/``--log-config``)
                           that gives ``uvicorn.error``/``uvicorn.access`` (or fastasgi's
                           names) handlers is used instead (see ``_wire_logging``).
``--env``                  ``-e FASTASGI_WORKER_INIT=module:function``: fastasgi's
                           ``--worker-init``, called in each worker before gunicorn imports
                           the app there (with ``--preload`` the arbiter has imported it
                           already: the function still runs once per worker, after it)
=========================  ==============================================================

Signals (sent by the arbiter): SIGTERM stops gracefully; SIGINT and SIGQUIT stop at once
(gunicorn's quick shutdown); SIGUSR1 reopens the log files; SIGABRT (``--timeout``) runs
the ``worker_abort`` hook and exits. A worker whose app cannot start
(import error, lifespan startup failure) exits with gunicorn's ``WORKER_BOOT_ERROR`` (3), and
the arbiter stops instead of restarting it in a loop.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from fastasgi._settings import BY_NAME, SETTINGS
from fastasgi.config import Config, ConfigError, run_worker_init
from fastasgi.logging import reached_handlers
from fastasgi.server import Server, StartupError

__all__ = ["FastASGIWorker"]

#: the environment variable that sets ``--worker-init`` (the command line's name for it)
WORKER_INIT_ENV = BY_NAME["worker_init"].envvar_names[0]


class _GunicornServer(Server):
    #: gunicorn's arbiter reads the worker's exit code: 0 after a graceful stop
    reraise_signals = False

    def __init__(self, config: Config, worker: FastASGIWorker) -> None:
        super().__init__(config)
        self.worker = worker

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.should_exit = True
        if sig in (signal.SIGINT, signal.SIGQUIT):
            self.force_exit = True  # gunicorn's quick shutdown

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # The first heartbeat: until a worker has notified, gunicorn's arbiter cannot
            # tell that it stopped notifying.
            self.worker.notify()


class FastASGIWorker(Worker):
    """Serves an ASGI application with fastasgi inside a gunicorn worker process."""

    #: extra ``Config`` keywords; a subclass may set e.g. ``{"loop": "asyncio"}``
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "auto"}

    def init_signals(self) -> None:
        # gunicorn's own handlers would swallow the signals the server handles; the server
        # installs SIGINT/SIGTERM handlers when it starts and run() adds SIGQUIT.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.siginterrupt(signal.SIGUSR1, False)
        signal.signal(signal.SIGABRT, self.handle_abort)

    def load_wsgi(self) -> None:
        # gunicorn imports the app here, in the worker (init_process, after it has applied
        # --env): --worker-init comes first. A subclass may set CONFIG_KWARGS["worker_init"].
        worker_init = self.CONFIG_KWARGS.get("worker_init") or os.environ.get(WORKER_INIT_ENV) or None
        try:
            run_worker_init(worker_init)
        except ConfigError as exc:
            self.log.error("%s", exc, exc_info=exc.__cause__ if exc.show_cause else None)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        super().load_wsgi()

    def run(self) -> None:
        access_log = self._wire_logging()
        try:
            config = Config(**self.config_kwargs(access_log=access_log))
        except ConfigError as exc:
            self.log.error("%s", exc)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

        server = _GunicornServer(config, self)
        self._server = server
        signal.signal(signal.SIGQUIT, server.handle_exit)
        try:
            server.run(sockets=[listener.sock for listener in self.sockets])
        except ConfigError as exc:
            self.log.error("%s", exc, exc_info=exc.__cause__ if exc.show_cause else None)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        except StartupError:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)  # the reason is logged already
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def config_kwargs(self, access_log: bool) -> dict[str, Any]:
        """The ``Config`` keywords for gunicorn's settings (see the module docstring): the
        settings table's ``gunicorn`` column, and the worker's own wiring."""
        cfg = self.cfg
        kwargs: dict[str, Any] = {
            "app": self.wsgi,
            "log_config": None,  # gunicorn owns logging
            "access_log": access_log,
            "timeout_notify": self.timeout,  # the arbiter passes --timeout / 2
            "callback_notify": self.callback_notify,
        }
        kwargs.update(gunicorn_settings(cfg))
        if kwargs.get("limit_max_requests") is not None:
            kwargs["limit_max_requests"] = self.max_requests  # Worker.__init__ added the jitter
        if kwargs.get("proxy_protocol", "off") != "off" and set(getattr(cfg, "proxy_allow_ips", ())) != set(
            cfg.forwarded_allow_ips
        ):
            self.log.warning(
                "--proxy-protocol: the peers trusted to send the header are --forwarded-allow-ips's"
                " (%s); --proxy-allow-from (%s) is not used.",
                ",".join(cfg.forwarded_allow_ips),
                ",".join(cfg.proxy_allow_ips),
            )
        kwargs.update(self.CONFIG_KWARGS)
        return kwargs

    def handle_abort(self, sig: int, frame: FrameType | None) -> None:
        """The arbiter's SIGABRT for a worker that stopped notifying (``--timeout``): run
        the ``worker_abort`` hook (often used to dump tracebacks) and exit now. Not with
        ``sys.exit()`` as gunicorn's own workers: the signal lands in whatever code blocks
        the event loop, most likely the app's, which may well catch the exception."""
        self.alive = False
        try:
            self.cfg.worker_abort(self)
        finally:
            logging.shutdown()
            os._exit(1)

    async def callback_notify(self) -> None:
        """The server's heartbeat, from its event loop: tell the arbiter we are alive, and
        stop when the arbiter is gone."""
        self.notify()
        if os.getppid() != self.ppid and not self._server.should_exit:
            self.log.info("Parent changed, shutting down: %s", self)
            self._server.should_exit = True

    def _wire_logging(self) -> bool:
        """Send fastasgi's log lines to gunicorn's handlers, unless gunicorn's log config
        (``logconfig_dict``, ``--log-config-json``, ``--log-config``) routes them itself;
        True when the access lines reach a handler.

        gunicorn's handlers go on ``uvicorn.error`` and ``uvicorn.access``, as uvicorn's
        worker puts them, so an app's own ``uvicorn.error`` lines go there too; fastasgi's
        loggers propagate to them (``fastasgi.logging``). A config that gives any logger
        of the chain below the root (``fastasgi.access``, ``uvicorn.access``, ``uvicorn``,
        ``fastasgi``) a handler keeps it: its formatters and filters apply. The root is
        left out of the test: gunicorn's defaults give it a console handler of their own.
        """
        for ours, theirs, source in (
            ("fastasgi.error", "uvicorn.error", self.log.error_log),
            ("fastasgi.access", "uvicorn.access", self.log.access_log),
        ):
            if reached_handlers(logging.getLogger(ours), stop=logging.root):
                continue
            target = logging.getLogger(theirs)
            target.handlers = list(source.handlers)
            target.setLevel(source.level)
            target.propagate = False
        return logging.getLogger("fastasgi.access").hasHandlers()


def gunicorn_settings(cfg: Any) -> dict[str, Any]:
    """The ``Config`` keywords read from gunicorn's settings object: every setting of the
    table with a ``gunicorn`` name, normalised as Config would (gunicorn's boolean
    ``proxy_protocol`` becomes a mode). The TLS ones only when gunicorn serves TLS. gunicorn's
    0 for a setting that cannot be 0 means no limit: off where the setting can be off
    (``--max-requests 0``), fastasgi's default where it cannot (``--limit-request-fields 0``,
    ``--backlog 0``)."""
    kwargs: dict[str, Any] = {}
    for entry in SETTINGS:
        if entry.gunicorn is None or not hasattr(cfg, entry.gunicorn):
            continue  # not gunicorn's, or not in this gunicorn version
        if entry.name.startswith("ssl_") and not cfg.is_ssl:
            continue
        value = getattr(cfg, entry.gunicorn)
        if value == 0 and not isinstance(value, bool) and (entry.minimum or 0) >= 1:
            if not entry.off:
                continue
            value = None
        kwargs[entry.name] = entry.normalise(value)
    return kwargs
