"""What runs inside a server process that a supervisor started.

A worker (``--workers``) talks to its supervisor through one pipe, one byte per message:

- ``.`` heartbeat. While the worker starts (imports the app, runs lifespan startup) a
  thread sends it: the process is alive. Once it serves, its event loop sends it: the loop
  turns. A worker the supervisor has not heard from for ``--timeout-worker-healthcheck``
  seconds is killed and replaced.
- ``R`` ready: lifespan startup is complete and the sockets accept.
- ``X`` retiring: ``--limit-max-requests`` was reached. The worker keeps serving; the
  supervisor starts its replacement and, once that one is ready, stops it with SIGTERM.

With ``--admin-bind``, a worker counts into its slot of the supervisor's shared counter
blocks (``fastasgi.admin.SharedMetrics``), attached right after the fork; the supervisor
serves the admin listener.

A worker writes every thread's Python stack to its stderr on ``STACKS_SIGNAL`` (SIGUSR2,
which no one else uses here: SIGUSR1 reloads the TLS certificate, SIGHUP/SIGTTIN/SIGTTOU are
the supervisor's, SIGINT/SIGTERM stop). ``faulthandler`` writes them from the C signal
handler, so a loop stuck in ``time.sleep`` or a C call still answers; the supervisor sends
it before it kills a worker that missed its heartbeat.

Exit codes: 0 after a normal stop, 3 (``STARTUP_FAILURE``) when the app could not be started
(import error, lifespan startup failure), 1 for a crash while serving.
"""

from __future__ import annotations

import asyncio
import faulthandler
import io
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from fastasgi import admin
from fastasgi.config import STARTUP_FAILURE, Config, ConfigError
from fastasgi.server import Server, StartupError

logger = logging.getLogger("fastasgi.error")

#: how long a stopping server process keeps just-accepted connections before the shutdown
#: closes the ones that have not sent a request (see ChildServer.shutdown)
FRESH_CONNECTION_GRACE = 0.2

BEAT = b"."
READY = b"R"
RETIRING = b"X"

#: the signal on which a worker writes its Python stacks to its stderr
STACKS_SIGNAL = signal.SIGUSR2


class ChildServer(Server):
    """A ``Server`` whose process a supervisor started and stops.

    The first SIGINT or SIGTERM starts the graceful stop; only a second SIGINT forces it.
    Ctrl+C in a terminal sends SIGINT to the whole process group, and the supervisor then
    forwards SIGTERM: that second signal must not cut the requests in flight short. The
    supervisor forces a stop with SIGINT (or, in the end, SIGKILL).

    Once serving it checks every ``check_interval`` seconds that its supervisor is still
    there, and stops gracefully when it is not (a supervisor killed with SIGKILL).
    """

    check_interval = 1.0
    #: SIGHUP is the supervisor's (a rolling restart); SIGUSR1, which the supervisor
    #: forwards, reloads the TLS certificate in place
    tls_reload_signals = tuple(sig for sig in Server.tls_reload_signals if sig != signal.SIGHUP)
    #: the supervisor reads the exit code: 0 after a graceful stop, not death by the signal
    reraise_signals = False

    def __init__(self, config: Config, supervisor_pid: int) -> None:
        super().__init__(config)
        self.supervisor_pid = supervisor_pid
        self._timer: asyncio.TimerHandle | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            self.should_exit = True
        elif sig == signal.SIGINT:
            self.force_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.on_started()
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.check_interval, self._periodic, loop)

    def on_started(self) -> None:
        """Called once the server accepts connections."""

    def drain_delay(self) -> float:
        # The supervisor is the one that drains (``--workers``: it turns /readyz 503 and
        # forwards the stop only once the delay is over); a worker it stops is being
        # replaced, or stops after the drain, and the ``--reload`` server is restarted for
        # an edit: none of them waits again.
        return 0.0

    def _periodic(self, loop: asyncio.AbstractEventLoop) -> None:
        self.on_check()
        if os.getppid() != self.supervisor_pid:
            self.supervisor_lost()
        self._timer = loop.call_later(self.check_interval, self._periodic, loop)

    def on_check(self) -> None:
        """Called every ``check_interval`` seconds from the event loop while serving (not
        ``on_tick``: that is the main loop's, every 0.1 s, with uvicorn's signature)."""

    def supervisor_lost(self) -> None:
        if not self.should_exit:
            logger.warning("The supervisor process [%d] is gone; shutting down.", self.supervisor_pid)
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting first, and give the connections accepted a moment ago the time to
        # show their request before the shutdown closes every connection without one: the
        # client of such a connection has sent (or is sending) a request, and it must not
        # fail because this process is being replaced. The other processes take the new
        # connections from the shared accept queue meanwhile.
        for server in self.servers:
            server.close()
        if not self.force_exit:
            await asyncio.sleep(FRESH_CONNECTION_GRACE)
        await super().shutdown()
        if self._timer is not None:
            self._timer.cancel()


