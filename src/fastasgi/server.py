"""The server: binds the listening sockets, owns the event loop, signals and shutdown.

Life of one ``Server.serve()``, which is ``startup()``, ``main_loop()`` and ``shutdown()``
inside ``capture_signals()``, uvicorn's pieces with uvicorn's names (an embedder may call
them one by one):

1. load the app (``Config.load``), build the ``ServerContext`` every connection shares;
   with ``--admin-bind`` (and no supervisor serving it), bind the admin listener and count
   into a private block (``fastasgi.admin``);
2. lifespan startup (a failure ends here with exit code 3);
3. bind (host/port, ``--uds``, ``--fd`` or sockets handed in; a failure: exit code 3) and serve; one timer calls
   ``ctx.tick()`` every second (Date header, idle keep-alive connections), from the start of
   lifespan startup: its last run is the event loop's heartbeat (``/livez``);
4. on SIGINT/SIGTERM (or ``should_exit``, the way to stop a server that runs outside the
   main thread, where it installs no signal handlers): ``/readyz`` turns 503 at once; the drain
   (``--drain-delay``) keeps serving normally for that long, then stop accepting, let
   in-flight requests finish (bounded by ``--timeout-graceful-shutdown``), then lifespan
   shutdown. A second signal (``force_exit``) ends the drain delay and the waiting, and
   closes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from types import FrameType
from typing import Any

from fastasgi import _sockets, admin
from fastasgi._accesslog import AccessLog, make_access_log
from fastasgi._http._core import HttpProtocol, ServerContext
from fastasgi._tls import CertificateReloader
from fastasgi.config import STARTUP_FAILURE, Config
from fastasgi.lifespan import Lifespan
from fastasgi.logging import style
from fastasgi.middleware.proxy_protocol import proxy_protocol_factory

HANDLED_SIGNALS = (
    signal.SIGINT,  # Ctrl+C
    signal.SIGTERM,  # kill <pid>, container stop
)
#: with TLS: reload the certificate (fastasgi._tls); without TLS they keep their default
#: action (SIGHUP: a closed terminal ends the server, as it ends uvicorn)
TLS_RELOAD_SIGNALS: tuple[signal.Signals, ...] = (
    (signal.SIGHUP, signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else ()
)

logger = logging.getLogger("fastasgi.error")


class StartupError(Exception):
    """The server could not start. The reason has already been logged on
    ``fastasgi.error``; ``exit_code`` is what the process should exit with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ServerState:
    """uvicorn's ``Server.server_state``: what the connections of one server share, read
    from its ``ServerContext`` (``Server.ctx``, which exists from ``startup()`` on); before
    that, no requests, connections or tasks. Read-only: the server keeps the counts."""

    def __init__(self, server: Server) -> None:
        self._server = server

    @property
    def total_requests(self) -> int:
        ctx = self._server.ctx
        return 0 if ctx is None else int(ctx.total_requests)

    @property
    def connections(self) -> set[Any]:
        """The open connections (HTTP and WebSocket): ``shutdown()`` and ``abort()`` each."""
        ctx = self._server.ctx
        return set() if ctx is None else ctx.connections

    @property
    def tasks(self) -> set[asyncio.Task[Any]]:
        """The request tasks still running."""
        ctx = self._server.ctx
        return set() if ctx is None else ctx.tasks


