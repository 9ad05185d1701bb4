"""``--admin-bind``: the admin listener and its Prometheus metrics, run for real.

A server (one process, or a supervisor with ``--workers 2``) serves ``sup_app`` (which
answers with the PID of the process that served it) with ``--admin-bind 127.0.0.1:0``; the
admin port is read from the "Admin listener" log line. The counts must be exact: a known
number of requests gives exactly that ``fastasgi_requests_total``, also after a worker was
killed with SIGKILL and replaced. At the end a real Prometheus (Debian's package) scrapes
the listener and its HTTP API must return the same sums. ``prom_app`` counts in
prometheus_client: its counter, merged over the workers, is scraped the same way.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import pytest

from support.server import ServerProcess, error_lines, free_port, run_cli, server_env
from support.supervisors import Supervised, get, wait_until

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool")
ADMIN_LINE = re.compile(r"Admin listener \(GET /metrics\) on http://127\.0\.0\.1:(\d+)/metrics")
OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="--workers needs os.fork")


def start(*args: str, env: dict[str, str] | None = None) -> Supervised:
    return Supervised.cli("sup_app:app", "--port", "0", *args, env=env)


def admin_port(server: ServerProcess) -> int:
    return int(server.wait_for(ADMIN_LINE.pattern).group(1))


def scrape(port: int, path: str = "/metrics", method: str = "GET", accept: str | None = None):
    """One request to the admin listener: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, headers={"Accept": accept} if accept else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode("utf-8")
    finally:
        connection.close()


