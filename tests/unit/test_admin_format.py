"""The admin listener's exposition formats, from hand-made snapshots (fastasgi.admin.render):
Prometheus text 0.0.4 and OpenMetrics 1.0.0, escaping, the histogram, content negotiation;
the shared counter blocks of --workers over the real core; the listener itself on loopback,
in-process; and the --admin-bind setting."""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket

import pytest

from fastasgi import admin
from fastasgi._http import _core
from fastasgi.config import Config, ConfigError

BOUNDS = (0.0001, 0.001, 0.1, 60.0)


def counters(**changes) -> dict:
    """A counter block as metrics_read gives it: all zero unless changed."""
    block = {
        "requests": {},
        "duration_buckets": [(bound, 0) for bound in BOUNDS],
        "duration_sum": 0.0,
        "duration_count": 0,
        "in_flight": 0,
        "connections_open": {"http": 0, "websocket": 0},
        "connections_accepted": 0,
        "connections_closed": 0,
        "bytes_received": 0,
        "bytes_sent": 0,
        "refused": {},
        "ws_messages_in": 0,
        "ws_messages_out": 0,
        "app_exceptions": 0,
    }
    block.update(changes)
    return block


def text(snapshot: admin.Snapshot, openmetrics: bool = False) -> str:
    return admin.render(snapshot, openmetrics).decode("utf-8")


def samples(body: str) -> dict[str, float]:
    """``name{labels}`` -> value, for every sample line."""
    found = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


# Just enough of both grammars to catch a malformed line: a sample is a metric name,
# optional labels with quoted and escaped values, one space and a number.
SAMPLE_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? '
    r"(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$"
)


def assert_well_formed(body: str, openmetrics: bool) -> None:
    assert body.endswith("\n")
    lines = body.splitlines()
    if openmetrics:
        assert lines[-1] == "# EOF"
        assert lines.count("# EOF") == 1
        lines = lines[:-1]
    else:
        assert "# EOF" not in lines
    families = []
    for line in lines:
        if line.startswith("# TYPE "):
            families.append(line.split()[2])
        elif line.startswith("# HELP "):
            assert "\n" not in line
        else:
            assert SAMPLE_LINE.match(line), line
    assert len(families) == len(set(families)), "a family shown twice"


BUSY = admin.Snapshot(
    counters(
        requests={("GET", 200, "1.1"): 5, ("POST", 500, "1.0"): 2, ("OTHER", 404, "1.1"): 1},
        duration_buckets=[(0.0001, 1), (0.001, 3), (0.1, 7), (60.0, 8)],
        duration_sum=1.25,
        duration_count=9,
        in_flight=2,
        connections_open={"http": 3, "websocket": 1},
        connections_accepted=10,
        connections_closed=6,
        bytes_received=1000,
        bytes_sent=5000,
        refused={400: 3, 503: 1},
        ws_messages_in=4,
        ws_messages_out=5,
        app_exceptions=1,
    ),
    [admin.ProcessStats("1", 2048, 0.5, 12), admin.ProcessStats("0", 1024, 1.5, 10)],
    workers_live=2,
    restarts={"crash": 1, "heartbeat": 0, "max_requests": 2, "reload": 0},
)


# -- both formats ------------------------------------------------------------------------


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text-0.0.4", "openmetrics"])
def test_every_metric_is_there_and_well_formed(openmetrics):
    body = text(BUSY, openmetrics)
    assert_well_formed(body, openmetrics)
    found = samples(body)
    assert found['fastasgi_requests_total{method="GET",code="200",protocol="1.1"}'] == 5
    assert found['fastasgi_requests_total{method="POST",code="500",protocol="1.0"}'] == 2
    assert found['fastasgi_requests_total{method="OTHER",code="404",protocol="1.1"}'] == 1
    assert found["fastasgi_requests_in_flight"] == 2
    assert found['fastasgi_connections_open{kind="http"}'] == 3
    assert found['fastasgi_connections_open{kind="websocket"}'] == 1
    assert found["fastasgi_connections_accepted_total"] == 10
    assert found["fastasgi_connections_closed_total"] == 6
    assert found["fastasgi_received_bytes_total"] == 1000
    assert found["fastasgi_sent_bytes_total"] == 5000
    assert found['fastasgi_requests_refused_total{code="400"}'] == 3
    assert found['fastasgi_requests_refused_total{code="503"}'] == 1
    assert found['fastasgi_requests_refused_total{code="431"}'] == 0  # shown before it happens
    assert found['fastasgi_websocket_messages_total{direction="in"}'] == 4
    assert found['fastasgi_websocket_messages_total{direction="out"}'] == 5
    assert found["fastasgi_app_exceptions_total"] == 1
    assert found['fastasgi_worker_restarts_total{cause="crash"}'] == 1
    assert found['fastasgi_worker_restarts_total{cause="max_requests"}'] == 2
    assert found["fastasgi_workers_live"] == 2
    assert found['fastasgi_process_resident_memory_bytes{worker="0"}'] == 1024
    assert found['fastasgi_process_cpu_seconds_total{worker="1"}'] == 0.5
    assert found['fastasgi_process_open_fds{worker="1"}'] == 12
    # workers in order, whatever order they came in
    assert body.index('open_fds{worker="0"}') < body.index('open_fds{worker="1"}')


