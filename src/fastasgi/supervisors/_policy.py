"""The decisions of the ``--workers`` supervisor, apart from their effects.

``Policy`` knows which worker holds which role (serving, a rolling restart's successor,
queued for replacement, leaving) and the facts about each (``Member``: when it started and
was ready, when it was last heard from, its recycling limits, its last RSS), and answers
what the supervisor's loop asks on each turn: whom to kill, whom to recycle and why, when
a successor may take over, whom to start, when a stop is overdue, when a silent worker
that was asked for its stacks is killed, how long to sleep. It
forks, signals and reads nothing: time comes in as ``now`` arguments, randomness from an
injected source and RSS from an injected reader, so that every decision can be checked on
a fake clock. The supervisor (``multiprocess``) carries the decisions out and logs them.

The rule that shapes most of it: an old worker is only told to stop (it leaves the
listener) once its successor has reported ready, so the listener never goes without a
ready worker, with one worker too.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

#: why a worker was replaced (fastasgi_worker_restarts_total{cause}): it died unasked; it
#: was killed after its healthcheck failed; it reached --limit-max-requests,
#: --limit-max-memory or --limit-worker-lifetime; a rolling restart (SIGHUP) replaced it
RESTART_CAUSES = ("crash", "heartbeat", "max_requests", "max_memory", "lifetime", "reload")

#: a recycled worker whose replacement failed to start: seconds until the next attempt
RECYCLE_RETRY = 10.0
#: seconds between two readings of a worker's RSS (--limit-max-memory)
MEMORY_CHECK_INTERVAL = 1.0
#: the loop's longest sleep: a heartbeat check at least this often
MAX_SLEEP = 0.5
#: a worker that missed its heartbeat is asked for its Python stacks, then killed this many
#: seconds later: the dump is written from a signal handler in microseconds, and waiting
#: longer would only keep the stuck worker's clients waiting
STACK_DUMP_WAIT = 0.5


class Random(Protocol):
    """What the policy draws its jitter from (``random`` and ``random.Random`` both fit)."""

    def uniform(self, a: float, b: float) -> float: ...

    def randint(self, a: int, b: int) -> int: ...


class Member:
    """What the policy knows about one worker. The supervisor's record of a process
    (``multiprocess.Worker``) extends it with the process's handles."""

    __slots__ = (
        "cause",
        "kill_at",
        "killed",
        "last_seen",
        "lifetime",
        "memory_checked",
        "memory_limit",
        "ready",
        "ready_at",
        "retry_at",
        "rss",
        "stacks_until",
        "started_at",
    )

    def __init__(self, now: float) -> None:
        self.started_at = now
        #: the last message from it (any message counts as a heartbeat)
        self.last_seen = now
        self.ready = False
        #: when it reported ready (--limit-worker-lifetime counts from there)
        self.ready_at = now
        #: when a stopping worker gets SIGKILL (None: it may take as long as it needs)
        self.kill_at: float | None = None
        self.killed = False
        #: why it is to be replaced (a RESTART_CAUSES entry); None: it is not
        self.cause: str | None = None
        #: a replacement that failed to start: not before this time again
        self.retry_at = 0.0
        #: its recycling limits, jitter included (None: none)
        self.lifetime: float | None = None
        self.memory_limit: int | None = None
        #: when its RSS was last read (None: not yet since it is ready), and what it was
        self.memory_checked: float | None = None
        self.rss: int | None = None
        #: it missed its heartbeat and was asked for its stacks: killed at this time
        self.stacks_until: float | None = None


#: the record the policy's lists hold: the supervisor's subclass of ``Member`` in practice
W = TypeVar("W", bound=Member)


@dataclass(frozen=True)
class Recycle(Generic[W]):
    """Replace ``worker``: it is queued, and a successor will be started for it."""

    worker: W
    cause: str
    why: str


@dataclass(frozen=True)
class MemoryExempt(Generic[W]):
    """``worker`` was over its memory limit at its first reading after startup. Its
    successor would start as large, so recycling it would loop: its limit is dropped."""

    worker: W
    rss: int
    limit: int


@dataclass(frozen=True)
class StartSuccessor(Generic[W]):
    """Start a successor for ``old`` (which serves on until the successor is ready)."""

    old: W


