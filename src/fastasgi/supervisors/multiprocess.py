"""``--workers N``: one supervisor process and N server processes (workers).

The supervisor binds the sockets, forks the workers (each runs ``Server.serve`` on the
inherited sockets; with ``--reuse-port`` each worker has a set of listeners of its own, see
``fastasgi._sockets``) and then only watches: it never imports the application and never runs an
event loop. Workers are forked rather
than spawned: a worker starts in milliseconds, nothing has to be pickled, and each one
imports the application itself, so a restarted worker runs the code that is on disk now.

Signals to the supervisor:

- SIGINT, SIGTERM: graceful stop. ``/readyz`` turns 503 at once; with ``--drain-delay``
  the workers keep serving, untold, for that long (the supervisor drains, so that nothing
  is refused while the load balancer still sends traffic; a worker does not wait again).
  Then every worker gets SIGTERM and finishes what it has in flight (each enforces
  ``--timeout-graceful-shutdown`` itself); a worker still running ``KILL_GRACE`` seconds
  after that timeout gets SIGKILL. Exit 0. A second signal forces the workers to stop now
  (SIGINT to each; during the drain delay it also ends the delay), a third kills them.
- SIGHUP: rolling restart. One worker at a time: start a new one, wait until it reports
  ready (within ``--timeout-worker-healthcheck``), then stop an old one gracefully. There
  is never less than N workers accepting, so a steady client sees no failed request. A new
  worker that fails to start aborts the restart and the old workers keep serving.
- SIGTTIN / SIGTTOU: one worker more / one less (never less than one).
- SIGUSR1: with TLS, forwarded to every worker, each of which reloads the certificate in
  place (``fastasgi._tls``: no restart, no connection dropped; a certificate that does not
  load is logged and the old one stays). SIGHUP re-reads it too, with new workers: a new
  worker whose certificate does not load fails to start, which aborts the restart.

A worker that dies is replaced (and logged). A worker that exits with code 3 before it was
ever ready could not start the app and would fail the same way again: the supervisor stops
everything and exits 3 rather than restart it in a loop. A worker the supervisor has not
heard from for ``--timeout-worker-healthcheck`` seconds is killed and replaced; once a
worker serves, its heartbeat comes from its event loop, so this also catches an event loop
that is blocked (uvicorn only checks that the process answers).

Recycling: a worker that reaches ``--limit-max-requests`` says so and keeps serving; one
whose RSS passes ``--limit-max-memory`` (read from /proc by the supervisor) or that has run
for ``--limit-worker-lifetime`` is found by the supervisor. Each limit gets its own random
jitter per worker. A recycled worker is replaced the way SIGHUP replaces one: the new worker
starts, and only once it is ready is the old one told to stop, so the listener never goes
without a ready worker, with ``--workers 1`` too (uvicorn and granian let the old one go
first). If the replacement cannot start, the old worker keeps serving and the supervisor
tries again ``RECYCLE_RETRY`` seconds later.

With ``--admin-bind`` the supervisor serves the admin listener (``fastasgi.admin``) from a
thread: before the first fork it maps the shared counter blocks, gives each worker a slot
(a rolling restart's new worker gets its own), and when a worker exits adds its slot into
the retired counts and frees it. ``/metrics`` shows the sum, so counts survive restarts,
and the restarts themselves by cause (``RESTART_CAUSES``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Generator
from types import FrameType

from fastasgi import _sockets, admin
from fastasgi.config import STARTUP_FAILURE, Config, ConfigError
from fastasgi.logging import style
from fastasgi.supervisors._child import READY, RETIRING, Heartbeat, run_worker

logger = logging.getLogger("fastasgi.error")

#: after ``--timeout-graceful-shutdown``, how long a stopping worker still gets (for the
#: app's lifespan shutdown) before it is killed
KILL_GRACE = 3.0
#: a second stop signal during the drain delay: seconds between the SIGTERM that starts the
#: workers' stop and the SIGINT that forces it. Sent together, both would be pending at
#: once and SIGINT (the lower number) handled first, as the graceful one (signal(7)).
FORCE_AFTER = 0.1

#: a recycled worker whose replacement failed to start: seconds until the next attempt
RECYCLE_RETRY = 10.0
#: seconds between two readings of a worker's RSS (--limit-max-memory)
MEMORY_CHECK_INTERVAL = 1.0
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

HANDLED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGCHLD,  # only to wake the loop up and reap at once
)
#: supervisor signals a worker ignores: they are meant for the supervisor, and a shell
#: or terminal may send them to the whole process group (SIGTTIN/SIGTTOU would stop it).
#: SIGUSR1 too, until a worker with TLS installs its reload handler: one forwarded while
#: the worker starts must not end it.
IGNORED_IN_WORKERS = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1)

#: why a worker was replaced (fastasgi_worker_restarts_total{cause}): it died unasked; it
#: was killed after its healthcheck failed; it reached --limit-max-requests,
#: --limit-max-memory or --limit-worker-lifetime; a rolling restart (SIGHUP) replaced it
RESTART_CAUSES = ("crash", "heartbeat", "max_requests", "max_memory", "lifetime", "reload")


class Worker:
    """The supervisor's record of one worker process."""

    __slots__ = (
        "cause",
        "fd",
        "kill_at",
        "killed",
        "last_seen",
        "lifetime",
        "listeners",
        "memory_checked",
        "memory_limit",
        "pid",
        "ready",
        "ready_at",
        "retry_at",
        "slot",
        "started_at",
    )

    def __init__(
        self, pid: int, fd: int, listeners: list[socket.socket], now: float, slot: int | None = None
    ) -> None:
        self.pid = pid
        #: its counter block in the shared metrics (None: not counting)
        self.slot = slot
        #: the listening sockets it serves on
        self.listeners = listeners
        #: read end of the worker's pipe; None once the worker has closed it
        self.fd: int | None = fd
        self.started_at = now
        self.last_seen = now
        self.ready = False
        #: when a stopping worker gets SIGKILL (None: it may take as long as it needs)
        self.kill_at: float | None = None
        self.killed = False
        #: when it reported ready (--limit-worker-lifetime counts from there)
        self.ready_at = now
        #: why it is to be replaced (a RESTART_CAUSES entry); None: it is not
        self.cause: str | None = None
        #: a replacement that failed to start: not before this time again
        self.retry_at = 0.0
        #: its recycling limits, jitter included (None: none)
        self.lifetime: float | None = None
        self.memory_limit: int | None = None
        #: when its RSS was last read (0: not yet since it is ready)
        self.memory_checked = 0.0