class Server:
    #: whether this server runs the ``--admin-bind`` listener itself (a ``--workers``
    #: worker does not: its supervisor serves the counts of every worker)
    serves_admin = True
    #: the signals that reload the TLS certificate (a worker leaves SIGHUP to its supervisor)
    tls_reload_signals: tuple[signal.Signals, ...] = TLS_RELOAD_SIGNALS

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
        #: unix socket files created here, removed at shutdown
        self._unix_paths: list[str] = []
        self._access_log: AccessLog | None = None
        self._admin: admin.AdminServer | None = None
        self._metrics: admin.LocalMetrics | None = None
        #: monotonic time of the last tick: the event loop's heartbeat for /livez
        self.last_beat = time.monotonic()
        #: with TLS: swaps in a new certificate (SIGHUP/SIGUSR1, or the files changing)
        self.tls: CertificateReloader | None = None
        self._tls_watch: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._prepared = False
        #: time.time() of the last ``callback_notify`` call (uvicorn's attribute)
        self.last_notified = 0.0
        #: uvicorn's shared state: request count, connections and tasks of this server
        self.server_state = ServerState(self)
        #: the stop signals handle_exit received, raised again once serve() has returned
        self._captured_signals: list[int] = []
        #: set once --limit-max-requests has been announced to a server that serves on
        self._request_limit_announced = False

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on a new event loop (``--loop``) until told to stop."""
        loop_factory = self.config.get_loop_factory()  # may refuse --loop: before serve() exists
        _run_in_new_loop(self.serve(sockets=sockets), loop_factory)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on the running event loop until told to stop: ``startup()``, ``main_loop()``
        and ``shutdown()``, inside ``capture_signals()``. Raises ``ConfigError`` when the app
        cannot be loaded and ``StartupError`` when the server cannot start."""
        with self.capture_signals():
            await self._serve(sockets)

    async def _serve(self, sockets: list[socket.socket] | None = None) -> None:
        # Everything that can be refused is checked before anything is started.
        self._prepare()
        process_id = os.getpid()
        logger.info(
            "Started server process [%d]",
            process_id,
            extra={"color_message": "Started server process [" + style("%d", fg="cyan") + "]"},
        )

        try:
            await self.startup(sockets=sockets)
            # not started: a forced stop during lifespan startup, nothing to shut down
            if self.started:
                if not self.should_exit:
                    await self.main_loop()
                await self.shutdown(sockets=sockets)
        finally:
            # also after an exception: nothing of this server keeps running
            await self._release()

        logger.info(
            "Finished server process [%d]",
            process_id,
            extra={"color_message": "Finished server process [" + style("%d", fg="cyan") + "]"},
        )

    def _prepare(self) -> None:
        """Load the app and settle what depends on it, once: ``serve()`` does it before its
        first log line, ``startup()`` when an embedder calls it directly."""
        if self._prepared:
            return
        self.config.load()
        self._ws_upgrade = _ws_upgrade(self.config)
        self._prepared = True

    async def _release(self) -> None:
        """Stop what startup started besides the listeners; safe to call more than once."""
        self._cancel_tick()
        self._stop_admin()
        await self._stop_tls_watch()

    # -- startup ------------------------------------------------------------------------

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Lifespan startup, then listen on ``sockets`` (or bind the settings' addresses);
        ``started`` is True after it unless ``force_exit`` cut lifespan startup short.
        Loads the app first when ``serve()`` has not."""
        self._prepare()
        try:
            await self._startup(sockets)
        except BaseException:
            await self._release()
            raise
        if not self.started:
            await self._release()

    async def _startup(self, sockets: list[socket.socket] | None) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self._loop = loop
        if config.ssl is not None:
            self.tls = CertificateReloader(config, config.ssl)
        self._start_admin()
        self.lifespan = Lifespan(config)
        options = _context_options(config)
        if self.tls is not None:
            options["tls_extension"] = self.tls.extension
        self._access_log = options["access_log"]
        self.ctx = ServerContext(
            config.loaded_app,
            loop,
            **options,
            state=self.lifespan.state,
            ws_upgrade=self._ws_upgrade,
        )
        # From now on: the app's lifespan startup runs on this loop, and /livez must see
        # whether it blocks the loop.
        self._schedule_tick(loop)

        if not await self._unless_forced(self.lifespan.startup()):
            self.lifespan.cancel()
            return
        if self.lifespan.should_exit:
            raise StartupError("Application startup failed.", STARTUP_FAILURE)

        ctx = self.ctx

        def create_protocol() -> asyncio.Protocol:
            return HttpProtocol(ctx)

        if config.proxy_protocol != "off":
            # each connection reads its PROXY protocol header first, then becomes HttpProtocol
            create_protocol = proxy_protocol_factory(
                ctx,
                config.proxy_protocol,
                config.trusted_proxies,
                config.timeout_request_head,
                config.timeout_keep_alive,
            )

        try:
            self.servers = await self._listen(create_protocol, sockets)
        except OSError as exc:
            message = _sockets.bind_error_message(exc, config.endpoints)
            logger.error(message)
            await self._unless_forced(self.lifespan.shutdown())
            raise StartupError(message, STARTUP_FAILURE) from None

        self.started = True
        if self.tls is not None:
            self._tls_watch = loop.create_task(self.tls.watch())

    async def _listen(
        self, create_protocol: Callable[[], asyncio.Protocol], sockets: list[socket.socket] | None
    ) -> list[asyncio.AbstractServer]:
        """Serve on ``sockets`` (handed in by a supervisor or gunicorn, which have logged
        where), or on the endpoints of the settings, bound here (every one before any is
        served, so that a failure leaves nothing half-started)."""
        config = self.config
        loop = asyncio.get_running_loop()
        own = sockets is None
        if sockets is None:
            sockets = _sockets.bind(config.endpoints, config.backlog, config.reuse_port)
            self._unix_paths = _sockets.unix_paths(config.endpoints)
        servers: list[asyncio.AbstractServer] = []
        try:
            for sock in sockets:
                servers.append(
                    await loop.create_server(
                        create_protocol, sock=sock, backlog=config.backlog, ssl=config.ssl
                    )
                )
        except BaseException:
            for server in servers:
                server.close()
            if own:
                _sockets.close_all(sockets)
                self._remove_unix_sockets()
            raise
        if own:
            _sockets.log_running(sockets, config.endpoints, tls=config.ssl is not None)
        return servers

    def _start_admin(self) -> None:
        """``--admin-bind``: bind the admin listener (a bind error is reported as one of the
        app's addresses would be) and count from now on."""
        endpoint = self.config.admin_endpoint
        if endpoint is None or not self.serves_admin or self._admin is not None:
            return
        metrics = admin.LocalMetrics()
        try:
            self._admin = admin.start(
                endpoint, metrics.collect, admin.Health(self.check_live, self.check_ready)
            )
        except OSError as exc:
            message = _sockets.bind_error_message(exc, [endpoint])
            logger.error(message)
            raise StartupError(message, STARTUP_FAILURE) from None
        metrics.attach()
        self._metrics = metrics

    def _stop_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._metrics is not None:
            self._metrics.detach()
            self._metrics = None

    def _remove_unix_sockets(self) -> None:
        _sockets.remove_unix_files(self._unix_paths)
        self._unix_paths = []

    def _schedule_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer for the whole server: ``ctx.tick()`` just after each wall-clock
        second, so the shared Date header turns over with the clock."""
        assert self.ctx is not None
        ctx = self.ctx

        def tick() -> None:
            self._tick_handle = loop.call_later(1.0 - time.time() % 1.0 + 0.001, tick)
            self.last_beat = time.monotonic()
            ctx.tick()

        self.last_beat = time.monotonic()
        self._tick_handle = loop.call_later(1.0 - time.time() % 1.0 + 0.001, tick)

    def _cancel_tick(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None

    async def _stop_tls_watch(self) -> None:
        task, self._tls_watch = self._tls_watch, None
        if task is None:
            return
        assert self.tls is not None
        self.tls.stop()
        try:
            await asyncio.wait_for(task, 1.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        except Exception:
            logger.exception("Watching the TLS certificate files failed")

    # -- health (the admin listener's threads call these) ---------------------------------

    def check_live(self) -> tuple[bool, str]:
        """``/livez``: the tick, a timer on the event loop, ran within
        ``--timeout-worker-healthcheck``; a loop that an app blocks does not run it."""
        bound = float(self.config.timeout_worker_healthcheck)
        return admin.judge_liveness(time.monotonic(), [("server", self.last_beat)], bound)

    def check_ready(self) -> tuple[bool, str]:
        """``/readyz``: lifespan startup complete and accepting, and no stop asked for."""
        return admin.judge_readiness(self.should_exit, int(self.started), 1, self.started, workers=False)

    # -- running ------------------------------------------------------------------------

    async def main_loop(self) -> None:
        """Wait until ``on_tick()`` says to stop: every 0.1 s, ``counter`` counting the
        ticks (it wraps after a day of them, as uvicorn's)."""
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.1)
            should_exit = await self.on_tick(counter)

    async def on_tick(self, counter: int) -> bool:
        """One turn of the main loop; True ends it. Once a second (``counter`` a multiple
        of 10) ``callback_notify`` is called when ``timeout_notify`` has passed. The Date
        header and idle timeouts do not wait for this: the tick timer turns them over on
        the wall-clock second."""
        config = self.config
        if counter % 10 == 0 and config.callback_notify is not None:
            now = time.time()
            if now - self.last_notified > config.timeout_notify:
                self.last_notified = now
                await config.callback_notify()
        if self.should_exit:
            return True
        limit = self.limit_max_requests
        if (
            limit is not None
            and not self._request_limit_announced
            and self.server_state.total_requests >= limit
        ):
            if self.request_limit_reached(limit):
                return True
            self._request_limit_announced = True
        return False

    @functools.cached_property
    def limit_max_requests(self) -> int | None:
        """``--limit-max-requests`` plus this server's draw of ``--limit-max-requests-jitter``,
        drawn once, so that servers started together do not all stop together."""
        limit = self.config.limit_max_requests
        if limit is None or not self.config.limit_max_requests_jitter:
            return limit
        return int(limit + random.randint(0, self.config.limit_max_requests_jitter))

    def request_limit_reached(self, limit: int) -> bool:
        """``--limit-max-requests`` reached: True ends the main loop (the process stops, as
        uvicorn's does); a worker under a supervisor says so and keeps serving instead."""
        logger.info("Maximum request limit of %d exceeded. Terminating process.", limit)
        return True

    # -- shutdown -----------------------------------------------------------------------

    def drain_delay(self) -> float:
        """Seconds to keep serving after the stop signal (``--drain-delay``)."""
        return float(self.config.drain_delay or 0)

    async def drain(self) -> None:
        """After the first SIGTERM/SIGINT: ``/readyz`` already answers 503 (it reads
        ``should_exit``); keep serving normally, keep-alive included, for the drain delay,
        so that the load balancer stops sending new connections before the listener closes.
        A second signal (``force_exit``) ends it. Not after ``--limit-max-requests``, which
        is no stop signal."""
        delay = self.drain_delay()
        if not self.should_exit or delay <= 0 or self.force_exit:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        logger.info("Draining: /readyz answers 503; still serving for %gs (--drain-delay).", delay)
        while not self.force_exit:
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.sleep(min(0.05, left))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """After a stop signal, the drain (``--drain-delay``); then stop accepting, finish
        what is in flight (within ``--timeout-graceful-shutdown``, then cancel it), lifespan
        shutdown. ``sockets``, those given to ``startup()``, are closed with the listeners,
        as uvicorn closes them."""
        assert self.ctx is not None and self.lifespan is not None
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        await self.drain()
        logger.info("Shutting down")

        # Stop accepting; then no keep-alive: idle connections close now, busy ones after
        # their current response (with "connection: close", RFC 9112 9.6). Open websockets
        # get 1012 (Service Restart, IANA's WebSocket close code registry, RFC 6455 11.7)
        # rather than 1001 (Going Away, RFC 6455 7.4.1): what stops here is this process,
        # not the service; the client should reconnect, and its next connection reaches
        # another process or instance (a drain, a rolling restart, a recycled worker).
        for server in self.servers:
            server.close()
        for sock in sockets or ():
            sock.close()  # closing twice is harmless: the listener may have closed it already
        ctx.begin_shutdown()

        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else loop.time() + timeout
        timed_out = False
        if self._busy() and not self.force_exit:
            logger.info("Waiting for connections to close. (CTRL+C to force quit)")
        while self._busy() and not self.force_exit:
            if deadline is not None and loop.time() >= deadline:
                timed_out = True
                logger.error(
                    "Graceful shutdown timed out after %ss: closing %d connection(s) with %d request(s) in flight.",
                    timeout,
                    len(ctx.connections),
                    ctx.active_requests,
                )
                break
            await asyncio.sleep(0.05)

        left = list(ctx.connections)
        if left and self.force_exit:
            logger.warning("Forced exit: closing %d connection(s).", len(left))
        # What is still running is cancelled; its connection is closed without a response.
        tasks = [task for task in ctx.tasks if not task.done()]
        if tasks:
            logger.warning("Cancelling %d request task(s) still running.", len(tasks))
        for task in tasks:
            task.cancel()
        for connection in left:
            connection.abort()
        if tasks and timed_out:
            # Give the cancelled apps a moment to run their cleanup (finally blocks).
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            if pending:
                logger.error("%d request task(s) did not finish after being cancelled.", len(pending))
        for server in self.servers:
            await server.wait_closed()
        self._remove_unix_sockets()

        if not self.force_exit:
            if not await self._unless_forced(self.lifespan.shutdown()):
                self.lifespan.cancel()
        # The tick runs until here: /livez keeps judging the loop during lifespan shutdown.
        await self._release()
        if self._access_log is not None:
            self._access_log.flush()

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

    #: raise the captured stop signals again once ``capture_signals()`` has put the previous
    #: handlers back, as uvicorn does, so that what embeds the server gets their usual effect
    #: (SIGINT: KeyboardInterrupt; SIGTERM's default: the process ends). ``fastasgi.run()``
    #: and the supervised servers turn it off: they exit 0 after a graceful stop.
    reraise_signals = True

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Handle the stop signals (``install_signal_handlers()``) for the time of the
        block, then put the previous handlers back and, unless ``reraise_signals`` is
        False, raise the signals received meanwhile again, the last one first. Outside the
        main thread, where Python cannot install handlers, it does nothing: stop such a
        server with ``should_exit``."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = HANDLED_SIGNALS + (self.tls_reload_signals if self.config.is_ssl else ())
        # Taken here rather than by install_signal_handlers(), so that a subclass that
        # overrides it (a no-op, its own handlers) is undone all the same.
        original_handlers = {sig: signal.getsignal(sig) for sig in signals}
        self._captured_signals = []
        try:
            self.install_signal_handlers()
            yield
        finally:
            for sig, handler in original_handlers.items():
                if handler is not None:  # None: installed from C, cannot be put back
                    signal.signal(sig, handler)
        captured, self._captured_signals = self._captured_signals, []
        if self.reraise_signals:
            # one at a time: a Python handler (KeyboardInterrupt) ends the loop at the first
            for sig in reversed(captured):
                signal.raise_signal(sig)

    # The old private name, kept for code that used it.
    _capture_signals = capture_signals

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM call ``handle_exit``; with TLS, SIGHUP and SIGUSR1 reload the
        certificate. With ``signal.signal`` rather than ``loop.add_signal_handler``: it
        works on every loop and the previous handlers can be put back. Only in the main
        thread (elsewhere Python refuses). A subclass may make it a no-op, as test suites
        that run the server in a thread do."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, self.handle_exit)
        if self.config.is_ssl:
            for sig in self.tls_reload_signals:
                signal.signal(sig, self.handle_tls_reload)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A stop signal: the first asks for a graceful stop (``should_exit``), a second,
        SIGINT or SIGTERM, forces it (``force_exit``)."""
        self._captured_signals.append(sig)
        if self.should_exit:
            self.force_exit = True
        else:
            self.should_exit = True

    def handle_tls_reload(self, sig: int, frame: FrameType | None) -> None:
        """SIGHUP/SIGUSR1 with TLS: reload the certificate on the event loop (the handler
        runs between two bytecodes of whatever the loop was doing)."""
        loop, tls = self._loop, self.tls
        if loop is None or tls is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(tls.reload, f"Received {signal.Signals(sig).name}")


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
        "header_map": config.header_map,
        "http2": config.http2,
        "http2_only": config.http == "h2",
        "reset_contextvars": config.reset_contextvars,
        "h2_max_concurrent_streams": config.http2_max_concurrent_streams,
        "h2_initial_stream_window_size": config.http2_initial_stream_window_size,
        "h2_initial_connection_window_size": config.http2_initial_connection_window_size,
        "h2_max_frame_size": config.http2_max_frame_size,
        "h2_max_headers_size": config.http2_max_headers_size,
        "access_log": make_access_log(config.access_log_format) if config.access_log else None,
        "limit_concurrency": config.limit_concurrency,
        "max_body_size": config.limit_request_body,
        "timeout_request_head": config.timeout_request_head or None,
        "timeout_request_body": config.timeout_request_body or None,
        "timeout_request": config.timeout_request or None,
    }


def _ws_upgrade(config: Config) -> Any:
    """The WebSocket upgrade hook for ``--ws``, or None (upgrades served as plain HTTP)."""
    if config.ws == "none":
        return None
    # auto, websockets and websockets-sansio: fastasgi's own implementation (no dependency)
    from fastasgi.websocket import create_ws_upgrade

    return create_ws_upgrade(config)


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