def samples(body: str, name: str) -> dict[str, float]:
    """The samples of metric ``name``: labels text -> value."""
    found = {}
    for line in body.splitlines():
        match = re.match(rf"{name}(\{{.*\}})? (\S+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def requests_total(port: int) -> int:
    return int(sum(samples(scrape(port)[2], "fastasgi_requests_total").values()))


def wait_total(port: int, expected: int, timeout: float = 5.0) -> None:
    """Until the listener shows ``expected`` requests (a response is counted as it ends,
    which may be a moment after the client has it); then check that it stays there."""
    seen: list[int] = []

    def reached() -> bool:
        seen.append(requests_total(port))
        return seen[-1] >= expected

    try:
        wait_until(reached, timeout, f"fastasgi_requests_total == {expected}")
    except AssertionError:
        raise AssertionError(f"fastasgi_requests_total: expected {expected}, last seen {seen[-1:]}") from None
    time.sleep(0.2)
    assert requests_total(port) == expected


def served_by(port: int, count: int) -> list[int]:
    """``count`` requests (new connection each); the PIDs that served them."""
    pids = []
    for _ in range(count):
        status, body = get(port)
        assert status == 200
        pids.append(int(body))
    return pids


def spread(port: int, count: int) -> list[int]:
    """``count`` requests served by both of 2 workers: one blocks its worker's event loop
    for a second (``/block``), the others meanwhile can only be taken by the other one."""
    blocked: dict[str, tuple[int, bytes]] = {}
    blocker = threading.Thread(target=lambda: blocked.update(response=get(port, "/block?s=1")), daemon=True)
    blocker.start()
    time.sleep(0.3)
    pids = served_by(port, count - 1)
    blocker.join(10)
    assert blocked["response"][0] == 200
    pids.append(int(blocked["response"][1]))
    assert len(set(pids)) == 2, pids
    return pids


# -- one process -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def single():
    with start("--admin-bind", "127.0.0.1:0") as server:
        server.wait_started()
        server.admin_port = admin_port(server)
        yield server


def test_single_process_counts_exactly(single):
    before = requests_total(single.admin_port)
    pids = served_by(single.port, 7)
    assert set(pids) == {single.pid}
    wait_total(single.admin_port, before + 7)

    body = scrape(single.admin_port)[2]
    assert samples(body, "fastasgi_workers_live") == {"": 1}
    assert set(samples(body, "fastasgi_process_resident_memory_bytes")) == {'{worker="0"}'}
    assert samples(body, "fastasgi_process_open_fds")['{worker="0"}'] > 3
    assert samples(body, "fastasgi_connections_accepted_total")[""] >= 7
    assert samples(body, "fastasgi_request_duration_seconds_count")[""] >= 7
    assert "fastasgi_worker_restarts" not in body  # no supervisor


def test_the_app_never_sees_admin_requests(single):
    before = requests_total(single.admin_port)
    mark = single.log_mark()
    for path in ("/metrics", "/", "/block"):
        scrape(single.admin_port, path)
    scrape(single.admin_port, "/metrics", method="POST")
    time.sleep(0.3)
    assert requests_total(single.admin_port) == before
    # the access log shows every request the app served: none of these
    assert '"GET /' not in single.log_since(mark)
    assert '"POST /' not in single.log_since(mark)


def test_admin_404_and_405(single):
    status, headers, body = scrape(single.admin_port, "/")
    assert status == 404
    status, headers, body = scrape(single.admin_port, "/metrics", method="DELETE")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    status, headers, body = scrape(single.admin_port, "/metrics", method="HEAD")
    assert (status, body) == (200, "")


def test_content_negotiation(single):
    status, headers, body = scrape(single.admin_port)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# EOF" not in body
    status, headers, body = scrape(single.admin_port, accept=OPENMETRICS_ACCEPT)
    assert status == 200
    assert headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert body.endswith("# EOF\n")
    assert "# TYPE fastasgi_requests counter" in body


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")
def test_promtool_accepts_the_text_format(single):
    served_by(single.port, 1)
    body = scrape(single.admin_port)[2]
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_admin_bind_from_the_environment():
    with start(env=server_env({"FASTASGI_ADMIN_BIND": "127.0.0.1:0"})) as server:
        server.wait_started()
        assert scrape(admin_port(server))[0] == 200
        assert server.stop() == 0


# -- --workers 2: the supervisor serves the sum ---------------------------------------------


@needs_fork
def test_workers_totals_are_exact_and_survive_a_killed_worker():
    with start("--workers", "2", "--admin-bind", "127.0.0.1:0") as server:
        port = server.wait_started()
        admin = admin_port(server)
        workers = server.wait_workers(2)

        pids = spread(port, 10)
        assert set(pids) == workers
        wait_total(admin, 10)
        body = scrape(admin)[2]
        assert samples(body, "fastasgi_workers_live") == {"": 2}
        assert set(samples(body, "fastasgi_process_cpu_seconds_total")) == {'{worker="0"}', '{worker="1"}'}
        assert samples(body, "fastasgi_worker_restarts_total") == {
            '{cause="crash"}': 0,
            '{cause="heartbeat"}': 0,
            '{cause="lifetime"}': 0,
            '{cause="max_memory"}': 0,
            '{cause="max_requests"}': 0,
            '{cause="reload"}': 0,
        }

        victim = pids[0]
        os.kill(victim, signal.SIGKILL)
        server.wait_workers(2, exclude={victim})
        wait_total(admin, 10)  # the dead worker's requests are still counted

        pids = spread(port, 6)
        assert victim not in pids
        wait_total(admin, 16)
        body = scrape(admin)[2]
        assert samples(body, "fastasgi_worker_restarts_total")['{cause="crash"}'] == 1
        assert samples(body, "fastasgi_workers_live") == {"": 2}
        # the replacement took the freed slot: still two worker label values
        assert set(samples(body, "fastasgi_process_open_fds")) == {'{worker="0"}', '{worker="1"}'}
        assert server.stop() == 0


@needs_fork
def test_max_requests_restarts_are_counted():
    with start("--workers", "2", "--limit-max-requests", "3", "--admin-bind", "127.0.0.1:0") as server:
        port = server.wait_started()
        admin = admin_port(server)
        server.wait_workers(2)
        served_by(port, 8)  # at least one worker reaches 3 and is replaced
        wait_until(
            lambda: (
                samples(scrape(admin)[2], "fastasgi_worker_restarts_total")['{cause="max_requests"}'] >= 1
            ),
            10,
            "a max_requests restart",
        )
        wait_total(admin, 8)
        assert server.stop() == 0


@needs_fork
def test_workers_admin_on_a_unix_socket(tmp_path):
    path = tmp_path / "admin.sock"
    with start("--workers", "2", "--admin-bind", f"unix:{path}") as server:
        port = server.wait_started()
        server.wait_for(rf"Admin listener \(GET /metrics\) on unix socket {re.escape(str(path))}")
        server.wait_workers(2)
        served_by(port, 3)

        def metrics() -> str:
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(5)
                client.connect(str(path))
                client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                response = b""
                while chunk := client.recv(65536):
                    response += chunk
            assert response.startswith(b"HTTP/1.1 200 ")
            return response.decode()

        wait_until(lambda: sum(samples(metrics(), "fastasgi_requests_total").values()) == 3, 5, "3 requests")
        assert server.stop() == 0
    assert not path.exists()


@needs_fork
def test_workers_do_not_hold_the_admin_socket():
    """The admin listener is the supervisor's alone: a worker forked from it has closed its
    copy of the listening socket."""
    with start("--workers", "2", "--admin-bind", "127.0.0.1:0") as server:
        server.wait_started()
        listening = _listening_inode(admin_port(server))
        assert listening in _socket_inodes(server.pid)
        for pid in server.wait_workers(2):
            assert listening not in _socket_inodes(pid)
        assert server.stop() == 0


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return found


def _listening_inode(port: int) -> str:
    """``socket:[INODE]`` of the listening socket on 127.0.0.1:``port`` (/proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
                return f"socket:[{fields[9]}]"
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


# -- bad settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["localhost", "fd://3", "127.0.0.1:notaport", "[::1]", "unix:", "127.0.0.1:8000", "0.0.0.0:8000"],
)
def test_bad_admin_bind_is_one_line(value):
    result = run_cli("sup_app:app", "--port", "8000", "--admin-bind", value)
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "'--admin-bind'" in lines[0] and repr(value) in lines[0], lines
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["single", "workers"])
def test_admin_address_in_use(workers):
    if workers and not hasattr(os, "fork"):
        pytest.skip("--workers needs os.fork")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("sup_app:app", "--port", "0", *workers, "--admin-bind", f"127.0.0.1:{port}")
    assert result.returncode == 3, result.stderr  # a bind failure, as the app's address
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == [f"ERROR:    [Errno 98] address already in use: 127.0.0.1:{port}"], result.stderr
    assert "Traceback" not in result.stderr


# -- a real Prometheus ---------------------------------------------------------------------


class Prometheus:
    """Debian's Prometheus on a loopback port, scraping ``target`` every second; its data in
    ``directory``. Stopped by its PID."""

    def __init__(self, directory, target: str) -> None:
        self.port = free_port()
        config = directory / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: fastasgi\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.process = ServerProcess(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            cwd=directory,
            logdir=directory,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if not self.process.alive():
                raise AssertionError(f"prometheus exited:\n{self.process.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(ready, timeout, "prometheus to be ready")

    def query(self, expression: str) -> float | None:
        """The value of an instant query with one result (None: no result yet)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expression: str, expected: float, timeout: float = 20.0) -> None:
        seen: list[float | None] = []

        def reached() -> bool:
            seen.append(self.query(expression))
            return seen[-1] == expected

        try:
            wait_until(reached, timeout, expression, interval=0.25)
        except AssertionError:
            raise AssertionError(
                f"{expression}: expected {expected}, Prometheus returned {seen[-3:]}; log:\n{self.process.log()}"
            ) from None

    def close(self) -> None:
        self.process.close(grace=10.0)


