"""The server: binds the listening sockets, owns the event loop, signals and shutdown.

Life of one ``Server.serve()``:

1. load the app (``Config.load``), build the ``ServerContext`` every connection shares;
2. lifespan startup (a failure ends here with exit code 3);
3. bind (host/port, ``--uds``, ``--fd`` or sockets handed in) and serve; one timer calls
   ``ctx.tick()`` every second (Date header, idle keep-alive connections);
4. on SIGINT/SIGTERM (or ``should_exit``): stop accepting, let in-flight requests finish
   (bounded by ``--timeout-graceful-shutdown``), then lifespan shutdown. A second signal
   (``force_exit``) stops waiting and closes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from types import FrameType
from typing import Any

from fastasgi._http._core import HttpProtocol, ServerContext
from fastasgi.config import STARTUP_FAILURE, Config, ConfigError
from fastasgi.lifespan import Lifespan
from fastasgi.logging import make_access_log, style

HANDLED_SIGNALS = (
    signal.SIGINT,  # Ctrl+C
    signal.SIGTERM,  # kill <pid>, container stop
)

logger = logging.getLogger("fastasgi.error")


class StartupError(Exception):
    """The server could not start. The reason has already been logged on
    ``fastasgi.error``; ``exit_code`` is what the process should exit with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        #: True once the sockets are bound and the server accepts connections
        self.started = False
        #: set to stop the server gracefully (the first SIGINT/SIGTERM sets it)
        self.should_exit = False
        #: set to stop without waiting for connections (a second signal sets it)
        self.force_exit = False
        self.ctx: ServerContext | None = None
        self.lifespan: Lifespan | None = None
        self.servers: list[asyncio.AbstractServer] = []
        self._tick_handle: asyncio.TimerHandle | None = None
        self._ws_upgrade: Any = None
        self._uds_created = False

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on a new event loop (``--loop``) until told to stop."""
        _run_in_new_loop(self.serve(sockets=sockets), self.config.get_loop_factory())

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on the running event loop until told to stop. Raises ``ConfigError`` when
        the app cannot be loaded and ``StartupError`` when the server cannot start."""
        with self._capture_signals():
            await self._serve(sockets)

    async def _serve(self, sockets: list[socket.socket] | None) -> None:
        # Everything that can be refused is checked before anything is started.
        self.config.load()
        self._ws_upgrade = _ws_upgrade(self.config)
        process_id = os.getpid()
        logger.info(
            "Started server process [%d]",
            process_id,
            extra={"color_message": "Started server process [" + style("%d", fg="cyan") + "]"},
        )

        await self.startup(sockets)
        if self.started:
            await self.main_loop()
            await self.shutdown()

        logger.info(
            "Finished server process [%d]",
            process_id,
            extra={"color_message": "Finished server process [" + style("%d", fg="cyan") + "]"},
        )

    # -- startup ------------------------------------------------------------------------

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self.lifespan = Lifespan(config)
        self.ctx = ServerContext(
            config.loaded_app,
            loop,
            **_context_options(config),
            state=self.lifespan.state,
            ws_upgrade=self._ws_upgrade,
        )

        if not await self._unless_forced(self.lifespan.startup()):
            self.lifespan.cancel()
            return
        if self.lifespan.should_exit:
            raise StartupError("Application startup failed.", STARTUP_FAILURE)

        ctx = self.ctx

        def create_protocol() -> asyncio.Protocol:
            return HttpProtocol(ctx)

        try:
            self.servers = await self._bind(create_protocol, sockets)
        except OSError as exc:
            message = _bind_error_message(exc, config)
            logger.error(message)
            await self._unless_forced(self.lifespan.shutdown())
            raise StartupError(message, 1) from None

        if sockets is None:
            self._log_started_message(self.servers)
        self._schedule_tick(loop)
        self.started = True

    async def _bind(
        self, create_protocol: Callable[[], asyncio.Protocol], sockets: list[socket.socket] | None
    ) -> list[asyncio.AbstractServer]:
        config = self.config
        loop = asyncio.get_running_loop()
        backlog = config.backlog

        if sockets is not None:
            # Listening sockets handed in (by a supervisor or gunicorn).
            return [await loop.create_server(create_protocol, sock=sock, backlog=backlog) for sock in sockets]

        if config.fd is not None:
            # Socket activation: family and type are read from the descriptor.
            sock = socket.socket(fileno=config.fd)
            return [await loop.create_server(create_protocol, sock=sock, backlog=backlog)]

        if config.uds is not None:
            # Keep the mode of an existing socket file; a new one is made usable by any
            # local user (0o666), as uvicorn does.
            uds_perms = os.stat(config.uds).st_mode if os.path.exists(config.uds) else 0o666
            server = await loop.create_unix_server(create_protocol, path=config.uds, backlog=backlog)
            self._uds_created = True
            os.chmod(config.uds, uds_perms)
            return [server]

        server = await loop.create_server(create_protocol, host=config.host, port=config.port, backlog=backlog)
        return [server]

    def _log_started_message(self, servers: Sequence[asyncio.AbstractServer]) -> None:
        config = self.config
        if config.fd is not None:
            sock = servers[0].sockets[0]
            logger.info("fastasgi running on socket %s (Press CTRL+C to quit)", sock.getsockname())
            return
        if config.uds is not None:
            logger.info("fastasgi running on unix socket %s (Press CTRL+C to quit)", config.uds)
            return

        host = config.host or "0.0.0.0"
        port = servers[0].sockets[0].getsockname()[1] if servers[0].sockets else config.port
        address_format = "%s://[%s]:%d" if ":" in host else "%s://%s:%d"
        logger.info(
            f"fastasgi running on {address_format} (Press CTRL+C to quit)",
            "http",
            host,
            port,
            extra={
                "color_message": "fastasgi running on " + style(address_format, bold=True) + " (Press CTRL+C to quit)"
            },
        )

    def _schedule_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer for the whole server: ``ctx.tick()`` just after each wall-clock
        second, so the shared Date header turns over with the clock."""
        assert self.ctx is not None
        ctx = self.ctx

        def tick() -> None:
            self._tick_handle = loop.call_later(1.0 - time.time() % 1.0 + 0.001, tick)
            ctx.tick()

        self._tick_handle = loop.call_later(1.0 - time.time() % 1.0 + 0.001, tick)

    # -- running ------------------------------------------------------------------------

    async def main_loop(self) -> None:
        config = self.config
        assert self.ctx is not None
        loop = asyncio.get_running_loop()
        max_requests = config.limit_max_requests
        if max_requests is not None and config.limit_max_requests_jitter:
            max_requests += random.randint(0, config.limit_max_requests_jitter)
        last_notified = loop.time()

        while not self.should_exit:
            await asyncio.sleep(0.1)
            if max_requests is not None and self.ctx.total_requests >= max_requests:
                logger.info("Maximum request limit of %d exceeded. Terminating process.", max_requests)
                break
            if config.callback_notify is not None and loop.time() - last_notified >= config.timeout_notify:
                last_notified = loop.time()
                await config.callback_notify()

    # -- shutdown -----------------------------------------------------------------------

    async def shutdown(self) -> None:
        assert self.ctx is not None and self.lifespan is not None
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        logger.info("Shutting down")

        # Stop accepting; then no keep-alive: idle connections close now, busy ones after
        # their current response.
        for server in self.servers:
            server.close()
        ctx.begin_shutdown()

        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else loop.time() + timeout
        if self._busy() and not self.force_exit:
            logger.info("Waiting for connections to close. (CTRL+C to force quit)")
        while self._busy() and not self.force_exit:
            if deadline is not None and loop.time() >= deadline:
                logger.error(
                    "Graceful shutdown timed out after %ss: closing %d connection(s) with %d request(s) in flight.",
                    timeout,
                    len(ctx.connections),
                    ctx.active_requests,
                )
                break
            await asyncio.sleep(0.1)

        left = list(ctx.connections)
        if left and self.force_exit:
            logger.warning("Forced exit: closing %d connection(s).", len(left))
        for connection in left:
            connection.abort()
        for server in self.servers:
            await server.wait_closed()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self._uds_created and self.config.uds and os.path.exists(self.config.uds):
            os.remove(self.config.uds)

        if not self.force_exit:
            if not await self._unless_forced(self.lifespan.shutdown()):
                self.lifespan.cancel()

    def _busy(self) -> bool:
        assert self.ctx is not None
        return bool(self.ctx.active_requests or self.ctx.connections)

    async def _unless_forced(self, coro: Coroutine[Any, Any, None]) -> bool:
        """Await ``coro`` (a lifespan step, which runs the app's code and may hang), but
        give up when ``force_exit`` is set. True when ``coro`` finished."""
        task = asyncio.ensure_future(coro)
        while not task.done():
            await asyncio.wait([task], timeout=0.1)
            if self.force_exit and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return False
        task.result()
        return True

    # -- signals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _capture_signals(self) -> Generator[None, None, None]:
        # signal.signal rather than loop.add_signal_handler: it works on every loop and
        # the previous handlers can be put back when serve() returns. Signals can only be
        # handled in the main thread; elsewhere the caller stops us with should_exit.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original_handlers = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original_handlers.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
        else:
            self.should_exit = True


def _context_options(config: Config) -> dict[str, Any]:
    """The ``ServerContext`` keywords that come straight from settings."""
    extra_names = {name for name, _ in config.encoded_headers}
    return {
        "root_path": config.root_path,
        # A --header server:... or date:... replaces the default one instead of doubling it.
        "server_header": config.server_header and b"server" not in extra_names,
        "date_header": config.date_header and b"date" not in extra_names,
        "extra_headers": list(config.encoded_headers),
        "max_header_bytes": config.limit_request_head_size,
        "max_headers": config.limit_request_fields,
        "keep_alive_timeout": float(config.timeout_keep_alive),
        "access_log": make_access_log(config),
        "limit_concurrency": config.limit_concurrency,
    }


def _ws_upgrade(config: Config) -> Any:
    """The WebSocket upgrade hook for ``--ws``, or None (upgrades served as plain HTTP)."""
    if config.ws == "none":
        return None
    try:
        from fastasgi.websocket import create_ws_upgrade
    except ModuleNotFoundError as exc:
        if exc.name not in ("fastasgi.websocket", "websockets") and not str(exc.name).startswith("websockets."):
            raise
        if config.ws == "websockets":
            raise ConfigError(
                f"--ws websockets: WebSocket support is not available ({exc}); pip install websockets"
            ) from None
        return None
    return create_ws_upgrade(config)


def _bind_error_message(exc: OSError, config: Config) -> str:
    """One line: ``[Errno 98] address already in use: 127.0.0.1:8000``."""
    if config.fd is not None:
        where = f"fd {config.fd}"
    elif config.uds is not None:
        where = config.uds
    else:
        host = config.host or "0.0.0.0"
        where = f"[{host}]:{config.port}" if ":" in host else f"{host}:{config.port}"
    if exc.errno is not None and exc.errno > 0:
        reason = os.strerror(exc.errno)
    else:
        reason = exc.strerror or str(exc)
    reason = reason[:1].lower() + reason[1:]
    return f"[Errno {exc.errno}] {reason}: {where}"


def _run_in_new_loop(
    main: Coroutine[Any, Any, None], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> None:
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main)
        return
    # Python 3.10: asyncio.run() has no loop_factory.
    loop = loop_factory() if loop_factory is not None else asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def run(app: Any, **kwargs: Any) -> None:
    """Serve ``app`` (an ASGI application or a ``"module:attr"`` string) until SIGINT or
    SIGTERM. Keywords are ``Config``'s. On a configuration error or a failed startup the
    reason is logged in one line and the process exits (1, or 3 when the app's startup
    failed), as ``uvicorn.run`` does."""
    try:
        config = Config(app, **kwargs)
        Server(config).run()
    except ConfigError as exc:
        logger.error(str(exc), exc_info=exc.__cause__ if exc.show_cause else None)
        sys.exit(exc.exit_code)
    except StartupError as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        pass
