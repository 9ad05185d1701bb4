"""A steady load of GET requests, every outcome counted at the client.

``SteadyLoad(port, paths)`` runs ``threads`` threads, each sending GET requests in a loop on
one keep-alive connection (a new one after a failure), cycling through ``paths``, until
``stop()``. A request counts as failed when the connection fails, the status is not 200, or
the body is not what ``expect`` says; every failure is kept with its time (monotonic) and
what went wrong, so a test can tell when failures happened relative to an event.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Callable


class SteadyLoad:
    def __init__(
        self,
        port: int,
        paths: tuple[str, ...] = ("/",),
        threads: int = 4,
        expect: Callable[[bytes], bool] = lambda body: True,
        timeout: float = 10.0,
    ) -> None:
        self.port = port
        self.paths = paths
        self.expect = expect
        self.timeout = timeout
        self.sent = 0
        self.ok = 0
        #: (monotonic time the request was sent, what went wrong)
        self.failures: list[tuple[float, str]] = []
        #: monotonic time of each successful request's answer (kept small: only counts)
        self.last_ok = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def __enter__(self) -> SteadyLoad:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def wait_ok(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` more requests have succeeded."""
        target = self.ok + count
        deadline = time.monotonic() + timeout
        while self.ok < target:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"only {self.ok} of {target} requests succeeded; failures: {self.failures[:5]}"
                )
            time.sleep(0.02)

    def _run(self, index: int) -> None:
        paths = itertools.cycle(self.paths[index % len(self.paths) :] + self.paths[: index % len(self.paths)])
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            path = next(paths)
            sent_at = time.monotonic()
            problem = None
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    problem = f"{path}: status {response.status}"
                elif not self.expect(body):
                    problem = f"{path}: unexpected body {body[:80]!r}"
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{path}: {exc!r}"
                connection.close()
                connection = None
            with self._lock:
                self.sent += 1
                if problem is None:
                    self.ok += 1
                    self.last_ok = time.monotonic()
                else:
                    self.failures.append((sent_at, problem))
        if connection is not None:
            connection.close()