class Heartbeat:
    """The worker's end of its pipe to the supervisor."""

    def __init__(self, fd: int, interval: float) -> None:
        self.fd = fd
        self.interval = interval
        #: set when a write fails for another reason than a full pipe: the supervisor is gone
        self.lost = False
        os.set_blocking(fd, False)

    def send(self, message: bytes) -> None:
        try:
            os.write(self.fd, message)
        except BlockingIOError:
            pass  # the supervisor is behind on reading: it has heard from us recently enough
        except OSError:
            self.lost = True

    def beat_until(self, done: threading.Event, on_lost: Callable[[], None]) -> None:
        """Heartbeats from a thread until ``done`` is set (used while the app starts)."""
        while not done.wait(self.interval):
            self.send(BEAT)
            if self.lost:
                on_lost()
                return


class WorkerServer(ChildServer):
    """The server of one ``--workers`` process: reports ready, heartbeats from its event
    loop, and announces ``--limit-max-requests`` (then serves on until it is stopped)."""

    serves_admin = False  # the supervisor does

    def __init__(self, config: Config, heartbeat: Heartbeat, supervisor_pid: int) -> None:
        super().__init__(config, supervisor_pid)
        self.heartbeat = heartbeat
        self.check_interval = heartbeat.interval
        #: set once serving (or once the process is on its way out): ends the startup beats
        self.serving = threading.Event()

    def on_started(self) -> None:
        self.serving.set()
        self.heartbeat.send(READY)

    def on_check(self) -> None:
        self.heartbeat.send(BEAT)
        if self.heartbeat.lost:
            self.supervisor_lost()

    def request_limit_reached(self, limit: int) -> bool:
        logger.info("Maximum request limit of %d exceeded. Waiting for the replacement process.", limit)
        self.heartbeat.send(RETIRING)
        return False


def run_worker(
    config: Config,
    sockets: list[socket.socket],
    heartbeat: Heartbeat,
    supervisor_pid: int,
    metrics_block: Any = None,
) -> int:
    """Serve on ``sockets`` as one worker until told to stop; return the exit code.
    ``metrics_block``: this worker's slot of the shared counter blocks (None: not counting)."""
    if metrics_block is not None:
        admin.count_into(metrics_block)
    dump_stacks_on(STACKS_SIGNAL)
    server = WorkerServer(config, heartbeat, supervisor_pid)
    starting = threading.Thread(
        target=heartbeat.beat_until, args=(server.serving, server.supervisor_lost), daemon=True
    )
    starting.start()
    try:
        server.run(sockets=sockets)
    except ConfigError as exc:
        logger.error(str(exc), exc_info=exc.__cause__ if exc.show_cause else None)
        return STARTUP_FAILURE
    except StartupError:
        return STARTUP_FAILURE  # already logged
    except Exception:
        logger.exception("Worker [%d] crashed", os.getpid())
        return 1 if server.started else STARTUP_FAILURE
    finally:
        server.serving.set()
    return 0


def dump_stacks_on(sig: int) -> None:
    """On ``sig``, write every thread's Python stack to stderr and go on (``chain=False``:
    the signal's default action, the end of the process, is not taken). A worker whose
    stderr has no file descriptor (closed, or replaced by an embedder) ignores ``sig``: it
    dies by the supervisor's SIGKILL that follows, counted as a heartbeat restart, not by
    this signal as if it had crashed."""
    try:
        faulthandler.register(sig, file=sys.stderr, all_threads=True, chain=False)
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        signal.signal(sig, signal.SIG_IGN)


def run_reload_child(config: Config, sockets: list[socket.socket], reloader_pid: int) -> None:
    """The target of the ``--reload`` server process (a fresh interpreter: ``spawn``)."""
    try:
        config.configure_logging()  # the Config arrived pickled: its __init__ did not run here
        ChildServer(config, reloader_pid).run(sockets=sockets)
    except ConfigError as exc:
        logger.error(str(exc), exc_info=exc.__cause__ if exc.show_cause else None)
        raise SystemExit(exc.exit_code) from None
    except StartupError as exc:
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        pass