def test_one_process_has_no_restarts():
    body = text(admin.Snapshot(counters(), [admin.ProcessStats("0", 1, 0.0, 3)]))
    assert "fastasgi_worker_restarts" not in body
    assert samples(body)["fastasgi_workers_live"] == 1


def test_an_empty_block_still_has_every_family():
    body = text(admin.Snapshot(counters()))
    assert_well_formed(body, openmetrics=False)
    for family in (
        "fastasgi_requests_total",
        "fastasgi_request_duration_seconds",
        "fastasgi_process_open_fds",
    ):
        assert f"# TYPE {family} " in body


# -- naming: 0.0.4 names the sample, OpenMetrics the family --------------------------------


def test_text_format_types_the_sample_names():
    body = text(BUSY)
    assert "# TYPE fastasgi_requests_total counter" in body
    assert "# HELP fastasgi_requests_total " in body
    assert "# TYPE fastasgi_process_cpu_seconds_total counter" in body
    assert "# TYPE fastasgi_requests_in_flight gauge" in body
    assert "# TYPE fastasgi_request_duration_seconds histogram" in body


def test_openmetrics_types_the_family_without_total():
    body = text(BUSY, openmetrics=True)
    assert "# TYPE fastasgi_requests counter" in body
    assert "# HELP fastasgi_requests " in body
    assert "# TYPE fastasgi_requests_total" not in body
    assert "# TYPE fastasgi_sent_bytes counter" in body
    assert "# TYPE fastasgi_process_cpu_seconds counter" in body
    # the samples keep their _total
    assert 'fastasgi_requests_total{method="GET",code="200",protocol="1.1"} 5' in body
    # gauges and histograms are named alike in both formats
    assert "# TYPE fastasgi_requests_in_flight gauge" in body


def test_every_counter_sample_ends_in_total():
    body = text(BUSY, openmetrics=True)
    counters_ = {line.split()[2] for line in body.splitlines() if line.endswith(" counter")}
    for line in body.splitlines():
        if not line.startswith("#"):
            name = re.match(r"[a-z_]+", line).group(0)
            if name.removesuffix("_total") in counters_:
                assert name.endswith("_total"), line


# -- the histogram -----------------------------------------------------------------------


def test_histogram_buckets_are_cumulative_and_end_at_inf():
    lines = [line for line in text(BUSY).splitlines() if line.startswith("fastasgi_request_duration_seconds")]
    assert lines == [
        'fastasgi_request_duration_seconds_bucket{le="0.0001"} 1',
        'fastasgi_request_duration_seconds_bucket{le="0.001"} 3',
        'fastasgi_request_duration_seconds_bucket{le="0.1"} 7',
        'fastasgi_request_duration_seconds_bucket{le="60.0"} 8',
        # requests over 60 s are only in +Inf, which is the count
        'fastasgi_request_duration_seconds_bucket{le="+Inf"} 9',
        "fastasgi_request_duration_seconds_count 9",
        "fastasgi_request_duration_seconds_sum 1.25",
    ]


def test_histogram_le_is_a_float_in_both_formats():
    for openmetrics in (False, True):
        body = text(BUSY, openmetrics)
        bounds = re.findall(r'_bucket\{le="([^"]+)"\}', body)
        assert bounds == ["0.0001", "0.001", "0.1", "60.0", "+Inf"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0.0"), (12, "12.0"), (0.5, "0.5"), (1e-05, "1e-05"), (float("inf"), "+Inf"), (float("nan"), "NaN")],
)
def test_float_values(value, shown):
    snapshot = admin.Snapshot(counters(duration_sum=value))
    assert f"fastasgi_request_duration_seconds_sum {shown}\n" in text(snapshot)


def test_integer_values_stay_integers():
    body = text(admin.Snapshot(counters(bytes_sent=2**63 + 5)))
    assert f"fastasgi_sent_bytes_total {2**63 + 5}\n" in body


