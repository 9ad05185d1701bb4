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
that is blocked (uvicorn only checks that the process answers). Before the kill it gets
``STACKS_SIGNAL`` (SIGUSR2), on which its faulthandler writes every thread's Python stack
to its stderr, and half a second (``_policy.STACK_DUMP_WAIT``) to do so: the error log shows where it was
stuck.

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
and the restarts themselves by cause (``RESTART_CAUSES``). With prometheus_client installed
it also sets ``PROMETHEUS_MULTIPROC_DIR`` for the workers before the first fork, serves the
app's metrics merged from their files, and marks each worker that exits as dead there
(``admin.AppMultiprocess``).
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
from fastasgi.supervisors._child import READY, RETIRING, STACKS_SIGNAL, Heartbeat, run_worker
from fastasgi.supervisors._policy import (
    RESTART_CAUSES,
    Gone,
    Member,
    MemoryExempt,
    Policy,
    StartSuccessor,
    TakeOver,
)

logger = logging.getLogger("fastasgi.error")

#: after ``--timeout-graceful-shutdown``, how long a stopping worker still gets (for the
#: app's lifespan shutdown) before it is killed
KILL_GRACE = 3.0
#: a second stop signal during the drain delay: seconds between the SIGTERM that starts the
#: workers' stop and the SIGINT that forces it. Sent together, both would be pending at
#: once and SIGINT (the lower number) handled first, as the graceful one (signal(7)).
FORCE_AFTER = 0.1

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

class Worker(Member):
    """The supervisor's record of one worker process: the policy's facts (``Member``) and
    the process's handles."""

    __slots__ = ("fd", "listeners", "pid", "slot")

    def __init__(
        self, pid: int, fd: int, listeners: list[socket.socket], now: float, slot: int | None = None
    ) -> None:
        super().__init__(now)
        self.pid = pid
        #: its counter block in the shared metrics (None: not counting)
        self.slot = slot
        #: the listening sockets it serves on
        self.listeners = listeners
        #: read end of the worker's pipe; None once the worker has closed it
        self.fd: int | None = fd