@dataclass(frozen=True)
class TakeOver(Generic[W]):
    """``successor`` is ready and serves now; ``old`` (None: it died meanwhile) has left the
    serving workers and is to be told to stop: a restart of ``cause`` (None: none to count)."""

    successor: W
    old: W | None
    cause: str | None


@dataclass(frozen=True)
class SuccessorTooSlow(Generic[W]):
    """``successor`` was not ready within the healthcheck timeout: the restart is aborted
    and it is to be killed (it has moved to the leaving workers)."""

    successor: W
    timeout: float


class Gone(enum.Enum):
    """Which role a worker that exited held."""

    #: it had been told to stop (or was killed on its way out)
    STOPPED = "stopped"
    #: a successor that exited before it was ready: the restart is aborted
    SUCCESSOR = "successor"
    #: a serving worker: its place is free, ``maintain`` fills it
    SERVING = "serving"


class Policy(Generic[W]):
    """The supervisor's bookkeeping and decisions. ``healthcheck``:
    ``--timeout-worker-healthcheck``; ``stop_grace``: how long a stopping worker has before
    it is killed (None: as long as it needs); the ``limit_*`` arguments as in ``Config``."""

    def __init__(
        self,
        target: int,
        healthcheck: float,
        *,
        stop_grace: float | None = None,
        lifetime: float | None = None,
        lifetime_jitter: float = 0.0,
        memory: int | None = None,
        memory_jitter: int = 0,
        stack_dump_wait: float = STACK_DUMP_WAIT,
        rng: Random,
        now: float,
    ) -> None:
        self.target = target
        self.healthcheck = healthcheck
        #: how often a worker beats: a few times per healthcheck, not too often
        self.beat_interval = max(0.05, min(1.0, healthcheck / 4))
        self.stop_grace = stop_grace
        self.lifetime = lifetime
        self.lifetime_jitter = lifetime_jitter
        self.memory = memory
        self.memory_jitter = memory_jitter
        self.stack_dump_wait = stack_dump_wait
        self.rng = rng

        #: the serving slots (starting or ready): there are ``target`` of them
        self.serving: list[W] = []
        #: told to stop, or stopping by themselves; not counted
        self.leaving: list[W] = []
        #: the successor not yet ready, and the serving workers queued for replacement
        self.successor: W | None = None
        self.to_replace: list[W] = []

        self.stopping = False
        #: --drain-delay: when the workers are told to stop (None: not draining)
        self.drain_until: float | None = None
        #: when the workers stopping after a forced drain get their SIGINT
        self.force_at: float | None = None
        self._last_check = now

    # -- the roles ----------------------------------------------------------------------

    def counted(self) -> list[W]:
        """The workers that serve or will: the slots plus a successor."""
        return self.serving + ([self.successor] if self.successor is not None else [])

    def all(self) -> list[W]:
        return self.counted() + self.leaving

    @property
    def steady(self) -> bool:
        """Neither stopping nor draining: signals that change the workers are taken."""
        return not self.stopping and self.drain_until is None

    def plan(self, worker: W) -> None:
        """Draw a new worker's recycling limits: each configured limit plus its jitter."""
        if self.lifetime is not None:
            worker.lifetime = float(self.lifetime) + self.rng.uniform(0, float(self.lifetime_jitter or 0))
        if self.memory is not None:
            worker.memory_limit = self.memory + self.rng.randint(0, self.memory_jitter)

    def shortfall(self) -> int:
        """How many serving workers are missing."""
        return max(0, self.target - len(self.serving))

    def add(self, worker: W) -> None:
        self.serving.append(worker)

    def trim(self, now: float) -> list[W]:
        """The serving workers over the target (the newest), moved to leaving: to be stopped."""
        surplus = []
        while len(self.serving) > self.target:
            surplus.append(self.serving.pop())
            self._leave(surplus[-1], now)
        return surplus

    def grow(self) -> None:
        self.target += 1

    def shrink(self) -> bool:
        """One worker less; False (no change) when only one is left."""
        if self.target <= 1:
            return False
        self.target -= 1
        return True

    def _leave(self, worker: W, now: float) -> None:
        if self.stop_grace is not None and worker.kill_at is None:
            worker.kill_at = now + self.stop_grace
        self.leaving.append(worker)

    def stop_all(self, now: float) -> list[W]:
        """The graceful stop: every worker that serves or starts, moved to leaving."""
        self.stopping = True
        self.to_replace.clear()
        running = self.counted()
        self.serving, self.successor = [], None
        for worker in running:
            self._leave(worker, now)
        return running

    # -- what the workers say -----------------------------------------------------------

    def heard(
        self, worker: W, now: float, *, ready: bool = False, retiring: bool = False
    ) -> Recycle[W] | None:
        """A message from ``worker``: a heartbeat, perhaps READY, perhaps that it reached
        --limit-max-requests (it serves on until its successor is ready)."""
        worker.last_seen = now
        if ready and not worker.ready:
            worker.ready = True
            worker.ready_at = now
        if retiring:
            return self._recycle(worker, "max_requests", "reached the request limit")
        return None

    def exited(self, worker: W, now: float) -> Gone:
        """``worker`` is gone: drop it from its role."""
        if worker in self.leaving:
            self.leaving.remove(worker)
            return Gone.STOPPED
        if worker is self.successor:
            self.successor = None
            self._abort_restart(now)
            return Gone.SUCCESSOR
        self.serving.remove(worker)
        return Gone.SERVING

    # -- each turn of the loop ----------------------------------------------------------

    def silent(self, now: float) -> list[W]:
        """The serving workers and the successor not heard from within the healthcheck
        timeout: to be asked for their stacks now, and killed ``stack_dump_wait`` seconds
        later (``stacks_dumped``). Each is found once."""
        if now - self._last_check > self.healthcheck:
            # The supervisor itself was not running (suspended): it cannot judge the silence.
            for worker in self.all():
                worker.last_seen = max(worker.last_seen, now)
        self._last_check = now
        found = [
            w
            for w in self.counted()
            if not w.killed and w.stacks_until is None and now - w.last_seen > self.healthcheck
        ]
        for worker in found:
            worker.stacks_until = now + self.stack_dump_wait
        return found

    def stacks_dumped(self, now: float) -> list[W]:
        """The silent workers whose time to write their stacks is over: to be killed (they
        are marked so). A heartbeat meanwhile does not save one: the silence was judged, and
        a loop that was stuck for the whole bound may well be stuck again."""
        found = [
            w for w in self.counted() if not w.killed and w.stacks_until is not None and now >= w.stacks_until
        ]
        for worker in found:
            worker.killed = True
        return found

    def check_limits(
        self, now: float, read_rss: Callable[[W], int | None]
    ) -> list[Recycle[W] | MemoryExempt[W]]:
        """--limit-worker-lifetime and --limit-max-memory: the ready workers past theirs are
        queued. ``read_rss``: a worker's RSS in MiB (None: unknown), asked for at most every
        ``MEMORY_CHECK_INTERVAL`` seconds per worker."""
        found: list[Recycle[W] | MemoryExempt[W]] = []
        for worker in self.serving:
            if not worker.ready or worker.cause is not None:
                continue
            recycle = None
            checked, limit = worker.memory_checked, worker.memory_limit
            if worker.lifetime is not None and now - worker.ready_at >= worker.lifetime:
                recycle = self._recycle(worker, "lifetime", f"has served for {now - worker.ready_at:.0f}s")
            elif limit is not None and (checked is None or now - checked >= MEMORY_CHECK_INTERVAL):
                worker.memory_checked = now
                rss = worker.rss = read_rss(worker)
                if rss is None or rss <= limit:
                    continue
                if checked is None:
                    # As large right after startup: its successor would be too, and
                    # recycling it would loop. Said once, then never read again.
                    worker.memory_limit = None
                    found.append(MemoryExempt(worker, rss, limit))
                    continue
                why = f"uses {rss} MiB, over its limit of {limit} MiB"
                recycle = self._recycle(worker, "max_memory", why)
            if recycle is not None:
                found.append(recycle)
        return found

    def _recycle(self, worker: W, cause: str, why: str) -> Recycle[W] | None:
        if worker.cause is not None or worker not in self.serving:
            return None  # already queued, or no longer serving
        worker.cause = cause
        self.to_replace.append(worker)
        return Recycle(worker, cause, why)

    def advance(self, now: float) -> list[TakeOver[W] | SuccessorTooSlow[W] | StartSuccessor[W]]:
        """The replacement of queued workers, one at a time: a ready successor takes an old
        worker's place (and the next one is started at once); one that is not ready within
        the healthcheck timeout aborts the restart; without one, the next is started
        (``started`` records it once the supervisor has)."""
        steps: list[TakeOver[W] | SuccessorTooSlow[W] | StartSuccessor[W]] = []
        successor = self.successor
        if successor is not None:
            if not successor.ready:
                if now - successor.started_at <= self.healthcheck:
                    return steps  # still starting
                self.successor = None
                self._abort_restart(now)
                successor.killed = True
                self.leaving.append(successor)
                return [SuccessorTooSlow(successor, self.healthcheck)]
            self.successor = None
            self.serving.append(successor)
            old = self._next_to_replace(now)
            if old is not None:
                self.to_replace.remove(old)
                self.serving.remove(old)
                self._leave(old, now)
            # else the old one died meanwhile and was replaced: ``trim`` stops one
            steps.append(TakeOver(successor, old, (old.cause or "reload") if old is not None else None))
        old = self._next_to_replace(now)
        if old is not None:
            steps.append(StartSuccessor(old))
        return steps

    def started(self, successor: W) -> None:
        """The successor a ``StartSuccessor`` asked for runs (not recorded when it could not
        be started: the next turn asks again)."""
        self.successor = successor

    def _next_to_replace(self, now: float) -> W | None:
        """The next queued worker to replace (one still serving, not waiting to retry)."""
        self.to_replace = [worker for worker in self.to_replace if worker in self.serving]
        return next((worker for worker in self.to_replace if worker.retry_at <= now), None)

    def _abort_restart(self, now: float) -> None:
        """A successor did not start. A rolling restart ends here (the old workers keep
        serving; another SIGHUP tries again); a recycled worker keeps serving and is
        replaced again ``RECYCLE_RETRY`` seconds later."""
        pending = []
        for worker in self.to_replace:
            if worker.cause == "reload":
                worker.cause = None
            else:
                worker.retry_at = now + RECYCLE_RETRY
                pending.append(worker)
        self.to_replace = pending

    def rolling_restart(self, now: float) -> W | None:
        """SIGHUP: queue every serving worker (the recycled ones keep their cause, and a
        pending retry is due now). Returns the successor that was starting, now leaving and
        to be stopped: it was started before the signal, perhaps with older code."""
        abandoned = self.successor
        if abandoned is not None:
            self.successor = None
            self._leave(abandoned, now)
        for worker in self.serving:
            worker.retry_at = 0.0
            if worker.cause is None:
                worker.cause = "reload"
        self.to_replace = list(self.serving)
        return abandoned

    # -- stopping -----------------------------------------------------------------------

    def drain(self, now: float, delay: float) -> None:
        self.drain_until = now + delay

    def drain_over(self, now: float) -> bool:
        return self.drain_until is not None and now >= self.drain_until

    def force_later(self, now: float, delay: float) -> None:
        self.force_at = now + delay

    def force_due(self, now: float) -> bool:
        """The forced stop's SIGINT is due (once)."""
        if self.force_at is None or now < self.force_at:
            return False
        self.force_at = None
        return True

    def overdue(self, now: float) -> list[W]:
        """The leaving workers past their kill deadline: to be killed (they are marked so)."""
        found = [w for w in self.leaving if w.kill_at is not None and now >= w.kill_at and not w.killed]
        for worker in found:
            worker.killed = True
        return found

    def kill_leaving(self) -> list[W]:
        """The third stop signal: every leaving worker is to be killed (marked so)."""
        for worker in self.leaving:
            worker.killed = True
        return list(self.leaving)

    def sleep(self, now: float) -> float:
        """How long the loop may wait: up to the next heartbeat check, or the end of the
        drain delay, or the forced stop's SIGINT, or the kill of a silent worker that was
        asked for its stacks, whichever comes first."""
        timeout = min(MAX_SLEEP, self.beat_interval)
        dumping = [w.stacks_until for w in self.counted() if w.stacks_until is not None and not w.killed]
        for when in (self.drain_until if not self.stopping else None, self.force_at, *dumping):
            if when is not None:
                timeout = min(timeout, max(0.0, when - now))
        return timeout