class Multiprocess:
    def __init__(self, config: Config) -> None:
        if not hasattr(os, "fork"):
            raise ConfigError("--workers needs os.fork(): it is not available on this platform")
        self.config = config
        self.target = config.workers or 1
        self.healthcheck = float(config.timeout_worker_healthcheck)
        self.beat_interval = max(0.05, min(1.0, self.healthcheck / 4))
        self.pid = os.getpid()
        #: the sets of listening sockets: one shared by every worker, or with --reuse-port
        #: one per worker
        self.listener_sets: list[list[socket.socket]] = []

        #: the serving slots (starting or ready): there are ``target`` of them
        self.workers: list[Worker] = []
        #: told to stop, or stopping by themselves (--limit-max-requests); not counted
        self.leaving: list[Worker] = []
        #: rolling restart: the new worker not yet ready, and the old ones still to replace
        self.candidate: Worker | None = None
        self.to_replace: list[Worker] = []

        self.stopping = False
        self.stop_signals = 0
        #: --drain-delay: when the workers are told to stop (None: not draining)
        self.drain_until: float | None = None
        #: when the workers stopping after a forced drain get their SIGINT
        self._force_at: float | None = None
        #: every worker has been ready once (the first startup is over)
        self.served = False
        #: the last turn of the supervisor's loop (its own heartbeat, for /livez)
        self.last_turn = time.monotonic()
        self.exit_code = 0
        self._signals: list[int] = []
        self._selector: selectors.BaseSelector | None = None
        self._wakeup: tuple[int, int] | None = None
        self._last_check = time.monotonic()
        #: --admin-bind: the workers' counter blocks and the listener serving them
        self.metrics: admin.SharedMetrics | None = None
        self.admin: admin.AdminServer | None = None

    # -- the loop -----------------------------------------------------------------------

    def run(self, sockets: list[socket.socket]) -> int:
        """Supervise until stopped; return the exit code (0, or 3 after a startup failure).
        ``sockets`` are the bound listeners; the caller closes them afterwards."""
        self.listener_sets = [sockets]
        logger.info(
            "Started parent process [%d]",
            self.pid,
            extra={"color_message": "Started parent process [" + style("%d", fg="cyan", bold=True) + "]"},
        )
        if not self._start_admin():
            return 1
        try:
            self._supervise()
        finally:
            self._stop_admin()
        for listeners in self.listener_sets:
            if listeners is not sockets:  # the caller's, which it closes
                _sockets.close_all(listeners)
        logger.info(
            "Stopping parent process [%d]",
            self.pid,
            extra={"color_message": "Stopping parent process [" + style("%d", fg="cyan", bold=True) + "]"},
        )
        return self.exit_code

    def _supervise(self) -> None:
        with self._signal_handling(), selectors.DefaultSelector() as selector:
            assert self._wakeup is not None
            selector.register(self._wakeup[0], selectors.EVENT_READ, None)
            self._selector = selector
            self._maintain_count()
            while not (self.stopping and not self._all()):
                self._wait(self._wait_timeout())
                self.last_turn = time.monotonic()
                self._handle_signals()
                self._reap()
                if not self.stopping:
                    self._check_health()
                    self._check_limits()
                    self._advance_restart()
                    self._maintain_count()
                    self._end_drain()
                if not self.served and sum(worker.ready for worker in self.workers) >= self.target:
                    self.served = True
                self._enforce_kill_deadlines()
            self._selector = None

    def _start_admin(self) -> bool:
        """--admin-bind: map the counter blocks and serve them. False (logged) when the
        address cannot be bound."""
        endpoint = self.config.admin_endpoint
        if endpoint is None:
            return True
        # Slots for the workers at any time: a generous default; more for many workers.
        metrics = admin.SharedMetrics(max(admin.SLOTS, 4 * self.target))
        for cause in RESTART_CAUSES:
            metrics.restarts[cause] = 0
        try:
            self.admin = admin.start(
                endpoint, metrics.collect, admin.Health(self.check_live, self.check_ready)
            )
        except OSError as exc:
            logger.error(_sockets.bind_error_message(exc, [endpoint]))
            metrics.close()
            return False
        self.metrics = metrics
        return True

    def _stop_admin(self) -> None:
        if self.admin is not None:
            self.admin.close()
            self.admin = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    # -- health (the admin listener's threads call these) ---------------------------------

    def check_live(self) -> tuple[bool, str]:
        """``/livez``: the supervisor's loop turns, and every worker that serves or starts was
        heard from (its event loop's heartbeat, or its startup thread's) within half of
        ``--timeout-worker-healthcheck``. A stuck worker shows from then until it is gone:
        ``_check_health`` kills it once the whole bound has passed."""
        now = time.monotonic()
        beats = [("supervisor", self.last_turn)]
        beats += [(f"worker [{worker.pid}]", worker.last_seen) for worker in list(self._counted())]
        for group, bound in ((beats[:1], self.healthcheck), (beats[1:], self.healthcheck / 2)):
            live, reason = admin.judge_liveness(now, group, bound)
            if not live:
                return live, reason
        return True, f"ok: {len(beats)} event loops answering"

    def check_ready(self) -> tuple[bool, str]:
        """``/readyz``: every worker has completed lifespan startup (then: at least one is
        ready, see ``admin.judge_readiness``), and no stop was asked for."""
        ready = sum(1 for worker in list(self.workers) if worker.ready)
        draining = self.stop_signals > 0 or self.stopping
        return admin.judge_readiness(draining, ready, self.target, self.served, workers=True)

    def _count_restart(self, cause: str) -> None:
        if self.metrics is not None:
            self.metrics.count_restart(cause)

    def _all(self) -> list[Worker]:
        return self._counted() + self.leaving

    def _counted(self) -> list[Worker]:
        """The workers that serve or will: the slots plus a rolling restart's new worker."""
        return self.workers + ([self.candidate] if self.candidate is not None else [])

    def _wait_timeout(self) -> float:
        """Up to the next heartbeat check, or the end of the drain delay, or the forced
        stop's SIGINT, whichever comes first."""
        timeout = min(0.5, self.beat_interval)
        now = time.monotonic()
        for when in (self.drain_until if not self.stopping else None, self._force_at):
            if when is not None:
                timeout = min(timeout, max(0.0, when - now))
        return timeout

    def _wait(self, timeout: float) -> None:
        """Sleep until a signal, a message from a worker, or ``timeout``; read the messages."""
        assert self._selector is not None and self._wakeup is not None
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                _drain(self._wakeup[0])
            else:
                self._read_messages(key.data)

    def _read_messages(self, worker: Worker) -> None:
        assert worker.fd is not None
        data = b""
        while True:
            try:
                chunk = os.read(worker.fd, 4096)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._close_pipe(worker)  # the worker has exited (or is about to)
                break
            data += chunk
        if not data:
            return
        worker.last_seen = time.monotonic()
        if READY in data and not worker.ready:
            worker.ready = True
            worker.ready_at = worker.last_seen
        if RETIRING in data and worker in self.workers:
            self._recycle(worker, "max_requests", "reached the request limit")

    def _close_pipe(self, worker: Worker) -> None:
        if worker.fd is None:
            return
        if self._selector is not None:
            self._selector.unregister(worker.fd)
        os.close(worker.fd)
        worker.fd = None

    # -- starting and stopping workers --------------------------------------------------

    def _spawn(self, replacing: Worker | None = None) -> Worker | None:
        try:
            listeners = self._listeners_for_new_worker(replacing)
        except OSError as exc:
            logger.error("Could not bind the listeners of a new child process: %s", exc)
            return None
        slot = self.metrics.take() if self.metrics is not None else None
        if self.metrics is not None and slot is None:
            logger.warning("No free metrics slot: the new child process will not be counted.")
        read_fd, write_fd = os.pipe()
        # What is buffered now would be written twice, by both processes.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            if self.metrics is not None and slot is not None:
                self.metrics.release(slot)
            logger.error("Could not start a child process: %s", exc)
            return None
        if pid == 0:  # the worker
            os.close(read_fd)
            self._run_child(write_fd, listeners, slot)  # never returns
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        if self.metrics is not None and slot is not None:
            self.metrics.assign(slot, pid)
        worker = Worker(pid, read_fd, listeners, time.monotonic(), slot)
        self._set_limits(worker)
        assert self._selector is not None
        self._selector.register(read_fd, selectors.EVENT_READ, worker)
        return worker

    def _listeners_for_new_worker(self, replacing: Worker | None) -> list[socket.socket]:
        if not self.config.reuse_port:
            return self.listener_sets[0]
        if replacing is not None:
            return replacing.listeners  # the queue of the old worker goes to its successor
        in_use = {id(worker.listeners) for worker in self._counted()}
        for listeners in self.listener_sets:
            if id(listeners) not in in_use:
                return listeners
        listeners = _sockets.bind_like(self.listener_sets[0], self.config.backlog)
        self.listener_sets.append(listeners)
        return listeners

    def _close_unused_listeners(self) -> None:
        """--reuse-port after SIGTTOU: close the sets no worker will serve on again (a
        listener nobody accepts from would keep its share of the connections waiting)."""
        in_use = {id(worker.listeners) for worker in self._counted()}
        for listeners in list(self.listener_sets):
            if len(self.listener_sets) <= self.target:
                break
            if id(listeners) not in in_use:
                self.listener_sets.remove(listeners)
                _sockets.close_all(listeners)

    def _run_child(self, fd: int, listeners: list[socket.socket], slot: int | None) -> None:
        code = 1
        try:
            self._leave_supervisor(listeners)
            heartbeat = Heartbeat(fd, self.beat_interval)
            block = self.metrics.block(slot) if self.metrics is not None and slot is not None else None
            code = run_worker(self.config, listeners, heartbeat, self.pid, block)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            logger.exception("Child process [%d] failed", os.getpid())
        finally:
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def _leave_supervisor(self, listeners: list[socket.socket]) -> None:
        """In a new worker: drop what belongs to the supervisor (its signal handling, its
        pipes to the other workers, the other workers' listeners)."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)  # until the server installs its own
        for sig in IGNORED_IN_WORKERS:
            signal.signal(sig, signal.SIG_IGN)
        assert self._wakeup is not None
        for fd in self._wakeup:
            os.close(fd)
        for other in self._all():
            if other.fd is not None:
                os.close(other.fd)
        for other_listeners in self.listener_sets:
            if other_listeners is not listeners:
                for sock in other_listeners:
                    sock.close()
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self.admin is not None:
            # The listener stays the supervisor's (its threads were not forked).
            self.admin.close_in_child()
            self.admin = None

    def _stop(self, worker: Worker) -> None:
        """Ask a worker to stop gracefully; it moves to ``leaving``."""
        _kill(worker.pid, signal.SIGTERM)
        timeout = self.config.timeout_graceful_shutdown
        if timeout is not None and worker.kill_at is None:
            worker.kill_at = time.monotonic() + timeout + KILL_GRACE
        self.leaving.append(worker)
        logger.info(
            "Waiting for child process [%d]",
            worker.pid,
            extra={"color_message": "Waiting for child process [" + style("%d", fg="cyan") + "]"},
        )

    def _set_limits(self, worker: Worker) -> None:
        """Draw the worker's recycling limits: each configured limit plus its jitter."""
        config = self.config
        if config.limit_worker_lifetime is not None:
            jitter = float(config.limit_worker_lifetime_jitter or 0)
            worker.lifetime = float(config.limit_worker_lifetime) + random.uniform(0, jitter)
        if config.limit_max_memory is not None:
            worker.memory_limit = config.limit_max_memory + random.randint(0, config.limit_max_memory_jitter)

    def _recycle(self, worker: Worker, cause: str, why: str) -> None:
        """Queue a serving worker for replacement: ``_advance_restart`` starts its successor
        and stops it once the successor is ready."""
        if worker.cause is not None or worker not in self.workers:
            return
        worker.cause = cause
        self.to_replace.append(worker)
        logger.info("Child process [%d] %s; starting a replacement.", worker.pid, why)

    def _check_limits(self) -> None:
        """--limit-worker-lifetime and --limit-max-memory: queue the workers past theirs."""
        now = time.monotonic()
        for worker in self.workers:
            if not worker.ready or worker.cause is not None:
                continue
            if worker.lifetime is not None and now - worker.ready_at >= worker.lifetime:
                self._recycle(worker, "lifetime", f"has served for {now - worker.ready_at:.0f}s")
            elif worker.memory_limit is not None and now - worker.memory_checked >= MEMORY_CHECK_INTERVAL:
                first = worker.memory_checked == 0.0
                worker.memory_checked = now
                rss = _rss_mib(worker.pid)
                if rss is None or rss <= worker.memory_limit:
                    continue
                if first:
                    # Its successor would start as large: recycling it would loop.
                    logger.error(
                        "Child process [%d] uses %d MiB right after startup, more than its"
                        " --limit-max-memory of %d MiB: it will not be recycled for memory.",
                        worker.pid,
                        rss,
                        worker.memory_limit,
                    )
                    worker.memory_limit = None
                    continue
                self._recycle(
                    worker, "max_memory", f"uses {rss} MiB, over its limit of {worker.memory_limit} MiB"
                )

    def _stop_all(self) -> None:
        self.stopping = True
        self.to_replace.clear()
        running = self.workers + ([self.candidate] if self.candidate is not None else [])
        self.workers, self.candidate = [], None
        for worker in running:
            self._stop(worker)
        # No worker will be started again: drop the supervisor's copies of the listening
        # sockets, so that each closes when the last worker serving on it closes its own.
        # Kept open here, it would take new connections into an accept queue that nobody
        # reads any more (the client waits, then is reset); closed, the client is refused
        # at once and a load balancer retries elsewhere, as with one process.
        for listeners in self.listener_sets:
            for sock in listeners:
                sock.close()

    def _maintain_count(self) -> None:
        while len(self.workers) < self.target:
            worker = self._spawn()
            if worker is None:
                return  # fork failed (logged); try again on the next turn
            self.workers.append(worker)
        while len(self.workers) > self.target:
            self._stop(self.workers.pop())
        if self.config.reuse_port:
            self._close_unused_listeners()

    # -- watching -----------------------------------------------------------------------

    def _reap(self) -> None:
        for worker in self._all():
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: its status is lost
                pid, status = worker.pid, 1 << 8
            if pid:
                self._exited(worker, os.waitstatus_to_exitcode(status))

    def _exited(self, worker: Worker, code: int) -> None:
        if worker.fd is not None:
            self._read_messages(worker)  # what it said last (READY, RETIRING) still counts
            self._close_pipe(worker)
        if worker.slot is not None and self.metrics is not None:
            self.metrics.release(worker.slot)  # its counts stay in the totals
            worker.slot = None
        how = _describe_exit(code)

        if worker in self.leaving:
            self.leaving.remove(worker)
            if code != 0 and not worker.killed:
                logger.warning("Child process [%d] %s while stopping.", worker.pid, how)
            return

        if worker is self.candidate:
            self.candidate = None
            self._abort_restart()
            logger.error(
                "New child process [%d] %s before it was ready; keeping the old workers and aborting the restart.",
                worker.pid,
                how,
            )
            return

        self.workers.remove(worker)
        if self.stopping:
            return
        if code == STARTUP_FAILURE and not worker.ready:
            logger.error("Child process [%d] failed to start, stopping the parent process.", worker.pid)
            self.exit_code = STARTUP_FAILURE
            self._stop_all()
            return
        self._count_restart("heartbeat" if worker.killed else "crash")
        logger.warning(
            "Child process [%d] died (%s)",
            worker.pid,
            how,
            extra={"color_message": "Child process [" + style("%d", fg="cyan") + "] died (%s)"},
        )

    def _check_health(self) -> None:
        now = time.monotonic()
        if now - self._last_check > self.healthcheck:
            # The supervisor itself was not running (suspended): it cannot judge the silence.
            for worker in self._all():
                worker.last_seen = max(worker.last_seen, now)
        self._last_check = now
        watched = self.workers + ([self.candidate] if self.candidate is not None else [])
        for worker in watched:
            if not worker.killed and now - worker.last_seen > self.healthcheck:
                logger.error(
                    "Child process [%d] did not answer its healthcheck within %gs; killing it.",
                    worker.pid,
                    self.healthcheck,
                )
                _kill(worker.pid, signal.SIGKILL)
                worker.killed = True

    def _end_drain(self) -> None:
        """The drain delay is over: tell the workers to stop."""
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            logger.info("Drain delay over: stopping the child processes.")
            self._stop_all()

    def _enforce_kill_deadlines(self) -> None:
        now = time.monotonic()
        if self._force_at is not None and now >= self._force_at:
            self._force_at = None
            for worker in self.leaving:
                _kill(worker.pid, signal.SIGINT)
        for worker in self.leaving:
            if worker.kill_at is not None and now >= worker.kill_at and not worker.killed:
                logger.warning("Child process [%d] did not stop in time; killing it.", worker.pid)
                _kill(worker.pid, signal.SIGKILL)
                worker.killed = True

    # -- rolling restart ----------------------------------------------------------------

    def _advance_restart(self) -> None:
        candidate = self.candidate
        if candidate is not None:
            if candidate.ready:
                self.candidate = None
                self.workers.append(candidate)
                old = self._next_to_replace()
                if old is not None:
                    self.to_replace.remove(old)
                    self.workers.remove(old)
                    self._stop(old)
                    self._count_restart(old.cause or "reload")
                # else the old one died meanwhile and was replaced: _maintain_count trims
            elif time.monotonic() - candidate.started_at > self.healthcheck:
                logger.error(
                    "New child process [%d] was not ready within %gs; keeping the old workers and "
                    "aborting the restart.",
                    candidate.pid,
                    self.healthcheck,
                )
                self.candidate = None
                self._abort_restart()
                _kill(candidate.pid, signal.SIGKILL)
                candidate.killed = True
                self.leaving.append(candidate)
                return
            else:
                return
        old = self._next_to_replace()
        if old is not None:
            self.candidate = self._spawn(replacing=old)

    def _next_to_replace(self) -> Worker | None:
        """The next old worker to replace (one still serving, not waiting to retry)."""
        self.to_replace = [worker for worker in self.to_replace if worker in self.workers]
        now = time.monotonic()
        return next((worker for worker in self.to_replace if worker.retry_at <= now), None)

    def _abort_restart(self) -> None:
        """A replacement did not start. A rolling restart ends here (the old workers keep
        serving; another SIGHUP tries again); a recycled worker keeps serving and is
        replaced again ``RECYCLE_RETRY`` seconds later."""
        retry_at = time.monotonic() + RECYCLE_RETRY
        pending = []
        for worker in self.to_replace:
            if worker.cause == "reload":
                worker.cause = None
            else:
                worker.retry_at = retry_at
                pending.append(worker)
        self.to_replace = pending

    # -- signals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signal_handling(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            raise ConfigError("--workers must be started from the main thread: it handles signals")
        wakeup = os.pipe()
        for fd in wakeup:
            os.set_blocking(fd, False)
        self._wakeup = wakeup
        previous_wakeup = signal.set_wakeup_fd(wakeup[1], warn_on_full_buffer=False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            for fd in wakeup:
                os.close(fd)
            self._wakeup = None

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)  # handled by the loop, which the wakeup fd wakes

    def _handle_signals(self) -> None:
        while self._signals:
            sig = self._signals.pop(0)
            if sig in (signal.SIGINT, signal.SIGTERM):
                self._handle_stop(signal.Signals(sig).name)
            elif sig == signal.SIGHUP:
                self._handle_hup()
            elif sig == signal.SIGTTIN:
                self._handle_ttin()
            elif sig == signal.SIGTTOU:
                self._handle_ttou()
            elif sig == signal.SIGUSR1:
                self._handle_usr1()

    def _handle_stop(self, name: str) -> None:
        self.stop_signals += 1
        if self.stop_signals == 1:
            logger.info("Received %s, exiting.", name)
            delay = float(self.config.drain_delay or 0)
            if delay > 0 and not self.stopping:
                # /readyz reads stop_signals: it answers 503 from now on, while every
                # worker keeps serving; _end_drain stops them when the delay is over.
                self.drain_until = time.monotonic() + delay
                logger.info("Draining: /readyz answers 503; still serving for %gs (--drain-delay).", delay)
            else:
                self._stop_all()
        elif self.stop_signals == 2 and not self.stopping:
            logger.warning(
                "Received %s again: ending the drain delay and forcing the child processes to stop.", name
            )
            self._stop_all()
            self._force_at = time.monotonic() + FORCE_AFTER
        elif self.stop_signals == 2:
            logger.warning("Received %s again: forcing the child processes to stop.", name)
            for worker in self.leaving:
                _kill(worker.pid, signal.SIGINT)
        else:
            logger.warning("Received %s again: killing the child processes.", name)
            for worker in self.leaving:
                _kill(worker.pid, signal.SIGKILL)
                worker.killed = True

    def _handle_hup(self) -> None:
        if self.stopping or self.drain_until is not None:
            return
        logger.info("Received SIGHUP, restarting processes.")
        if self.candidate is not None:
            # It was started before this signal, perhaps with older code: start over.
            self._stop(self.candidate)
            self.candidate = None
        for worker in self.workers:
            worker.retry_at = 0.0
            if worker.cause is None:
                worker.cause = "reload"
        self.to_replace = list(self.workers)

    def _handle_usr1(self) -> None:
        if not self.config.is_ssl:
            logger.info("Received SIGUSR1: no TLS certificate to reload.")
            return
        workers = self._counted()
        logger.info("Received SIGUSR1, reloading the TLS certificate in %d process(es).", len(workers))
        for worker in workers:
            _kill(worker.pid, signal.SIGUSR1)

    def _handle_ttin(self) -> None:
        if self.stopping or self.drain_until is not None:
            return
        logger.info("Received SIGTTIN, increasing the number of processes.")
        self.target += 1

    def _handle_ttou(self) -> None:
        if self.stopping or self.drain_until is not None:
            return
        logger.info("Received SIGTTOU, decreasing number of processes.")
        if self.target <= 1:
            logger.info("Already reached one process, cannot decrease the number of processes anymore.")
            return
        self.target -= 1


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass


def _rss_mib(pid: int) -> int | None:
    """A process's resident set in MiB (/proc/PID/statm), or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * PAGE_SIZE // (1024 * 1024)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