# -- escaping ----------------------------------------------------------------------------


def test_label_values_are_escaped():
    nasty = 'a"b\\c\nd'
    snapshot = admin.Snapshot(counters(requests={(nasty, 200, "1.1"): 1}))
    for openmetrics in (False, True):
        body = text(snapshot, openmetrics)
        assert 'fastasgi_requests_total{method="a\\"b\\\\c\\nd",code="200",protocol="1.1"} 1' in body
        assert_well_formed(body, openmetrics)


def test_worker_label_is_escaped():
    snapshot = admin.Snapshot(counters(), [admin.ProcessStats('w"1', 1, 0.0, 1)])
    assert 'fastasgi_process_open_fds{worker="w\\"1"} 1' in text(snapshot)


def test_help_escaping_differs_between_formats():
    family = admin._Family("fastasgi_x", "gauge", 'back\\slash "quoted"\nnext', [("", (), 1)])
    assert admin._escape(family.help, quote=False) == 'back\\\\slash "quoted"\\nnext'
    assert admin._escape(family.help, quote=True) == 'back\\\\slash \\"quoted\\"\\nnext'


# -- content negotiation -----------------------------------------------------------------

PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("text/plain", False),
        ("text/html,application/xhtml+xml,*/*;q=0.8", False),  # a browser
        (PROMETHEUS_2, True),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
        ("Application/OpenMetrics-Text;Version=1.0.0", True),
        ("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5", False),
        ("text/plain;q=0.5,application/openmetrics-text;q=0.5", True),  # a tie: as asked first
        ("application/openmetrics-text;version=0.0.1", False),  # a version we do not write
        ("application/openmetrics-text;version=2.0.0,text/plain", False),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;q=x", False),
        ("application/openmetrics-text;q=0.3,*/*;q=0.1", True),
    ],
)
def test_negotiation(accept, openmetrics):
    assert admin.wants_openmetrics(accept) is openmetrics


# -- the shared counter blocks of --workers, over the real core ---------------------------


@pytest.fixture
def shared():
    metrics = admin.SharedMetrics(slots=4)
    yield metrics
    _core.metrics_detach()
    metrics.close()


def count_websocket(block, messages_in: int) -> None:
    """Count into ``block`` as a worker would: one websocket connection's messages and its
    close (which also lowers the open-websocket gauge)."""
    _core.metrics_attach(block)
    try:
        _core.metrics_ws(messages_in=messages_in, messages_out=1, bytes_in=100, closed=1)
    finally:
        _core.metrics_detach()


def test_slots_add_up_and_survive_their_worker(shared):
    first, second = shared.take(), shared.take()
    assert (first, second) == (0, 1)
    shared.assign(first, 101)
    shared.assign(second, 102)
    with shared.block(first) as block:
        count_websocket(block, 3)
    with shared.block(second) as block:
        count_websocket(block, 4)
    collected = shared.collect()
    assert collected.counters["ws_messages_in"] == 7
    assert collected.counters["bytes_received"] == 200
    assert collected.counters["connections_open"]["websocket"] == -2  # live gauges add up

    shared.release(first)  # its worker exited
    collected = shared.collect()
    assert collected.counters["ws_messages_in"] == 7
    assert collected.counters["connections_closed"] == 2
    assert collected.counters["connections_open"]["websocket"] == -1  # a dead worker's gauges go

    # the freed slot is reused, zeroed
    assert shared.take() == first
    with shared.block(first) as block:
        assert _core.metrics_read(block)["ws_messages_in"] == 0


def test_collect_reports_live_workers_and_restarts(shared):
    slot = shared.take()
    pending = shared.take()  # being forked: no PID yet
    shared.assign(slot, 999_999_999)  # no such process: no /proc figures
    shared.count_restart("crash")
    shared.count_restart("crash")
    collected = shared.collect()
    assert collected.workers_live == 1
    assert collected.processes == []
    assert collected.restarts == {"crash": 2}
    shared.release(pending)
    assert shared.collect().workers_live == 1


def test_slots_run_out(shared):
    assert [shared.take() for _ in range(5)] == [0, 1, 2, 3, None]


def test_read_process_of_this_process():
    stats = admin.read_process(os.getpid(), "0")
    assert stats is not None
    assert stats.resident_bytes > 1 << 20
    assert stats.open_fds >= 3
    assert stats.cpu_seconds > 0
    assert admin.read_process(999_999_999, "0") is None


# -- the listener, in-process on loopback --------------------------------------------------