class Multiprocess:
    def __init__(self, config: Config) -> None:
        if not hasattr(os, "fork"):
            raise ConfigError("--workers needs os.fork(): it is not available on this platform")
        self.config = config
        self.healthcheck = float(config.timeout_worker_healthcheck)
        timeout = config.timeout_graceful_shutdown
        #: which worker serves, starts, leaves, and what is to be done about each
        self.policy: Policy[Worker] = Policy(
            config.workers or 1,
            self.healthcheck,
            stop_grace=None if timeout is None else timeout + KILL_GRACE,
            lifetime=config.limit_worker_lifetime,
            lifetime_jitter=config.limit_worker_lifetime_jitter,
            memory=config.limit_max_memory,
            memory_jitter=config.limit_max_memory_jitter,
            rng=random,
            now=time.monotonic(),
        )
        self.beat_interval = self.policy.beat_interval
        self.pid = os.getpid()
        #: the sets of listening sockets: one shared by every worker, or with --reuse-port
        #: one per worker
        self.listener_sets: list[list[socket.socket]] = []
        self.stop_signals = 0
        #: every worker has been ready once (the first startup is over)
        self.served = False
        #: the last turn of the supervisor's loop (its own heartbeat, for /livez)
        self.last_turn = time.monotonic()
        self.exit_code = 0
        self._signals: list[int] = []
        self._selector: selectors.BaseSelector | None = None
        self._wakeup: tuple[int, int] | None = None
        #: --admin-bind: the workers' counter blocks and the listener serving them
        self.metrics: admin.SharedMetrics | None = None
        self.admin: admin.AdminServer | None = None

    @property
    def workers(self) -> list[Worker]:
        """The serving workers (starting or ready)."""
        return self.policy.serving

    @workers.setter
    def workers(self, workers: list[Worker]) -> None:
        self.policy.serving = workers

    # -- the loop -----------------------------------------------------------------------

    def run(self, sockets: list[socket.socket]) -> int:
        """Supervise until stopped; return the exit code (0, or 3 after a startup failure,
        the admin listener's bind failure among them).
        ``sockets`` are the bound listeners; the caller closes them afterwards."""
        self.listener_sets = [sockets]
        logger.info(
            "Started parent process [%d]",
            self.pid,
            extra={"color_message": "Started parent process [" + style("%d", fg="cyan", bold=True) + "]"},
        )
        if not self._start_admin():
            return STARTUP_FAILURE
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
            while not (self.policy.stopping and not self.policy.all()):
                self._wait(self.policy.sleep(time.monotonic()))
                self.last_turn = time.monotonic()
                self._handle_signals()
                self._reap()
                if not self.policy.stopping:
                    self._check_health()
                    self._check_limits()
                    self._advance_restart()
                    self._maintain_count()
                    self._end_drain()
                if not self.served and sum(w.ready for w in self.policy.serving) >= self.policy.target:
                    self.served = True
                self._enforce_kill_deadlines()
            self._selector = None

    def _start_admin(self) -> bool:
        """--admin-bind: map the counter blocks and serve them. False (logged) when the
        address cannot be bound."""
        endpoint = self.config.admin_endpoint
        if endpoint is None:
            return True
        # Before the first fork: the workers must inherit PROMETHEUS_MULTIPROC_DIR.
        app = admin.AppMultiprocess.setup()
        # Slots for the workers at any time: a generous default; more for many workers.
        metrics = admin.SharedMetrics(max(admin.SLOTS, 4 * self.policy.target), app)
        for cause in RESTART_CAUSES:
            metrics.restarts[cause] = 0
        try:
            self.admin = admin.start(
                endpoint, metrics.collect, admin.Health(self.check_live, self.check_ready)
            )
        except OSError as exc:
            logger.error(_sockets.bind_error_message(exc, [endpoint]))
            metrics.close()
            if app is not None:
                app.close()
            return False
        self.metrics = metrics
        return True

    def _stop_admin(self) -> None:
        if self.admin is not None:
            self.admin.close()
            self.admin = None
        if self.metrics is not None:
            self.metrics.close()
            if self.metrics.app is not None:
                self.metrics.app.close()  # every worker has exited: its files are not needed
            self.metrics = None

    # -- health (the admin listener's threads call these) ---------------------------------

    def check_live(self) -> tuple[bool, str]:
        """``/livez``: the supervisor's loop turns, and every worker that serves or starts was
        heard from (its event loop's heartbeat, or its startup thread's) within half of
        ``--timeout-worker-healthcheck``. A stuck worker shows from then until it is gone:
        ``_check_health`` kills it once the whole bound has passed."""
        now = time.monotonic()
        beats = [("supervisor", self.last_turn)]
        beats += [(f"worker [{worker.pid}]", worker.last_seen) for worker in list(self.policy.counted())]
        for group, bound in ((beats[:1], self.healthcheck), (beats[1:], self.healthcheck / 2)):
            live, reason = admin.judge_liveness(now, group, bound)
            if not live:
                return live, reason
        return True, f"ok: {len(beats)} event loops answering"

    def check_ready(self) -> tuple[bool, str]:
        """``/readyz``: every worker has completed lifespan startup (then: at least one is
        ready, see ``admin.judge_readiness``), and no stop was asked for."""
        ready = sum(1 for worker in list(self.workers) if worker.ready)
        draining = self.stop_signals > 0 or self.policy.stopping
        return admin.judge_readiness(draining, ready, self.policy.target, self.served, workers=True)

    def _count_restart(self, cause: str) -> None:
        if self.metrics is not None:
            self.metrics.count_restart(cause)

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
        recycle = self.policy.heard(worker, time.monotonic(), ready=READY in data, retiring=RETIRING in data)
        if recycle is not None:
            self._recycling(recycle.worker, recycle.why)

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
        self.policy.plan(worker)
        assert self._selector is not None
        self._selector.register(read_fd, selectors.EVENT_READ, worker)
        return worker

    def _listeners_for_new_worker(self, replacing: Worker | None) -> list[socket.socket]:
        if not self.config.reuse_port:
            return self.listener_sets[0]
        if replacing is not None:
            return replacing.listeners  # the queue of the old worker goes to its successor
        in_use = {id(worker.listeners) for worker in self.policy.counted()}
        for listeners in self.listener_sets:
            if id(listeners) not in in_use:
                return listeners
        listeners = _sockets.bind_like(self.listener_sets[0], self.config.backlog)
        self.listener_sets.append(listeners)
        return listeners

    def _close_unused_listeners(self) -> None:
        """--reuse-port after SIGTTOU: close the sets no worker will serve on again (a
        listener nobody accepts from would keep its share of the connections waiting)."""
        in_use = {id(worker.listeners) for worker in self.policy.counted()}
        for listeners in list(self.listener_sets):
            if len(self.listener_sets) <= self.policy.target:
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
        for other in self.policy.all():
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
        """Ask a worker that the policy moved to its leaving workers to stop gracefully."""
        _kill(worker.pid, signal.SIGTERM)
        logger.info(
            "Waiting for child process [%d]",
            worker.pid,
            extra={"color_message": "Waiting for child process [" + style("%d", fg="cyan") + "]"},
        )

    def _recycling(self, worker: Worker, why: str) -> None:
        logger.info("Child process [%d] %s; starting a replacement.", worker.pid, why)

    def _check_limits(self) -> None:
        """--limit-worker-lifetime and --limit-max-memory: the policy queues the workers past theirs."""
        for found in self.policy.check_limits(time.monotonic(), lambda worker: _rss_mib(worker.pid)):
            if isinstance(found, MemoryExempt):
                logger.error(
                    "Child process [%d] uses %d MiB right after startup, more than its"
                    " --limit-max-memory of %d MiB: it will not be recycled for memory.",
                    found.worker.pid,
                    found.rss,
                    found.limit,
                )
            else:
                self._recycling(found.worker, found.why)

    def _stop_all(self) -> None:
        for worker in self.policy.stop_all(time.monotonic()):
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
        for _ in range(self.policy.shortfall()):
            worker = self._spawn()
            if worker is None:
                return  # fork failed (logged); try again on the next turn
            self.policy.add(worker)
        for worker in self.policy.trim(time.monotonic()):
            self._stop(worker)
        if self.config.reuse_port:
            self._close_unused_listeners()

    # -- watching -----------------------------------------------------------------------

    def _reap(self) -> None:
        for worker in self.policy.all():
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
        if self.metrics is not None and self.metrics.app is not None:
            self.metrics.app.process_dead(worker.pid)  # its counters stay, its live gauges go
        how = _describe_exit(code)
        gone = self.policy.exited(worker, time.monotonic())
        if gone is Gone.STOPPED:
            if code != 0 and not worker.killed:
                logger.warning("Child process [%d] %s while stopping.", worker.pid, how)
            return
        if gone is Gone.SUCCESSOR:
            logger.error(
                "New child process [%d] %s before it was ready; keeping the old workers and aborting the restart.",
                worker.pid,
                how,
            )
            return
        if self.policy.stopping:
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
        """A worker silent for the whole healthcheck is asked for its Python stacks (its
        faulthandler writes them to its stderr, which is the error log: they name the line
        its event loop is stuck on) and killed once it had the time to write them."""
        now = time.monotonic()
        for worker in self.policy.silent(now):
            logger.error(
                "Child process [%d] missed its heartbeat for %.1fs (--timeout-worker-healthcheck %gs);"
                " its Python stacks follow, then it is killed.",
                worker.pid,
                now - worker.last_seen,
                self.healthcheck,
            )
            _kill(worker.pid, STACKS_SIGNAL)
        for worker in self.policy.stacks_dumped(now):
            _kill(worker.pid, signal.SIGKILL)

    def _end_drain(self) -> None:
        """The drain delay is over: tell the workers to stop."""
        if self.policy.drain_over(time.monotonic()):
            logger.info("Drain delay over: stopping the child processes.")
            self._stop_all()

    def _enforce_kill_deadlines(self) -> None:
        now = time.monotonic()
        if self.policy.force_due(now):
            for worker in self.policy.leaving:
                _kill(worker.pid, signal.SIGINT)
        for worker in self.policy.overdue(now):
            logger.warning("Child process [%d] did not stop in time; killing it.", worker.pid)
            _kill(worker.pid, signal.SIGKILL)

    # -- rolling restart ----------------------------------------------------------------

    def _advance_restart(self) -> None:
        for step in self.policy.advance(time.monotonic()):
            if isinstance(step, TakeOver):
                if step.old is not None:
                    self._stop(step.old)
                if step.cause is not None:
                    self._count_restart(step.cause)
            elif isinstance(step, StartSuccessor):
                successor = self._spawn(replacing=step.old)
                if successor is not None:
                    self.policy.started(successor)
            else:
                logger.error(
                    "New child process [%d] was not ready within %gs; keeping the old workers and "
                    "aborting the restart.",
                    step.successor.pid,
                    step.timeout,
                )
                _kill(step.successor.pid, signal.SIGKILL)

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
            if delay > 0 and not self.policy.stopping:
                # /readyz reads stop_signals: it answers 503 from now on, while every
                # worker keeps serving; _end_drain stops them when the delay is over.
                self.policy.drain(time.monotonic(), delay)
                logger.info("Draining: /readyz answers 503; still serving for %gs (--drain-delay).", delay)
            else:
                self._stop_all()
        elif self.stop_signals == 2 and not self.policy.stopping:
            logger.warning(
                "Received %s again: ending the drain delay and forcing the child processes to stop.", name
            )
            self._stop_all()
            self.policy.force_later(time.monotonic(), FORCE_AFTER)
        elif self.stop_signals == 2:
            logger.warning("Received %s again: forcing the child processes to stop.", name)
            for worker in self.policy.leaving:
                _kill(worker.pid, signal.SIGINT)
        else:
            logger.warning("Received %s again: killing the child processes.", name)
            for worker in self.policy.kill_leaving():
                _kill(worker.pid, signal.SIGKILL)

    def _handle_hup(self) -> None:
        if not self.policy.steady:
            return
        logger.info("Received SIGHUP, restarting processes.")
        abandoned = self.policy.rolling_restart(time.monotonic())
        if abandoned is not None:
            self._stop(abandoned)

    def _handle_usr1(self) -> None:
        if not self.config.is_ssl:
            logger.info("Received SIGUSR1: no TLS certificate to reload.")
            return
        workers = self.policy.counted()
        logger.info("Received SIGUSR1, reloading the TLS certificate in %d process(es).", len(workers))
        for worker in workers:
            _kill(worker.pid, signal.SIGUSR1)

    def _handle_ttin(self) -> None:
        if not self.policy.steady:
            return
        logger.info("Received SIGTTIN, increasing the number of processes.")
        self.policy.grow()

    def _handle_ttou(self) -> None:
        if not self.policy.steady:
            return
        logger.info("Received SIGTTOU, decreasing number of processes.")
        if not self.policy.shrink():
            logger.info("Already reached one process, cannot decrease the number of processes anymore.")


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
