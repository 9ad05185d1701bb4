"""The ``--workers`` supervisor's decisions (``fastasgi.supervisors._policy``) on a fake
clock: recycling by requests, memory and lifetime, the rolling restart and its aborts, kill
deadlines and the loop's sleep. No process is started: the tests play the supervisor,
carrying the decisions out on plain ``Member`` records. The real processes are in
tests/e2e/test_workers.py."""

from __future__ import annotations

import random

import pytest

from fastasgi.supervisors._policy import (
    MAX_SLEEP,
    MEMORY_CHECK_INTERVAL,
    RECYCLE_RETRY,
    STACK_DUMP_WAIT,
    Gone,
    Member,
    MemoryExempt,
    Policy,
    Recycle,
    StartSuccessor,
    SuccessorTooSlow,
    TakeOver,
)

HEALTHCHECK = 4.0


class Fixed:
    """A random source that always draws the same fraction of the range."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction

    def randint(self, a: int, b: int) -> int:
        return a + round((b - a) * self.fraction)


def policy(target: int = 1, now: float = 0.0, rng=None, **limits) -> Policy[Member]:
    return Policy(target, HEALTHCHECK, rng=rng or Fixed(0.0), now=now, **limits)


def ready_worker(pol: Policy[Member], now: float) -> Member:
    """A serving worker that reported ready at ``now``."""
    worker = Member(now)
    pol.plan(worker)
    pol.add(worker)
    pol.heard(worker, now, ready=True)
    return worker


def never_read(worker: Member) -> int | None:
    raise AssertionError("RSS read without --limit-max-memory, or too soon")


# -- the limits and their jitter ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "lifetime", "memory"),
    [(0.0, 60.0, 100), (0.5, 65.0, 105), (1.0, 70.0, 110)],
)
def test_limits_get_their_jitter(fraction, lifetime, memory):
    pol = policy(lifetime=60, lifetime_jitter=10.0, memory=100, memory_jitter=10, rng=Fixed(fraction))
    worker = Member(0.0)
    pol.plan(worker)
    assert (worker.lifetime, worker.memory_limit) == (lifetime, memory)


def test_jitter_stays_within_its_bounds_and_spreads():
    pol = policy(lifetime=60, lifetime_jitter=10.0, memory=100, memory_jitter=3, rng=random.Random(7))
    lifetimes, limits = [], set()
    for _ in range(500):
        worker = Member(0.0)
        pol.plan(worker)
        lifetimes.append(worker.lifetime)
        limits.add(worker.memory_limit)
    assert all(60.0 <= value <= 70.0 for value in lifetimes)
    assert max(lifetimes) - min(lifetimes) > 9.0  # drawn per worker, not once
    assert limits == {100, 101, 102, 103}


def test_no_limit_configured_draws_none():
    worker = Member(0.0)
    policy(lifetime_jitter=10.0, memory_jitter=10).plan(worker)
    assert (worker.lifetime, worker.memory_limit) == (None, None)


# -- which worker is due, and why -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "limits", "ready", "at", "expected"),
    [
        ("lifetime not reached", {"lifetime": 30}, True, 29.9, None),
        ("lifetime reached", {"lifetime": 30}, True, 30.0, ("lifetime", "has served for 30s")),
        ("lifetime counts from ready", {"lifetime": 30}, False, 31.0, None),
        ("memory under its limit", {"memory": 100}, True, 5.0, None),
        ("nothing configured", {}, True, 1e6, None),
    ],
)
def test_check_limits_table(name, limits, ready, at, expected):
    pol = policy(**limits)
    worker = Member(0.0)
    pol.plan(worker)
    pol.add(worker)
    if ready:
        pol.heard(worker, 0.0, ready=True)
    read = (lambda w: 50) if "memory" in limits else never_read
    found = pol.check_limits(at, read)
    if expected is None:
        assert found == [] and pol.to_replace == []
    else:
        assert found == [Recycle(worker, *expected)]
        assert pol.to_replace == [worker] and worker.cause == expected[0]


def test_a_queued_worker_is_not_queued_again():
    pol = policy(lifetime=30)
    worker = ready_worker(pol, 0.0)
    assert len(pol.check_limits(30.0, never_read)) == 1
    assert pol.check_limits(40.0, never_read) == []
    assert pol.heard(worker, 41.0, retiring=True) is None
    assert pol.to_replace == [worker] and worker.cause == "lifetime"


def test_a_queued_worker_has_its_memory_read_no_more():
    pol = policy(memory=100)
    worker = ready_worker(pol, 0.0)
    pol.heard(worker, 1.0, retiring=True)
    assert pol.check_limits(2.0, never_read) == []
    assert pol.to_replace == [worker] and worker.cause == "max_requests"


def test_memory_is_read_once_per_interval_and_recycles_a_worker_that_grows():
    pol = policy(memory=100)
    worker = ready_worker(pol, 0.0)
    readings = iter([80, 120])
    reads = []

    def read(w):
        reads.append(w)
        return next(readings)

    assert pol.check_limits(0.0, read) == []  # the first reading: under the limit
    assert pol.check_limits(MEMORY_CHECK_INTERVAL / 2, read) == []  # not read again yet
    assert reads == [worker]
    found = pol.check_limits(MEMORY_CHECK_INTERVAL, read)
    assert found == [Recycle(worker, "max_memory", "uses 120 MiB, over its limit of 100 MiB")]
    assert worker.rss == 120 and pol.to_replace == [worker]


def test_memory_over_the_limit_right_after_startup_is_exempted_once():
    pol = policy(memory=100)
    worker = ready_worker(pol, 0.0)
    assert pol.check_limits(0.0, lambda w: 150) == [MemoryExempt(worker, 150, 100)]
    assert worker.memory_limit is None and worker.cause is None
    # Never read again, let alone recycled: its successor would start as large.
    for turn in range(1, 10):
        assert pol.check_limits(turn * MEMORY_CHECK_INTERVAL, never_read) == []
    assert pol.to_replace == []


def test_an_unreadable_rss_is_not_a_decision():
    pol = policy(memory=100)
    worker = ready_worker(pol, 0.0)
    assert pol.check_limits(0.0, lambda w: None) == []
    # the first reading was spent: a later one over the limit recycles, it is no exemption
    assert pol.check_limits(1.0, lambda w: 150)[0].cause == "max_memory"
    assert worker.memory_limit == 100


def test_lifetime_expiry_wins_over_memory():
    pol = policy(lifetime=30, memory=100)
    ready_worker(pol, 0.0)
    (found,) = pol.check_limits(30.0, never_read)
    assert found.cause == "lifetime"


def test_request_limit_queues_a_serving_worker_once():
    pol = policy()
    worker = ready_worker(pol, 0.0)
    assert pol.heard(worker, 1.0, retiring=True) == Recycle(worker, "max_requests", "reached the request limit")
    assert pol.heard(worker, 2.0, retiring=True) is None
    assert pol.to_replace == [worker]


def test_request_limit_of_a_successor_is_ignored():
    pol = policy()
    ready_worker(pol, 0.0)
    successor = Member(1.0)
    pol.started(successor)
    assert pol.heard(successor, 1.5, retiring=True) is None
    assert successor.cause is None and pol.to_replace == []


def test_ready_is_recorded_once():
    pol = policy()
    worker = Member(0.0)
    pol.add(worker)
    pol.heard(worker, 1.0)
    assert not worker.ready and worker.last_seen == 1.0
    pol.heard(worker, 2.0, ready=True)
    pol.heard(worker, 3.0, ready=True)
    assert worker.ready and worker.ready_at == 2.0 and worker.last_seen == 3.0


# -- replacing: the successor is ready before the old worker leaves --------------------------


def test_a_successor_takes_over_only_once_ready():
    pol = policy()
    old = ready_worker(pol, 0.0)
    pol.heard(old, 1.0, retiring=True)
    assert pol.advance(1.0) == [StartSuccessor(old)]
    successor = Member(1.0)
    pol.started(successor)
    assert pol.advance(2.0) == []  # still starting: the old one serves on
    assert pol.serving == [old] and pol.leaving == []
    pol.heard(successor, 3.0, ready=True)
    assert pol.advance(3.0) == [TakeOver(successor, old, "max_requests")]
    assert pol.serving == [successor] and pol.leaving == [old] and pol.successor is None


def test_a_failed_start_is_asked_again_on_the_next_turn():
    pol = policy()
    old = ready_worker(pol, 0.0)
    pol.heard(old, 1.0, retiring=True)
    assert pol.advance(1.0) == [StartSuccessor(old)]
    # the supervisor could not fork: nothing recorded
    assert pol.advance(1.5) == [StartSuccessor(old)]


def test_old_worker_that_died_meanwhile_leaves_nothing_to_stop():
    pol = policy()
    old = ready_worker(pol, 0.0)
    pol.heard(old, 1.0, retiring=True)
    pol.advance(1.0)
    successor = Member(1.0)
    pol.started(successor)
    assert pol.exited(old, 1.5) is Gone.SERVING
    assert pol.shortfall() == 1
    refill = ready_worker(pol, 1.6)
    pol.heard(successor, 2.0, ready=True)
    assert pol.advance(2.0) == [TakeOver(successor, None, None)]
    # one worker too many now: the newest goes
    assert pol.trim(2.0) == [successor] and pol.serving == [refill]


class Simulation:
    """Plays the supervisor: carries the policy's decisions out on a fake clock, with
    workers that take ``startup`` seconds to be ready, and checks on every turn that the
    serving workers include ``floor`` ready ones and that no worker leaves unready."""

    def __init__(self, pol: Policy[Member], startup: float = 2.5, floor: int | None = None) -> None:
        self.pol = pol
        self.startup = startup
        self.floor = pol.target if floor is None else floor
        self.now = 0.0
        self.events: list[tuple[str, Member]] = []
        for _ in range(pol.target):
            ready_worker(pol, self.now)

    def turn(self, dt: float = 0.5) -> None:
        self.now += dt
        pol = self.pol
        for worker in pol.counted():
            pol.heard(worker, self.now, ready=self.now - worker.started_at >= self.startup)
        assert pol.silent(self.now) == []
        for step in pol.advance(self.now):
            if isinstance(step, StartSuccessor):
                successor = Member(self.now)
                pol.started(successor)
                self.events.append(("start", successor))
            elif isinstance(step, TakeOver):
                assert step.successor.ready
                self.events.append(("stop", step.old))
            else:
                raise AssertionError(f"unexpected {step}")
        pol.trim(self.now)
        assert sum(worker.ready for worker in pol.serving) >= self.floor
        assert len(pol.serving) == pol.target


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_rolling_restart_keeps_every_slot_ready(workers):
    pol = policy(target=workers)
    sim = Simulation(pol)
    old = list(pol.serving)
    assert pol.rolling_restart(sim.now) is None
    assert all(worker.cause == "reload" for worker in old)
    for _ in range(workers * 10):
        sim.turn()
    stops = [worker for what, worker in sim.events if what == "stop"]
    starts = [worker for what, worker in sim.events if what == "start"]
    assert stops == old  # one at a time, in order
    assert len(starts) == workers and pol.serving == starts
    assert pol.to_replace == [] and pol.successor is None
    # each old worker left only after its successor was ready, one restart at a time
    for index, (what, _) in enumerate(sim.events):
        assert what == ("start" if index % 2 == 0 else "stop")


def test_sighup_during_a_restart_starts_over():
    pol = policy(target=2)
    sim = Simulation(pol)
    first, second = pol.serving
    pol.heard(first, 0.0, retiring=True)
    sim.turn()
    stale = pol.successor
    assert stale is not None
    first.retry_at = 99.0  # as if a previous attempt had failed
    abandoned = pol.rolling_restart(sim.now)
    assert abandoned is stale and stale in pol.leaving and pol.successor is None
    assert pol.to_replace == [first, second]
    assert (first.cause, second.cause) == ("max_requests", "reload")
    assert first.retry_at == 0.0
    for _ in range(20):
        sim.turn()
    assert [w for what, w in sim.events if what == "stop"] == [first, second]


def test_sighup_without_a_restart_abandons_nothing():
    pol = policy(target=1)
    ready_worker(pol, 0.0)
    assert pol.rolling_restart(0.0) is None and pol.leaving == []


def test_a_successor_that_dies_before_ready_aborts_the_restart():
    pol = policy(target=3)
    sim = Simulation(pol)
    recycled, reloaded, _ = pol.serving
    pol.rolling_restart(sim.now)
    recycled.cause = "lifetime"  # queued by its limit before the SIGHUP
    sim.turn()
    successor = pol.successor
    assert successor is not None and not successor.ready
    assert pol.exited(successor, sim.now) is Gone.SUCCESSOR
    # the rolling restart is over; the recycled worker is retried later
    assert pol.to_replace == [recycled] and reloaded.cause is None
    assert recycled.retry_at == sim.now + RECYCLE_RETRY
    assert pol.advance(sim.now + RECYCLE_RETRY - 0.1) == []
    assert pol.advance(sim.now + RECYCLE_RETRY) == [StartSuccessor(recycled)]
    assert pol.serving == [recycled, reloaded, _]


def test_a_successor_not_ready_in_time_is_killed_and_the_restart_aborted():
    pol = policy(target=1)
    old = ready_worker(pol, 0.0)
    pol.rolling_restart(0.0)
    pol.advance(0.0)
    successor = Member(0.0)
    pol.started(successor)
    assert pol.advance(HEALTHCHECK) == []  # the bound itself is still in time
    assert pol.advance(HEALTHCHECK + 0.1) == [SuccessorTooSlow(successor, HEALTHCHECK)]
    assert successor.killed and pol.leaving == [successor] and pol.successor is None
    assert pol.to_replace == [] and old.cause is None and pol.serving == [old]
    assert pol.exited(successor, HEALTHCHECK + 0.2) is Gone.STOPPED
    assert pol.leaving == [] and pol.all() == [old]


# -- health, deadlines, counts ----------------------------------------------------------------


def test_silent_workers_are_asked_for_their_stacks_then_killed_once():
    pol = policy(target=2)
    quiet, talking = ready_worker(pol, 0.0), ready_worker(pol, 0.0)
    for t in (1.0, 2.0, 3.0, 4.0):
        pol.heard(talking, t)
        assert pol.silent(t) == []
        assert pol.stacks_dumped(t) == []
    pol.heard(talking, 4.5)
    assert pol.silent(4.5) == [quiet] and not quiet.killed  # its stacks first
    assert quiet.stacks_until == 4.5 + STACK_DUMP_WAIT
    assert pol.silent(4.6) == []  # asked once
    pol.heard(quiet, 4.7)  # an answer now does not save it: the silence was judged
    assert pol.stacks_dumped(4.5 + STACK_DUMP_WAIT - 0.01) == []
    assert pol.stacks_dumped(4.5 + STACK_DUMP_WAIT) == [quiet] and quiet.killed
    assert pol.stacks_dumped(6.0) == [] and pol.silent(6.0) == []  # already on its way out
    assert not talking.killed and talking.stacks_until is None
    assert pol.exited(quiet, 6.0) is Gone.SERVING


def test_without_a_stack_dump_wait_the_kill_is_on_the_same_turn():
    pol = policy(target=1, stack_dump_wait=0.0)
    quiet = ready_worker(pol, 0.0)
    assert pol.silent(1.0) == []  # the loop turns (a longer gap would be a suspension)
    assert pol.silent(HEALTHCHECK + 0.1) == [quiet]
    assert pol.stacks_dumped(HEALTHCHECK + 0.1) == [quiet]


def test_a_silent_worker_caught_by_the_stop_is_left_to_its_deadline():
    pol = policy(target=1, stop_grace=5.0)
    quiet = ready_worker(pol, 0.0)
    assert pol.silent(1.0) == []
    assert pol.silent(HEALTHCHECK + 0.1) == [quiet]
    assert pol.stop_all(HEALTHCHECK + 0.2) == [quiet]
    # no longer a serving worker: the stop's own deadline kills it, not the stack dump's
    assert pol.stacks_dumped(HEALTHCHECK + 1.0) == []
    assert pol.overdue(HEALTHCHECK + 5.2) == [quiet]


def test_the_loop_wakes_up_for_the_kill_after_the_stacks():
    pol = policy(target=1)
    ready_worker(pol, 0.0)
    assert pol.silent(1.0) == [] and pol.sleep(1.0) == MAX_SLEEP
    assert pol.silent(HEALTHCHECK + 0.1) != []
    assert pol.sleep(HEALTHCHECK + 0.1 + STACK_DUMP_WAIT - 0.2) == pytest.approx(0.2)


def test_a_suspended_supervisor_does_not_blame_the_workers():
    pol = policy(target=1)
    worker = ready_worker(pol, 0.0)
    assert pol.silent(0.0) == []
    # the supervisor itself did not run for longer than the healthcheck
    assert pol.silent(HEALTHCHECK + 10.0) == []
    assert worker.last_seen == HEALTHCHECK + 10.0


def test_kill_deadline_of_a_stopping_worker():
    pol = policy(target=2, stop_grace=5.0)
    first, second = ready_worker(pol, 0.0), ready_worker(pol, 0.0)
    assert pol.stop_all(1.0) == [first, second] and pol.stopping and not pol.steady
    assert pol.overdue(5.9) == []
    assert pol.overdue(6.0) == [first, second]
    assert pol.overdue(7.0) == []  # killed once


def test_without_a_graceful_timeout_a_stopping_worker_may_take_its_time():
    pol = policy(target=1)
    ready_worker(pol, 0.0)
    pol.stop_all(0.0)
    assert pol.overdue(1e9) == []
    assert [w.killed for w in pol.kill_leaving()] == [True]


def test_forced_stop_is_due_once():
    pol = policy()
    assert not pol.force_due(10.0)
    pol.force_later(10.0, 0.1)
    assert not pol.force_due(10.05)
    assert pol.force_due(10.1)
    assert not pol.force_due(10.2)


def test_drain_delay():
    pol = policy()
    assert pol.steady and not pol.drain_over(1e9)
    pol.drain(10.0, 5.0)
    assert not pol.steady
    assert not pol.drain_over(14.9) and pol.drain_over(15.0)


def test_count_changes():
    pol = policy(target=2)
    assert pol.shortfall() == 2
    pol.grow()
    assert pol.shortfall() == 3
    workers = [ready_worker(pol, 0.0) for _ in range(3)]
    assert pol.shrink() and pol.shrink() and not pol.shrink()
    assert pol.target == 1
    assert pol.trim(0.0) == [workers[2], workers[1]] and pol.serving == [workers[0]]
    assert pol.leaving == [workers[2], workers[1]] and pol.shortfall() == 0


# -- how long the loop sleeps ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("healthcheck", "drain_in", "force_in", "stopping", "expected"),
    [
        (4.0, None, None, False, MAX_SLEEP),  # a beat every second: the loop's own bound
        (1.0, None, None, False, 0.25),  # the beat interval is shorter
        (0.1, None, None, False, 0.05),  # the beat interval's own floor
        (4.0, 0.2, None, False, 0.2),  # the drain ends first
        (4.0, -1.0, None, False, 0.0),  # the drain is overdue: no wait
        (4.0, 0.2, None, True, MAX_SLEEP),  # stopping: the drain is over
        (4.0, None, 0.1, True, 0.1),  # the forced stop's SIGINT
    ],
)
def test_sleep_table(healthcheck, drain_in, force_in, stopping, expected):
    pol = Policy(1, healthcheck, rng=Fixed(0.0), now=0.0)
    now = 100.0
    if drain_in is not None:
        pol.drain(now, drain_in)
    if force_in is not None:
        pol.force_later(now, force_in)
    pol.stopping = stopping
    assert pol.sleep(now) == pytest.approx(expected)