@needs_fork
@pytest.mark.skipif(
    not os.path.exists(PROMETHEUS), reason=f"{PROMETHEUS} is absent (apt-get install prometheus)"
)
def test_prometheus_scrapes_the_sum_of_the_workers(tmp_path):
    with start("--workers", "2", "--admin-bind", "127.0.0.1:0") as server:
        port = server.wait_started()
        admin = admin_port(server)
        server.wait_workers(2)
        prometheus = Prometheus(tmp_path, f"127.0.0.1:{admin}")
        try:
            prometheus.wait_ready()
            prometheus.wait_value('up{job="fastasgi"}', 1)

            pids = spread(port, 20)
            prometheus.wait_value("sum(fastasgi_requests_total)", 20)
            prometheus.wait_value("fastasgi_workers_live", 2)

            os.kill(pids[-1], signal.SIGKILL)
            server.wait_workers(2, exclude={pids[-1]})
            spread(port, 10)
            prometheus.wait_value("sum(fastasgi_requests_total)", 30)
            prometheus.wait_value('fastasgi_worker_restarts_total{cause="crash"}', 1)
            # every scrape was a valid OpenMetrics (or text) exposition
            prometheus.wait_value('up{job="fastasgi"}', 1)
            assert prometheus.query("sum(fastasgi_request_duration_seconds_count)") == 30
        finally:
            prometheus.close()
        assert server.stop() == 0


