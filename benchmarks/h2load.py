"""h2load (from nghttp2) as a load generator: finding it, its command line, and reading
its output.

For the HTTP/1.1 scenarios h2load runs with ``--h1`` (HTTP/1.1 over plain TCP) and ``-D`` (a
timed run); ``-m N`` is, for HTTP/1.1, the number of requests kept in flight per connection
(pipelining depth), so the pipelined scenario runs with ``-m 16``. For the HTTP/2 scenarios
it runs without ``--h1``: an ``http://`` URL is then HTTP/2 over cleartext with prior
knowledge (h2c, RFC 9113 3.3), and ``-m N`` is the number of concurrent streams per
connection. Request bodies (the echo scenarios) are sent from a file with ``-d``.

Unlike wrk with benchmarks/lua/bench.lua, h2load cannot look at each response's bytes or
headers. What it reports is checked instead, and any doubt makes the run count as erring,
never as a result:

* requests ``failed``, ``errored`` or ``timeout`` are errors;
* 3xx, 4xx and 5xx status codes are errors (the scenarios all answer 200);
* statuses counted for responses that never completed (the connection broke mid-response),
  beyond the requests that can be in flight when the timer stops, are errors;
* the body bytes must add up: ``data`` (decoded body bytes received) must lie between
  ``succeeded x expected length`` and ``started x expected length`` (requests still in
  flight when the timer stops may have delivered their bodies without being counted done);
* more requests started than completed, beyond what the connections can have in flight at
  once, means requests were lost;
* a run in which no request completed failed.

The same rules hold over HTTP/2: a stream reset by the server (RST_STREAM) or left
unanswered by a GOAWAY is a failed request, and ``data`` counts DATA frame payload, the
body bytes. A connection that the server closes cleanly after a complete response is not
reported by h2load in a timed run at all (that client just stops); the Server and Date
headers, and over HTTP/2 the exact body and that HTTP/2 was spoken, are checked by the
runner's precheck only. Latency: h2load prints min / max / mean / sd per
request, no percentiles, so p50 and p99 stay empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from benchmarks.wrk import find_generator, generator_version

INSTALL_HINT = (
    "h2load is needed for --generator h2load and the HTTP/2 scenarios, and was not found.\n"
    "  Debian/Ubuntu: sudo apt-get install nghttp2-client\n"
    "  Fedora:        sudo dnf install nghttp2\n"
    "  macOS:         brew install nghttp2\n"
    "(or pass --h2load PATH)"
)


def find_h2load(explicit: str | None = None) -> str:
    return find_generator("h2load", explicit, INSTALL_HINT)


h2load_version = generator_version


def command(
    h2load: str,
    url: str,
    *,
    threads: int,
    connections: int,
    duration: float,
    pipeline: int = 1,
    body_file: str | None = None,
    h1: bool = True,
) -> list[str]:
    """The h2load argv (without the taskset prefix): HTTP/1.1 (``h1``) or h2c, a timed run
    of ``duration`` seconds (millisecond resolution), ``pipeline`` requests in flight per
    connection (HTTP/2: concurrent streams)."""
    millis = max(1, round(duration * 1000))
    argv = [
        h2load,
        *(["--h1"] if h1 else []),
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-m{max(1, pipeline)}",
        f"-D{millis}ms",
    ]
    if body_file:
        argv += ["-d", body_file]
    return [*argv, url]


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([0-9.]+)(us|ms|s|m|h)"


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


@dataclass
class H2loadResult:
    finished_s: float = 0.0  # "finished in ..."
    rps: float = 0.0  # h2load's own req/s: done / the main duration
    requests: int = 0  # "done": responses completed in the main duration
    total: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    errored: int = 0
    timeout: int = 0
    status: dict[str, int] = field(default_factory=dict)  # "2xx", "3xx", "4xx", "5xx"
    traffic: dict[str, int] = field(default_factory=dict)  # "total", "headers", "data" (bytes)
    latency_ms: dict[str, float] = field(default_factory=dict)  # "min", "max", "avg", "sd"
    parsed: bool = False  # the summary lines were found
    #: what the output itself shows wrong with the run (see the module docstring)
    problems: dict[str, int] = field(default_factory=dict)

    @property
    def responses(self) -> int:
        """Responses that completed (the runner's 'did anything work' test)."""
        return self.requests

    def p(self, name: str) -> float | None:
        return self.latency_ms.get(name)

    def non2xx(self) -> int:
        return sum(v for k, v in self.status.items() if k != "2xx")

    def error_count(self, require_headers: bool = False) -> int:
        """Every request known to have gone wrong, each counted once. h2load's ``failed``
        already holds the non-2xx answers and the errored and timed-out requests (and a
        cut-off answer, in a counted run, is also an errored one). ``require_headers`` is
        accepted for the runner's sake: h2load cannot see headers, the precheck checks them."""
        p = self.problems
        overlapping = max(
            p.get("failed", 0),
            p.get("errored", 0) + p.get("timeout", 0) + p.get("non2xx", 0),
            p.get("cut_off", 0),
        )
        return overlapping + p.get("lost", 0) + p.get("short_bodies", 0) + p.get("long_bodies", 0)

    def error_detail(self, require_headers: bool = False) -> str:
        names = {
            "failed": "failed requests",
            "errored": "errored requests",
            "timeout": "timed-out requests",
            "non2xx": "non-2xx responses",
            "cut_off": "responses cut off",
            "short_bodies": "body bytes missing (in bodies)",
            "long_bodies": "body bytes too many (in bodies)",
            "lost": "requests lost",
        }
        return ", ".join(f"{names.get(k, k)}: {v}" for k, v in self.problems.items() if v)


def parse(
    text: str, *, expected_body_len: int | None = None, connections: int | None = None, pipeline: int = 1
) -> H2loadResult:
    """Read one h2load run's output (stdout, or stdout and stderr together) and judge it.

    ``expected_body_len``: the body length of every correct response (None: not checked).
    ``connections`` and ``pipeline`` bound how many requests can be in flight when the
    timer stops (None: not checked)."""
    r = H2loadResult()
    m = re.search(r"^finished in " + _TIME + r", ([0-9.]+) req/s", text, re.MULTILINE)
    if m:
        r.finished_s = _ms(m.group(1), m.group(2)) / 1e3
        r.rps = float(m.group(3))
    m = re.search(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
        re.MULTILINE,
    )
    if m:
        r.total, r.started, r.requests, r.succeeded, r.failed, r.errored, r.timeout = map(int, m.groups())
        r.parsed = True
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.MULTILINE)
    if m:
        r.status = dict(zip(("2xx", "3xx", "4xx", "5xx"), map(int, m.groups()), strict=True))
    else:
        r.parsed = False
    m = re.search(
        r"^traffic: \S+ \((\d+)\) total, \S+ \((\d+)\) headers .*?, \S+ \((\d+)\) data", text, re.MULTILINE
    )
    if m:
        r.traffic = dict(zip(("total", "headers", "data"), map(int, m.groups()), strict=True))
    m = re.search(r"^time for request:\s+" + r"\s+".join([_TIME] * 4), text, re.MULTILINE)
    if m:
        g = m.groups()
        for i, key in enumerate(("min", "max", "avg", "sd")):
            r.latency_ms[key] = _ms(g[2 * i], g[2 * i + 1])
    if r.parsed:
        _judge(r, expected_body_len, connections, pipeline)
    return r


def _judge(r: H2loadResult, body_len: int | None, connections: int | None, pipeline: int) -> None:
    p = r.problems
    p["failed"] = r.failed
    p["errored"] = r.errored
    p["timeout"] = r.timeout
    p["non2xx"] = r.non2xx()
    # h2load counts a status when a stream closes, also one closed before its response was
    # complete: more statuses than completed responses means answers were cut off. When the
    # timer stops, the responses in flight are closed that way too (a streamed body is often
    # half read then), so up to one per request in flight is normal.
    in_flight = connections * max(1, pipeline) if connections is not None else 0
    p["cut_off"] = max(0, sum(r.status.values()) - r.requests - in_flight)
    if connections is not None:
        p["lost"] = max(0, r.started - r.requests - r.failed - in_flight)
    if body_len is not None and r.traffic and not any(p.values()):
        data = r.traffic["data"]
        low, high = r.succeeded * body_len, r.started * body_len
        # counted per response: how many bodies' worth of bytes are missing or extra
        if data < low:
            p["short_bodies"] = max(1, (low - data) // max(1, body_len))
        elif data > high:
            p["long_bodies"] = max(1, (data - high) // max(1, body_len))
    for k in [k for k, v in p.items() if not v]:
        del p[k]
