"""The admin listener (``--admin-bind``): ``GET /metrics`` for Prometheus, ``GET /livez`` and
``GET /readyz`` for health checks; never the app.

A small HTTP/1.1 server (``http.server``) on threads of its own, on an address of its own:
it is off the event loop and off the hot path, and a request to it never reaches the app.
``GET /metrics`` (and ``HEAD``) answers in the Prometheus text exposition format 0.0.4, or
in OpenMetrics 1.0.0 when the ``Accept`` header prefers it; any other path is 404, any other
method 405.

Health (``Health``: two checks the process that serves the listener provides), each a
one-line plain text body, 200 or 503:

- ``/livez``: every event loop answers its heartbeat. One process: the server's
  once-a-second tick, a timer on its event loop, ran within ``--timeout-worker-healthcheck``.
  ``--workers``: the supervisor's loop turns, and every worker was heard from within half
  of that bound (the supervisor kills a worker silent for the whole bound and starts
  another: ``/livez`` reports it before that, not only in the moment it is replaced).
- ``/readyz``: lifespan startup has completed (in every worker) and the drain has not begun
  (``--drain-delay``: the first SIGTERM turns it 503 while the server still serves).

The judgements are pure functions (``judge_liveness``, ``judge_readiness``); the states
they judge are read from the serving threads' objects without a lock: each is one
attribute read, and a health check that is a moment late is still right a moment later.

Where the numbers come from: every server process counts in C into a block of counters
(``fastasgi._http._core``'s ``metrics_*``: plain increments on the connection's path,
on only while a block is attached). The listener only reads blocks:

- one process (no ``--workers``, or ``--reload``): the server attaches a private block
  (``LocalMetrics``) and runs the listener itself;
- ``--workers``: the supervisor maps one shared anonymous block per worker (``SharedMetrics``)
  before it forks; each worker counts into its slot, and the supervisor, which serves the
  listener, adds them up. When a worker exits, its counters are added into a "retired"
  block: totals survive crashes and restarts, and only the gauges (requests in flight, open
  connections) of a dead worker are dropped.

Per-process figures (resident memory, CPU seconds, open fds) are read from ``/proc/<pid>``;
on a system without ``/proc`` they are left out.

The app's own metrics (``prometheus_client``) follow fastasgi's families in the same answer:

- one process: the families of the client's default ``REGISTRY``, once the app has imported
  ``prometheus_client`` (the listener runs in the app's process);
- ``--workers``: the client's multiprocess mode (``AppMultiprocess``). The supervisor points
  ``PROMETHEUS_MULTIPROC_DIR`` at a directory before it forks, each worker's metrics are
  files there, and the listener merges them with ``MultiProcessCollector``. The supervisor
  never imports the app: it only reads the files.

An app family named like fastasgi's own (``fastasgi_*``) is left out (and logged once): the
exposition keeps one HELP and TYPE per family. Without ``prometheus_client`` nothing changes.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import logging
import math
import mmap
import os
import shutil
import socket
import socketserver
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastasgi import _sockets
from fastasgi._http import _core
from fastasgi._version import __version__

logger = logging.getLogger("fastasgi.error")

PREFIX = "fastasgi_"

#: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
#: https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

#: statuses the server answers by itself (requests_refused_total{code}); each is shown, at 0
#: until it happens, so that rate() and alerts have a series from the start
REFUSED_CODES = (400, 408, 413, 414, 431, 500, 501, 503, 504, 505)

#: counter slots the supervisor maps: one per live worker (a rolling restart's new worker
#: needs its own). An anonymous mapping costs a page only once it is written to.
SLOTS = 256

#: connections the listener serves at once; more are closed at once (a scraper needs one)
MAX_CONNECTIONS = 16
#: seconds a connection to the listener may stay silent (an idle keep-alive, a slow client)
CONNECTION_TIMEOUT = 10.0
#: backlog of the admin socket
BACKLOG = 64


#: paths the listener serves
HEALTH_PATHS = ("/livez", "/readyz")

#: a health check: (healthy, one-line reason)
Check = Callable[[], tuple[bool, str]]


@dataclass
class Health:
    """The two checks of the process that serves the listener (the server, or the
    supervisor with ``--workers``)."""

    live: Check
    ready: Check


def judge_liveness(now: float, beats: Iterable[tuple[str, float]], bound: float) -> tuple[bool, str]:
    """``beats``: (who, monotonic time it was last heard from) for every event loop that
    must answer. Healthy when each was heard from within ``bound`` seconds of ``now``."""
    count = 0
    for who, last in beats:
        count += 1
        silent = now - last
        if silent > bound:
            return False, f"{who}: event loop silent for {silent:.1f}s (bound {bound:g}s)"
    return True, f"ok: {count} event loop{'s' if count != 1 else ''} answering"


def judge_readiness(draining: bool, ready: int, total: int, served: bool, workers: bool) -> tuple[bool, str]:
    """``ready`` of ``total`` server processes have completed lifespan startup and accept;
    ``served``: all of them once had (the first startup is over); ``workers``: a supervisor's
    workers rather than one process.

    Ready once every process has started, until the drain. Afterwards a worker being
    replaced (crash, recycling, rolling restart) does not make the whole server unready:
    the others accept on the same listeners, and taking it out of rotation would move all
    of its traffic elsewhere; only no ready worker at all does."""
    if draining:
        return False, "draining"
    if not workers:
        if ready < total:
            return False, "starting: lifespan startup not complete"
        return True, "ok"
    if not served and ready < total:
        return False, f"starting: {ready} of {total} workers ready"
    if ready == 0:
        return False, f"no worker ready: 0 of {total} (restarting)"
    return True, f"ok: {ready} of {total} workers ready"


@dataclass
class ProcessStats:
    """What ``/proc`` says about one server process; ``worker`` is its label value."""

    worker: str
    resident_bytes: int
    cpu_seconds: float
    open_fds: int


@dataclass
class Snapshot:
    """Everything one ``/metrics`` answer shows.

    ``counters`` is a counter block as ``metrics_read`` gives it (merged over the workers);
    ``restarts`` the supervisor's worker restarts by cause (None: no supervisor); ``app``
    the app's families (``prometheus_client`` ``Metric`` objects, fastasgi's names left out).
    """

    counters: dict[str, Any]
    processes: list[ProcessStats] = field(default_factory=list)
    workers_live: int = 1
    restarts: dict[str, int] | None = None
    app: list[Any] = field(default_factory=list)


# -- the exposition formats ----------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]  # (suffix, labels, value)


@dataclass
class _Family:
    name: str  # without the counter's "_total": the OpenMetrics family name
    type: str  # counter, gauge or histogram
    help: str
    samples: list[Sample]


def render(snapshot: Snapshot, openmetrics: bool = False) -> bytes:
    """The ``/metrics`` body of ``snapshot``: Prometheus text 0.0.4, or OpenMetrics 1.0.0."""
    lines: list[str] = []
    for family in _families(snapshot):
        if openmetrics:
            # OpenMetrics names the family without a counter's "_total" and escapes '"'
            # in HELP too (OpenMetrics 1.0.0, "Text format": "escaped-string").
            shown = family.name
            lines.append(f"# HELP {shown} {_escape(family.help, quote=True)}")
        else:
            # 0.0.4: HELP and TYPE name the samples' metric (with "_total" for a counter).
            shown = family.name + ("_total" if family.type == "counter" else "")
            lines.append(f"# HELP {shown} {_escape(family.help, quote=False)}")
        lines.append(f"# TYPE {shown} {family.type}")
        for suffix, labels, value in family.samples:
            lines.append(f"{family.name}{suffix}{_format_labels(labels)} {_format_value(value)}")
    body = ("\n".join(lines) + "\n").encode("utf-8")
    if snapshot.app:
        body += _render_app(snapshot.app, openmetrics)
    return body + (b"# EOF\n" if openmetrics else b"")


class _Collected:
    """Families already collected, in the shape the client's exposition functions read."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def _render_app(families: list[Any], openmetrics: bool) -> bytes:
    """The app's families in the client's own exposition code, so that each of its metric
    types (info, stateset, ``_created`` samples...) is written the way the client writes it."""
    # Any: the client's functions take its registry type; they only call collect()
    collected: Any = _Collected(families)
    if openmetrics:
        from prometheus_client.openmetrics import exposition as openmetrics_exposition

        body = bytes(openmetrics_exposition.generate_latest(collected))
        # One "# EOF" ends the whole answer: fastasgi's families come first.
        return body.removesuffix(b"# EOF\n")
    from prometheus_client import exposition

    return bytes(exposition.generate_latest(collected))