# -- the app's own metrics (prometheus_client) -----------------------------------------------

needs_client = pytest.mark.skipif(
    importlib.util.find_spec("prometheus_client") is None, reason="prometheus_client is not installed"
)


def start_prom(*args: str, env: dict[str, str] | None = None) -> Supervised:
    return Supervised.cli("prom_app:app", "--port", "0", "--admin-bind", "127.0.0.1:0", *args, env=env)


def app_requests(port: int) -> float:
    return sum(samples(scrape(port)[2], "app_requests_total").values())


def assert_promtool_accepts(body: str) -> None:
    if PROMTOOL is None:
        return
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_client
def test_app_metrics_of_one_process():
    with start_prom() as server:
        port = server.wait_started()
        admin = admin_port(server)
        served_by(port, 5)
        wait_total(admin, 5)
        body = scrape(admin)[2]
        assert samples(body, "app_requests_total") == {'{path="/"}': 5}
        # the app's "fastasgi_requests" would add 1000 a request to fastasgi's own family
        assert samples(body, "fastasgi_requests_total") == {'{method="GET",code="200",protocol="1.1"}': 5}
        assert "python_info" in body  # the default REGISTRY, its own collectors with it
        assert_promtool_accepts(body)
        assert server.stop() == 0
    assert "'fastasgi_requests' is not served on the admin listener" in server.stderr


@needs_fork
@needs_client
@pytest.mark.skipif(
    not os.path.exists(PROMETHEUS), reason=f"{PROMETHEUS} is absent (apt-get install prometheus)"
)
def test_prometheus_scrapes_the_apps_counter_summed_over_the_workers(tmp_path):
    with start_prom("--workers", "2") as server:
        port = server.wait_started()
        admin = admin_port(server)
        server.wait_workers(2)
        directory = get(port, "/dir")[1].decode()
        assert os.path.dirname(directory) == tempfile.gettempdir(), directory
        assert os.path.basename(directory).startswith("fastasgi-metrics-")
        prometheus = Prometheus(tmp_path, f"127.0.0.1:{admin}")
        try:
            prometheus.wait_ready()
            prometheus.wait_value('up{job="fastasgi"}', 1)

            pids = spread(port, 12)  # both workers count some
            prometheus.wait_value("sum(app_requests_total)", 12)
            prometheus.wait_value("app_workers_up", 2)
            # /dir too (the app does not count it); the app's impostor family is left out
            prometheus.wait_value("sum(fastasgi_requests_total)", 13)

            os.kill(pids[0], signal.SIGKILL)
            server.wait_workers(2, exclude={pids[0]})
            replaced = time.time()
            wait_until(
                lambda: (prometheus.query('timestamp(up{job="fastasgi"})') or 0) > replaced + 0.1,
                10,
                "a scrape after the replacement started",
            )
            # its counts stay (the client keeps a dead process's counter files); its live
            # gauge goes (mark_process_dead), or the sum would be 3
            assert prometheus.query("app_workers_up") == 2
            assert prometheus.query("sum(app_requests_total)") == 12
            spread(port, 6)
            prometheus.wait_value("sum(app_requests_total)", 18)
            prometheus.wait_value('up{job="fastasgi"}', 1)  # every scrape was a valid exposition
            # the counter never went backwards across the kill: no reset seen by Prometheus
            assert prometheus.query("resets(app_requests_total[5m])") == 0
        finally:
            prometheus.close()
        assert_promtool_accepts(scrape(admin)[2])
        assert server.stop() == 0
    assert not os.path.exists(directory)  # removed by the supervisor on its way out


@needs_fork
@needs_client
def test_the_users_multiprocess_directory_is_used_and_kept(tmp_path):
    directory = tmp_path / "multiproc"
    directory.mkdir()
    with start_prom("--workers", "2", env=server_env({"PROMETHEUS_MULTIPROC_DIR": str(directory)})) as server:
        port = server.wait_started()
        admin = admin_port(server)
        server.wait_workers(2)
        assert get(port, "/dir")[1].decode() == str(directory)
        served_by(port, 4)
        wait_until(lambda: app_requests(admin) == 4, 5, "4 app requests")
        assert server.stop() == 0
    assert any(name.startswith("counter_") for name in os.listdir(directory))