@pytest.fixture
def listener():
    server = admin.start(("tcp", ("127.0.0.1", 0)), lambda: BUSY)
    yield server.sockets[0].getsockname()[1]
    server.close()


def request(port: int, method: str, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def test_listener_serves_metrics(listener):
    response = request(listener, "GET", "/metrics")
    assert response.status == 200
    assert response.getheader("Content-Type") == admin.CONTENT_TYPE_TEXT
    assert response.body == admin.render(BUSY)
    assert int(response.getheader("Content-Length")) == len(response.body)


def test_listener_negotiates_openmetrics(listener):
    response = request(listener, "GET", "/metrics?x=1", {"Accept": PROMETHEUS_2})
    assert response.getheader("Content-Type") == admin.CONTENT_TYPE_OPENMETRICS
    assert response.body.endswith(b"# EOF\n")


def test_listener_head(listener):
    response = request(listener, "HEAD", "/metrics")
    assert response.status == 200
    assert response.body == b""
    assert int(response.getheader("Content-Length")) == len(admin.render(BUSY))


@pytest.mark.parametrize("path", ["/", "/metrics/", "/metricsx", "/livez"])
def test_listener_other_paths_are_404(listener, path):
    assert request(listener, "GET", path).status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_listener_other_methods_are_405(listener, method):
    response = request(listener, method, "/metrics")
    assert response.status == 405
    assert response.getheader("Allow") == "GET, HEAD"


def test_listener_keeps_the_connection_alive(listener):
    connection = http.client.HTTPConnection("127.0.0.1", listener, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
        assert connection.sock is not None
    finally:
        connection.close()


def test_a_failing_collection_is_a_500(caplog):
    def broken() -> admin.Snapshot:
        raise RuntimeError("boom")

    server = admin.start(("tcp", ("127.0.0.1", 0)), broken)
    # directly on the logger: an earlier test's logging configuration may stop propagation
    logger = logging.getLogger("fastasgi.error")
    logger.addHandler(caplog.handler)
    try:
        assert request(server.sockets[0].getsockname()[1], "GET", "/metrics").status == 500
    finally:
        server.close()
        logger.removeHandler(caplog.handler)
    assert "could not collect" in caplog.text


def test_listener_on_a_unix_socket(tmp_path):
    path = str(tmp_path / "admin.sock")
    server = admin.start(("unix", path), lambda: BUSY)
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(path)
            client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := client.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200 ")
        assert response.endswith(admin.render(BUSY))
    finally:
        server.close()
    assert not os.path.exists(path)


# -- the --admin-bind setting -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "endpoint"),
    [
        (None, None),
        ("127.0.0.1:9100", ("tcp", ("127.0.0.1", 9100))),
        ("[::1]:9100", ("tcp", ("::1", 9100))),
        (":9100", ("tcp", (None, 9100))),
        ("unix:/run/fastasgi-admin.sock", ("unix", "/run/fastasgi-admin.sock")),
    ],
)
def test_admin_bind_values(value, endpoint):
    assert Config("app:app", admin_bind=value).admin_endpoint == endpoint


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("localhost", "is not HOST:PORT, [IPV6]:PORT or unix:PATH"),
        ("[::1]", "is not HOST:PORT, [IPV6]:PORT or unix:PATH"),
        ("fd://3", "is not HOST:PORT, [IPV6]:PORT or unix:PATH"),
        ("127.0.0.1:http", "has an invalid port 'http'"),
        ("unix:", "has no socket path after 'unix:'"),
        ("", "is not an address"),
        ("127.0.0.1:8000", "is an address the app is served on; the admin listener needs its own"),
        ("0.0.0.0:8000", "is an address the app is served on; the admin listener needs its own"),
    ],
)
def test_bad_admin_bind_values(value, reason):
    with pytest.raises(ConfigError) as caught:
        Config("app:app", admin_bind=value)
    assert str(caught.value) == f"Invalid value for '--admin-bind': {value!r} {reason}."


def test_admin_bind_must_differ_from_every_app_address():
    with pytest.raises(ConfigError, match="served on"):
        Config("app:app", bind=["127.0.0.1:9000", "unix:/tmp/app.sock"], admin_bind="unix:/tmp/app.sock")
    with pytest.raises(ConfigError, match="served on"):
        Config("app:app", bind=[":9000"], admin_bind="127.0.0.1:9000")
    assert Config("app:app", port=0, admin_bind="127.0.0.1:0").admin_endpoint == ("tcp", ("127.0.0.1", 0))
    assert Config("app:app", port=9000, admin_bind="127.0.0.1:9001").admin_endpoint is not None