def _escape(text: str, quote: bool) -> str:
    # Both formats: backslash and line feed; label values and OpenMetrics' HELP: '"' too.
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _format_labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value, quote=True)}"' for name, value in labels) + "}"


def _format_value(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _format_le(bound: float) -> str:
    """A bucket bound as the ``le`` label shows it: a float (``0.0001``, ``60.0``, ``+Inf``),
    the canonical form OpenMetrics asks for and Prometheus' own clients write."""
    bound = float(bound)
    return "+Inf" if math.isinf(bound) else repr(bound)


def _counter(name: str, help: str, samples: Iterable[tuple[Labels, float]]) -> _Family:
    return _Family(PREFIX + name, "counter", help, [("_total", labels, value) for labels, value in samples])


def _gauge(name: str, help: str, samples: Iterable[tuple[Labels, float]]) -> _Family:
    return _Family(PREFIX + name, "gauge", help, [("", labels, value) for labels, value in samples])


def _families(snapshot: Snapshot) -> Iterator[_Family]:
    counters = snapshot.counters
    requests = sorted(counters["requests"].items(), key=lambda item: (item[0][0], item[0][1], item[0][2]))
    yield _counter(
        "requests",
        "HTTP requests answered, by method, status code and HTTP version (protocol).",
        (
            ((("method", method), ("code", str(status)), ("protocol", protocol)), count)
            for (method, status, protocol), count in requests
        ),
    )

    histogram: list[Sample] = [
        ("_bucket", (("le", _format_le(bound)),), count) for bound, count in counters["duration_buckets"]
    ]
    histogram.append(("_bucket", (("le", "+Inf"),), counters["duration_count"]))
    histogram.append(("_count", (), counters["duration_count"]))
    histogram.append(("_sum", (), float(counters["duration_sum"])))
    yield _Family(
        PREFIX + "request_duration_seconds",
        "histogram",
        "Seconds from a request's head to the end of its response.",
        histogram,
    )

    yield _gauge("requests_in_flight", "Requests being served now.", [((), counters["in_flight"])])
    yield _gauge(
        "connections_open",
        "Open client connections, by kind (http, websocket).",
        [((("kind", kind),), count) for kind, count in sorted(counters["connections_open"].items())],
    )
    yield _counter(
        "connections_accepted", "Client connections accepted.", [((), counters["connections_accepted"])]
    )
    yield _counter("connections_closed", "Client connections closed.", [((), counters["connections_closed"])])
    yield _counter("received_bytes", "Bytes received from clients.", [((), counters["bytes_received"])])
    yield _counter("sent_bytes", "Bytes sent to clients.", [((), counters["bytes_sent"])])

    refused = dict.fromkeys(REFUSED_CODES, 0)
    refused.update(counters["refused"])
    yield _counter(
        "requests_refused",
        "Requests the server answered itself, without the app, by status code"
        " (500: the app failed before its response head).",
        (((("code", str(code)),), count) for code, count in sorted(refused.items())),
    )
    yield _counter(
        "websocket_messages",
        "WebSocket messages, by direction (in: from clients, out: to clients).",
        [
            ((("direction", "in"),), counters["ws_messages_in"]),
            ((("direction", "out"),), counters["ws_messages_out"]),
        ],
    )
    yield _counter("app_exceptions", "Exceptions the app raised.", [((), counters["app_exceptions"])])

    if snapshot.restarts is not None:
        yield _counter(
            "worker_restarts",
            "Worker processes replaced, by cause (crash: died unasked; heartbeat: killed after"
            " its healthcheck failed; max_requests: --limit-max-requests; max_memory: --limit-max-memory;"
            " lifetime: --limit-worker-lifetime; reload: SIGHUP).",
            [((("cause", cause),), count) for cause, count in sorted(snapshot.restarts.items())],
        )
    yield _gauge(
        "workers_live",
        "Server processes alive (serving, starting or draining).",
        [((), snapshot.workers_live)],
    )

    processes = sorted(snapshot.processes, key=lambda stats: _worker_order(stats.worker))
    yield _gauge(
        "process_resident_memory_bytes",
        "Resident memory of each server process, in bytes.",
        (((("worker", stats.worker),), stats.resident_bytes) for stats in processes),
    )
    yield _counter(
        "process_cpu_seconds",
        "User and system CPU time of each server process, in seconds.",
        (((("worker", stats.worker),), stats.cpu_seconds) for stats in processes),
    )
    yield _gauge(
        "process_open_fds",
        "Open file descriptors of each server process.",
        (((("worker", stats.worker),), stats.open_fds) for stats in processes),
    )


def _worker_order(worker: str) -> tuple[int, str]:
    return (int(worker), "") if worker.isdigit() else (1 << 30, worker)


def wants_openmetrics(accept: str | None) -> bool:
    """Content negotiation (RFC 9110 12.5.1) between OpenMetrics 1.0.0 and text 0.0.4: True
    when ``accept`` rates OpenMetrics (no version, or 1.0.0) above 0 and at least as high as
    the text format. No ``Accept``, or ``*/*``, gets the text format (what a browser or curl
    is shown)."""
    if not accept:
        return False
    openmetrics_q = text_q = 0.0
    for media_range in accept.split(","):
        media_type, *parameters = media_range.split(";")
        media_type = media_type.strip().lower()
        params = {}
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        if not 0.0 <= q <= 1.0:
            q = 0.0
        version = params.get("version")
        if media_type == "application/openmetrics-text":
            if version in (None, "1.0.0"):
                openmetrics_q = max(openmetrics_q, q)
        elif media_type == "text/plain":
            if version in (None, "0.0.4"):
                text_q = max(text_q, q)
        elif media_type in ("text/*", "*/*"):
            text_q = max(text_q, q)
    return openmetrics_q > 0.0 and openmetrics_q >= text_q


# -- what /proc says about a process --------------------------------------------------------

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_process(pid: int, worker: str) -> ProcessStats | None:
    """RSS, CPU seconds and open fds of ``pid`` from /proc (proc(5)); None when it is gone
    or there is no /proc."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
        open_fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; utime and stime
    # are fields 14 and 15, in clock ticks.
    fields = data[data.rindex(b")") + 2 :].split()
    cpu_ticks = int(fields[11]) + int(fields[12])
    return ProcessStats(worker, resident_pages * _PAGE_SIZE, cpu_ticks / _CLOCK_TICKS, open_fds)


# -- the app's metrics (prometheus_client) ------------------------------------------------

#: prometheus_client's multiprocess mode: where each process keeps its metric files
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: the name older releases of the client read (it still does, with a DeprecationWarning)
MULTIPROC_ENV_OLD = "prometheus_multiproc_dir"

_left_out: set[str] = set()
_failed_once = False


def app_families(collect: Callable[[], Iterable[Any]]) -> list[Any]:
    """The families ``collect()`` gives, less those that would collide with fastasgi's own
    (``fastasgi_*``) or come twice; [] (logged once) when collecting fails: fastasgi's own
    families are still answered."""
    global _failed_once
    try:
        collected = list(collect())
    except Exception:
        if not _failed_once:
            _failed_once = True
            logger.exception("The admin listener could not collect the app's prometheus_client metrics")
        return []
    families = []
    seen: set[str] = set()
    for family in collected:
        name = family.name
        if name.startswith(PREFIX) or name in seen:
            if name not in _left_out:
                _left_out.add(name)
                logger.warning(
                    "The app's metric %r is not served on the admin listener: %s.",
                    name,
                    "fastasgi_* names are fastasgi's own" if name.startswith(PREFIX) else "it comes twice",
                )
            continue
        seen.add(name)
        families.append(family)
    return families


def single_process_app_families() -> list[Any]:
    """One process: the app's default ``REGISTRY``, once the app has imported the client
    (installed but unused, it is not imported here, and its process_* and python_*
    collectors are not shown for an app that does not use it)."""
    client = sys.modules.get("prometheus_client")
    registry = getattr(client, "REGISTRY", None)
    if registry is None:
        return []
    return app_families(registry.collect)


class AppMultiprocess:
    """``--workers``: prometheus_client's multiprocess mode, run by the supervisor.

    ``setup()`` (before the first fork) points ``PROMETHEUS_MULTIPROC_DIR`` at a private
    directory it makes, or keeps the one the user set; the workers inherit the variable and
    the client in each writes its metrics to files there. ``collect()`` merges the files
    (``MultiProcessCollector``: counters and histograms are summed over every worker, the
    dead ones included, so that totals never go backwards); ``process_dead(pid)`` is the
    client's ``mark_process_dead``, which drops a dead worker's live gauges; ``close()``
    removes the directory it made and puts the variable back as it was.
    """

    def __init__(self, path: str, owned: bool) -> None:
        self.path = path
        #: made by ``setup`` (removed by ``close``), not the user's
        self.owned = owned
        from prometheus_client import multiprocess

        self._multiprocess = multiprocess
        self._collector = multiprocess.MultiProcessCollector(None, path=path)

    @classmethod
    def setup(cls, environ: Any = None) -> AppMultiprocess | None:
        """None when prometheus_client is not installed, or the user's directory is not one."""
        environ = os.environ if environ is None else environ
        if importlib.util.find_spec("prometheus_client") is None:
            return None
        users = environ.get(MULTIPROC_ENV) or environ.get(MULTIPROC_ENV_OLD)
        if users:
            if not os.path.isdir(users):
                logger.warning(
                    "%s=%s is not a directory: the app's prometheus_client metrics are not served.",
                    MULTIPROC_ENV,
                    users,
                )
                return None
            return cls(users, owned=False)
        if "prometheus_client.values" in sys.modules:
            # The client chose its value class when it was imported, without the variable:
            # metrics made in the workers would stay in each worker's memory.
            logger.warning(
                "prometheus_client was imported before the supervisor set %s: the workers'"
                " metrics cannot be collected (set it before starting, or import the client later).",
                MULTIPROC_ENV,
            )
            return None
        path = tempfile.mkdtemp(prefix="fastasgi-metrics-")
        # Set before the client is imported anywhere (here too: MultiProcessCollector's
        # import loads it), since the client reads it when it is imported.
        environ[MULTIPROC_ENV] = path
        try:
            return cls(path, owned=True)
        except BaseException:
            del environ[MULTIPROC_ENV]
            shutil.rmtree(path, ignore_errors=True)
            raise

    def collect(self) -> list[Any]:
        return app_families(self._collector.collect)

    def process_dead(self, pid: int) -> None:
        try:
            self._multiprocess.mark_process_dead(pid, self.path)
        except OSError as exc:
            logger.warning("Could not drop the prometheus_client gauges of process [%d]: %s", pid, exc)

    def close(self, environ: Any = None) -> None:
        if not self.owned:
            return
        environ = os.environ if environ is None else environ
        if environ.get(MULTIPROC_ENV) == self.path:
            del environ[MULTIPROC_ENV]
        shutil.rmtree(self.path, ignore_errors=True)


# -- the counter blocks ---------------------------------------------------------------------


def count_into(block: Any) -> None:
    """Count this process's traffic into ``block`` (a worker's slot of ``SharedMetrics``)."""
    _core.metrics_attach(block)


class LocalMetrics:
    """One server process: a private counter block, counted into while attached."""

    def __init__(self) -> None:
        self.block = bytearray(_core.METRICS_SIZE)

    def attach(self) -> None:
        _core.metrics_attach(self.block)

    def detach(self) -> None:
        _core.metrics_detach()

    def collect(self) -> Snapshot:
        stats = read_process(os.getpid(), "0")
        return Snapshot(
            _core.metrics_read(self.block),
            [stats] if stats is not None else [],
            1,
            None,
            single_process_app_families(),
        )


class SharedMetrics:
    """``--workers``: the supervisor's counter blocks, one slot per live worker in one shared
    anonymous mapping made before the workers are forked, plus the counts of the workers
    that have exited (the retired block).

    The supervisor's loop takes and releases slots; the admin listener's threads collect.
    ``lock`` keeps a collection from seeing a slot both in the retired block and still live.
    """

    def __init__(self, slots: int = SLOTS, app: AppMultiprocess | None = None) -> None:
        self.slots = slots
        #: the app's prometheus_client metrics of every worker (None: not collected)
        self.app = app
        # MAP_SHARED | MAP_ANONYMOUS (mmap(2)): the children forked later count into the
        # very pages this process reads.
        self.map = mmap.mmap(-1, _core.METRICS_SIZE * slots)
        self.retired = bytearray(_core.METRICS_SIZE)
        #: slot -> PID of the worker counting into it (0 while it is being forked)
        self.owners: dict[int, int] = {}
        #: the supervisor's worker restarts by cause
        self.restarts: dict[str, int] = {}
        self.lock = threading.Lock()

    def block(self, slot: int) -> memoryview:
        """The counter block of ``slot`` (a view of the shared mapping)."""
        size = _core.METRICS_SIZE
        return memoryview(self.map)[slot * size : (slot + 1) * size]

    def take(self) -> int | None:
        """A free slot for a worker about to be forked (None: all are taken)."""
        with self.lock:
            for slot in range(self.slots):
                if slot not in self.owners:
                    self.owners[slot] = 0
                    return slot
        return None

    def assign(self, slot: int, pid: int) -> None:
        with self.lock:
            self.owners[slot] = pid

    def release(self, slot: int) -> None:
        """The worker of ``slot`` has exited (or was never forked): keep its counts in the
        retired block and free the slot, zeroed for the next worker."""
        with self.lock, self.block(slot) as block:
            _core.metrics_add(self.retired, block)
            _core.metrics_reset(block)
            del self.owners[slot]

    def count_restart(self, cause: str) -> None:
        with self.lock:
            self.restarts[cause] = self.restarts.get(cause, 0) + 1

    def collect(self) -> Snapshot:
        """The retired block plus every live slot, and each live worker's process figures."""
        with self.lock:
            owners = sorted(self.owners.items())
            restarts = dict(self.restarts)
            total = bytearray(self.retired)
            in_flight = 0
            connections_open: dict[str, int] = {}
            for slot, _ in owners:
                with self.block(slot) as block:
                    _core.metrics_add(total, block)
                    # metrics_add leaves the gauges alone: those of live workers add up here.
                    gauges = _core.metrics_read(block)
                in_flight += gauges["in_flight"]
                for kind, count in gauges["connections_open"].items():
                    connections_open[kind] = connections_open.get(kind, 0) + count
        counters = _core.metrics_read(total)
        counters["in_flight"] = in_flight
        counters["connections_open"] = {
            kind: connections_open.get(kind, 0) for kind in counters["connections_open"]
        }
        processes = []
        for slot, pid in owners:
            stats = read_process(pid, str(slot)) if pid else None
            if stats is not None:
                processes.append(stats)
        live = sum(1 for _, pid in owners if pid)
        app = self.app.collect() if self.app is not None else []
        return Snapshot(counters, processes, live, restarts, app)

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a view is still held (a worker's own slot)
            self.map.close()


# -- the listener ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CONNECTION_TIMEOUT
    server: _Listener

    def version_string(self) -> str:
        return f"fastasgi/{__version__}"

    def do_GET(self) -> None:
        self._route(send_body=True)

    def do_HEAD(self) -> None:
        self._route(send_body=False)

    def __getattr__(self, name: str) -> Any:
        # http.server dispatches on "do_" + the method; every method but GET and HEAD is 405
        # (RFC 9110 15.5.6), not http.server's 501.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _route(self, send_body: bool) -> None:
        path = self.path.partition("?")[0]
        if path == "/metrics":
            self._metrics(send_body)
        elif path in HEALTH_PATHS and self.server.health is not None:
            self._health(path, send_body)
        else:
            self._reply(
                404,
                b"Not Found: the admin listener serves /metrics, /livez and /readyz\n",
                send_body=send_body,
            )

    def _health(self, path: str, send_body: bool) -> None:
        health = self.server.health
        assert health is not None
        try:
            healthy, reason = health.live() if path == "/livez" else health.ready()
        except Exception:
            logger.exception("The admin listener could not check %s", path)
            healthy, reason = False, "health check failed"
        # no-store: a probe must never be answered by a cache (RFC 9111 5.2.2.5)
        self._reply(
            200 if healthy else 503,
            (reason.splitlines() or [""])[0].encode("utf-8", "replace") + b"\n",
            extra=[("Cache-Control", "no-store")],
            send_body=send_body,
        )

    def _metrics(self, send_body: bool) -> None:
        try:
            snapshot = self.server.collect()
        except Exception:
            logger.exception("The admin listener could not collect the metrics")
            self._reply(500, b"Internal Server Error\n", send_body=send_body)
            return
        openmetrics = wants_openmetrics(self.headers.get("Accept"))
        self._reply(
            200,
            render(snapshot, openmetrics),
            CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT,
            send_body=send_body,
        )

    def _not_allowed(self) -> None:
        # Its body (if any) is not read: close rather than read it as the next request.
        self.close_connection = True
        self._reply(405, b"Method Not Allowed\n", extra=[("Allow", "GET, HEAD"), ("Connection", "close")])

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        extra: Iterable[tuple[str, str]] = (),
        send_body: bool = True,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news; errors are answered, not logged


class _Listener(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """http.server on a socket bound elsewhere (``_sockets.bind``), a thread per connection,
    at most ``MAX_CONNECTIONS`` of them."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, collect: Callable[[], Snapshot], health: Health | None) -> None:
        socketserver.BaseServer.__init__(self, sock.getsockname(), _Handler)
        self.socket = sock
        self.collect = collect
        self.health = health
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._open_lock:
            if len(self._open) >= MAX_CONNECTIONS:
                return False
            self._open.add(request)
        return True

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def connections(self) -> list[socket.socket]:
        with self._open_lock:
            return list(self._open)


class AdminServer:
    """The admin listener on ``sockets`` (see ``bind``), answering from ``collect()`` and
    ``health`` (None: no health paths)."""

    def __init__(
        self,
        sockets: list[socket.socket],
        collect: Callable[[], Snapshot],
        unix_paths: list[str],
        health: Health | None = None,
    ) -> None:
        self.sockets = sockets
        self.unix_paths = unix_paths
        self._listeners = [_Listener(sock, collect, health) for sock in sockets]
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for listener in self._listeners:
            thread = threading.Thread(
                target=listener.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="fastasgi-admin",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop serving, close the sockets, remove a unix socket file made for them."""
        for listener in self._listeners:
            if self._threads:
                listener.shutdown()
            listener.server_close()
        for thread in self._threads:
            thread.join(5.0)
        self._threads = []
        _sockets.remove_unix_files(self.unix_paths)

    def close_in_child(self) -> None:
        """In a process forked from the one serving: drop its copies of the listener's
        sockets (the listening ones and the connections), without touching them for the
        parent, which keeps serving."""
        for listener in self._listeners:
            for connection in listener.connections():
                connection.close()
            listener.socket.close()


def bind(endpoint: _sockets.Endpoint) -> list[socket.socket]:
    """The admin listener's sockets; raises ``BindError`` as ``_sockets.bind`` does."""
    return _sockets.bind([endpoint], BACKLOG)


def start(
    endpoint: _sockets.Endpoint, collect: Callable[[], Snapshot], health: Health | None = None
) -> AdminServer:
    """Bind ``endpoint``, log where, and serve ``collect()`` and ``health`` from threads.
    Raises ``OSError`` (``BindError``) when the address cannot be bound."""
    sockets = bind(endpoint)
    server = AdminServer(sockets, collect, _sockets.unix_paths([endpoint]), health)
    for sock in sockets:
        if sock.family == socket.AF_UNIX:
            logger.info("Admin listener (GET /metrics) on unix socket %s", sock.getsockname())
        else:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            logger.info("Admin listener (GET /metrics) on http://%s:%d/metrics", shown, port)
    server.start()
    return server
