"""The benchmark harness's HTTP/2 scenarios (h2-*): h2load over h2c, the HTTP/2 precheck
(httpx and curl), each server's h2c arguments, a server without HTTP/2 reported as not
applicable, broken HTTP/2 answers counted as errors, and short real runs."""

import io
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

# the repository root, wherever under tests/ this file lives
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "benchmarks" / "runner.py").is_file())
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import h2load, httpcheck, report, runner
from benchmarks.model import ERRORS, FAILED, OK, SKIPPED, Sample, ScenarioResult, aggregate
from benchmarks.procs import TRACKER
from benchmarks.scenarios import SCENARIOS
from benchmarks.servers import SERVERS

H2_SCENARIOS = ["h2-plaintext-m16", "h2-plaintext-m1", "h2-echo-64k"]
HAVE_H2LOAD = shutil.which("h2load") is not None
TWO_CPUS = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2
SERVER_CPUS, CLIENT_CPUS = ("0", "1") if TWO_CPUS and shutil.which("taskset") else (None, None)
needs_h2load = pytest.mark.skipif(
    not HAVE_H2LOAD, reason="h2load is not installed (apt-get install nghttp2-client)"
)
needs_h2_client = pytest.mark.skipif(
    httpcheck.h2_client() is None, reason="no HTTP/2 client (httpx + h2, or curl with HTTP2)"
)

# Real h2load 1.52 output (the summary), h2c against fastasgi with -c64 -m16 -D1000ms: the
# plaintext app, benchmarks.apps.faults:flaky_short_body and benchmarks.apps.faults:flaky_500.
H2C_OK = """\
Application protocol: h2c
finished in 1.01s, 169584.00 req/s, 6.48MB/s
requests: 169584 total, 170608 started, 169584 done, 169584 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 169584 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 6.48MB (6790784) total, 1.46MB (1530160) headers (space savings 90.50%), 2.10MB (2204592) data
                     min         max         mean         sd        +/- sd
time for request:      381us     19.73ms      5.89ms      2.10ms    73.20%
time for connect:       54us      1.03ms       550us       287us    57.81%
time to 1st byte:     2.12ms     13.49ms      7.75ms      4.00ms    53.13%
req/s           :    2327.60     2885.45     2639.34      139.00    64.06%
"""
H2C_SHORT_BODIES = """\
Application protocol: h2c
finished in 1.00s, 160464.00 req/s, 6.13MB/s
requests: 160464 total, 161488 started, 160464 done, 160464 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 160464 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 6.13MB (6422775) total, 1.38MB (1448080) headers (space savings 90.50%), 1.99MB (2082823) data
                     min         max         mean         sd        +/- sd
time for request:      230us     46.18ms      6.20ms      3.35ms    90.82%
"""
H2C_500 = """\
Application protocol: h2c
finished in 1.00s, 178208.00 req/s, 6.81MB/s
requests: 178208 total, 179232 started, 178208 done, 174644 succeeded, 3564 failed, 0 errored, 0 timeout
status codes: 174644 2xx, 0 3xx, 0 4xx, 3564 5xx
traffic: 6.81MB (7135744) total, 1.53MB (1607776) headers (space savings 90.50%), 2.21MB (2316704) data
                     min         max         mean         sd        +/- sd
time for request:      659us     19.92ms      5.69ms      1.37ms    87.44%
"""


def options(tmp_path, **kw) -> runner.Options:
    base = {
        "rounds": 1,
        "duration": 1,
        "warmup": 0,
        "server_cpus": SERVER_CPUS,
        "client_cpus": CLIENT_CPUS,
        "out_dir": None,
        "log_dir": str(tmp_path / "logs"),
        "startup_timeout": 20,
        "chart": False,
    }
    base.update(kw)
    os.makedirs(base["log_dir"], exist_ok=True)
    return runner.Options(**base)


def run(tmp_path, **kw) -> runner.RunResult:
    progress = io.StringIO()
    result = runner.Runner(options(tmp_path, **kw), progress=progress).run()
    result.progress = progress.getvalue()  # for assertion messages
    return result


def skip_unless_available(result, name):
    if not result.probes[name].available:
        pytest.skip(f"{name} is not available: {result.probes[name].reason}")


# -- the tables ---------------------------------------------------------------------------------


def test_h2_scenarios_use_the_http11_apps_over_h2c():
    m16, m1, echo = (SCENARIOS[n] for n in H2_SCENARIOS)
    assert all(s.http2 and s.kind == "http" for s in (m16, m1, echo))
    assert not any(s.http2 for n, s in SCENARIOS.items() if n not in H2_SCENARIOS)
    assert m16.app == m1.app == SCENARIOS["plaintext"].app and m16.expected == SCENARIOS["plaintext"].expected
    assert (m16.connections, m16.pipeline) == (64, 16) and (m1.connections, m1.pipeline) == (64, 1)
    assert echo.app == SCENARIOS["echo-64k"].app and echo.check == "echo"
    assert (echo.method, echo.body_bytes) == ("POST", 64 * 1024)


def test_each_server_says_how_it_serves_h2c():
    def cmd(name):
        return SERVERS[name].command("a:b", "127.0.0.1", 1, python="py", http2=True)

    assert cmd("granian")[-2:] == ["--http", "2"]
    assert "--http" not in SERVERS["granian"].command("a:b", "127.0.0.1", 1, python="py")
    for name in ("fastasgi", "hypercorn", "h2corn"):  # h2c next to HTTP/1.1 by default
        assert SERVERS[name].serves_h2c and cmd(name) == SERVERS[name].command("a:b", "127.0.0.1", 1, "py")
    for name in ("uvicorn", "fastpysgi", "daphne"):
        assert not SERVERS[name].serves_h2c and SERVERS[name].h2c
        with pytest.raises(ValueError, match="no HTTP/2"):
            cmd(name)


def test_h2load_h2c_command_line(tmp_path):
    assert h2load.command("h2load", "u", threads=1, connections=64, duration=2, pipeline=16, h1=False) == [
        "h2load",
        "-t1",
        "-c64",
        "-m16",
        "-D2000ms",
        "u",
    ]
    r = runner.Runner(options(tmp_path, generator="wrk"), progress=io.StringIO())
    r.h2load_path = "/usr/bin/h2load"
    argv = r._h2load_argv(SCENARIOS["h2-plaintext-m16"], 8123, 5)
    if CLIENT_CPUS:
        assert argv[1:3] == ["-c", CLIENT_CPUS]
    assert argv[argv.index("/usr/bin/h2load") :] == [
        "/usr/bin/h2load",
        "-t1",
        "-c64",
        "-m16",
        "-D5000ms",
        "http://127.0.0.1:8123/",
    ]
    echo = r._h2load_argv(SCENARIOS["h2-echo-64k"], 8123, 5)
    assert "--h1" not in echo and "-m1" in echo and "-c32" in echo
    assert Path(echo[echo.index("-d") + 1]).read_bytes() == SCENARIOS["h2-echo-64k"].request_body()
    # whatever the HTTP/1.1 generator, the h2 scenarios are h2load's, and plaintext is not
    assert r.generator_of(SCENARIOS["h2-echo-64k"]) == runner.H2_GENERATOR
    assert r.generator_of(SCENARIOS["plaintext"]) == "wrk"


# -- judging h2load's h2c output ---------------------------------------------------------------


def _judge(text, scenario="h2-plaintext-m16"):
    sc = SCENARIOS[scenario]
    return h2load.parse(
        text, expected_body_len=len(sc.expected), connections=sc.connections, pipeline=sc.pipeline
    )


def test_clean_h2c_run_passes():
    r = _judge(H2C_OK)
    assert r.parsed and r.requests == 169584 and r.error_count() == 0, r.problems
    assert r.traffic["data"] == r.succeeded * 13  # DATA payload: exactly the bodies
    assert r.started - r.requests == 64 * 16  # the streams in flight when the timer stopped


def test_h2c_non2xx_and_short_bodies_are_errors():
    r500 = _judge(H2C_500)
    assert r500.error_count() == 3564 and "non-2xx responses: 3564" in r500.error_detail()
    short = _judge(H2C_SHORT_BODIES)
    assert short.failed == 0 and short.status["2xx"] == short.requests  # h2load saw nothing wrong
    assert short.error_count() > 0 and "body bytes missing" in short.error_detail()


# -- the reports --------------------------------------------------------------------------------


def _cell(scenario, server, rate, cpu_us):
    s = Sample(scenario, server, 1, OK, rate=rate, requests=10**6, server_cpu_s=cpu_us, generator="x")
    runner.Runner._per_request(s)
    return aggregate(scenario, server, [s])


def test_reports_name_the_h2_generator_and_each_peer_ratio():
    from benchmarks.model import Cell

    cells = {
        "fastasgi": _cell("h2-plaintext-m16", "fastasgi", 150_000, 5.0),
        "uvicorn": Cell(
            "h2-plaintext-m16", "uvicorn", SKIPPED, reason="not applicable: uvicorn has no HTTP/2"
        ),
        "granian": _cell("h2-plaintext-m16", "granian", 100_000, 10.0),
        "h2corn": _cell("h2-plaintext-m16", "h2corn", 120_000, 8.0),
    }
    h2 = ScenarioResult(
        "h2-plaintext-m16", "d", "req/s", cells, "uvicorn", "fastasgi", generator="h2load h2c"
    )
    h2.compute_ratios()
    plain = ScenarioResult(
        "plaintext",
        "d",
        "req/s",
        {"fastasgi": _cell("plaintext", "fastasgi", 1, 1.0)},
        "uvicorn",
        "fastasgi",
        generator="h2load",
    )
    assert [(p, round(r, 2), c) for p, r, c in report.peer_ratios(h2)] == [
        ("h2corn", 1.25, 0.625),
        ("granian", 1.5, 0.5),
    ]
    lines = report.ratio_lines([h2])
    assert "granian 1.50x / 0.50x" in lines and "h2corn 1.25x / 0.62x" in lines
    md = report.markdown([plain, h2], {"cpu_model": "cpu"}, list(cells), 1, "cmd", generator="h2load")
    assert "generator (h2load; h2load h2c for h2-plaintext-m16; websocket: wsload)" in md
    assert "| h2-plaintext-m16 | **150,000** | n/a | 100,000 | 120,000 |" in md
    assert "| h2-plaintext-m16 | granian | 1.50x | 0.50x |" in md
    assert "h2-plaintext-m16 / uvicorn: skipped: not applicable: uvicorn has no HTTP/2" in md
    text = report.text_table([h2], 1)
    assert "[h2load h2c]" in text and "skipped: not applicable" in text


# -- not applicable, no client -----------------------------------------------------------------


@needs_h2load
def test_a_server_without_http2_is_not_applicable_not_failing(tmp_path, monkeypatch):
    def never(*a, **kw):
        raise AssertionError("a server without HTTP/2 was started for an h2 scenario")

    monkeypatch.setattr(runner.Runner, "run_one", never)
    result = run(tmp_path, scenarios=H2_SCENARIOS, servers=["uvicorn", "daphne"])
    for sr in result.scenarios:
        assert sr.generator == runner.H2_GENERATOR
        for name in ("uvicorn", "daphne"):
            if result.probes[name].available:
                cell = sr.cells[name]
                assert cell.status == SKIPPED and cell.reason.startswith("not applicable: "), cell.reason
                assert "no HTTP/2" in cell.reason or "no h2c" in cell.reason


@needs_h2load
def test_without_an_http2_client_the_h2_scenarios_are_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(httpcheck, "h2_client", lambda: None)
    monkeypatch.setattr(runner.Runner, "run_one", lambda *a: pytest.fail("measured without a precheck"))
    result = run(tmp_path, scenarios=["h2-plaintext-m1"], servers=["fastasgi"])
    cell = result.scenarios[0].cells["fastasgi"]
    assert cell.status == SKIPPED and "pip install httpx h2" in cell.reason


# -- the precheck over HTTP/2, against real servers -------------------------------------------


@pytest.fixture
def fastasgi_on(tmp_path):
    """``fastasgi_on(app)`` -> the port of a fastasgi serving ``app`` with its defaults."""
    started = []

    def _start(app):
        port = runner.free_port("127.0.0.1")
        argv = SERVERS["fastasgi"].command(app, "127.0.0.1", port, sys.executable, http2=True)
        log = open(tmp_path / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below
        proc = TRACKER.spawn(argv, cwd=str(ROOT), env=runner.server_env(), stdout=log, stderr=log)
        started.append((proc, log))
        try:
            httpcheck.wait_ready("127.0.0.1", port, proc, 20, http2=True)
        except httpcheck.ServerFailed as exc:
            pytest.skip(f"fastasgi did not start: {exc}")
        return port

    yield _start
    for proc, log in started:
        TRACKER.stop(proc)
        log.close()


@pytest.mark.parametrize("client", httpcheck.H2_CLIENTS)
def test_precheck_over_h2c_with_each_client(fastasgi_on, client, monkeypatch):
    if client not in httpcheck.h2_clients():
        pytest.skip(f"{client} cannot speak HTTP/2 here")
    monkeypatch.setattr(httpcheck, "h2_client", lambda: client)
    plain = fastasgi_on("benchmarks.apps.raw:plaintext")
    echo = fastasgi_on("benchmarks.apps.raw:echo")
    bad = fastasgi_on("benchmarks.apps.faults:wrong_body")
    answer = httpcheck.h2_request("127.0.0.1", plain, "GET", "/")
    assert (answer.version, answer.status, answer.body) == ("HTTP/2", 200, b"Hello, World!")
    assert answer.headers["server"] == "fastasgi" and "date" in answer.headers
    assert httpcheck.verify(SCENARIOS["h2-plaintext-m16"], "127.0.0.1", plain) == []
    assert httpcheck.verify(SCENARIOS["h2-echo-64k"], "127.0.0.1", echo) == []
    # the exact body, not its length: 13 bytes, one of them wrong
    (problem,) = httpcheck.verify(SCENARIOS["h2-plaintext-m1"], "127.0.0.1", bad)
    assert problem.startswith("wrong body: 13 bytes b'Hello, Wxrld!'")
    # the echo app answers a GET with an empty body
    assert "wrong body: 0 bytes" in httpcheck.verify(SCENARIOS["h2-plaintext-m16"], "127.0.0.1", echo)[0]


@needs_h2_client
def test_precheck_fails_a_server_that_speaks_no_http2(tmp_path):
    """uvicorn answers the h2c preface with a 400 over HTTP/1.1 or closes: no HTTP/2 answer."""
    if not runner.probe(SERVERS["uvicorn"], env=runner.server_env()).available:
        pytest.skip("uvicorn is not installed")
    port = runner.free_port("127.0.0.1")
    argv = SERVERS["uvicorn"].command("benchmarks.apps.raw:plaintext", "127.0.0.1", port, sys.executable)
    proc = TRACKER.spawn(argv, cwd=str(ROOT), env=runner.server_env())
    try:
        httpcheck.wait_ready("127.0.0.1", port, proc, 20)
        problems = httpcheck.verify(SCENARIOS["h2-plaintext-m1"], "127.0.0.1", port, timeout=3)
        assert problems and ("HTTP/2 request failed" in problems[0] or "not HTTP/2" in problems[0])
        with pytest.raises(httpcheck.ServerFailed, match="no complete answer"):
            httpcheck.wait_ready("127.0.0.1", port, proc, 1.5, http2=True)
    finally:
        TRACKER.stop(proc)


# -- real runs -------------------------------------------------------------------------------------


@needs_h2load
@needs_h2_client
def test_h2_scenarios_end_to_end_for_fastasgi(tmp_path):
    result = run(
        tmp_path,
        scenarios=H2_SCENARIOS,
        servers=["fastasgi"],
        warmup=0.5,
        out_dir=str(tmp_path / "out"),
        name="h2",
    )
    skip_unless_available(result, "fastasgi")
    for sr in result.scenarios:
        assert sr.generator == runner.H2_GENERATOR
        cell = sr.cells["fastasgi"]
        assert cell.status == OK, (sr.name, cell.reason, result.progress)
        assert cell.rate > 100 and cell.errors == 0 and cell.requests > 100
        assert cell.server_cpu_us_per_req > 0 and cell.samples[0].server_cpu_s > 0
        assert cell.samples[0].generator == runner.H2_GENERATOR
    data = json.loads(Path(result.files[0]).read_text())
    assert data["config"]["servers"]["fastasgi"]["h2c"] == []
    assert data["config"]["scenarios"]["h2-plaintext-m16"]["http2"] is True
    assert data["machine"]["tools"]["h2 precheck"] in httpcheck.H2_CLIENTS
    md = Path(result.files[1]).read_text()
    assert "h2load h2c for h2-plaintext-m16, h2-plaintext-m1, h2-echo-64k" in md
    assert TRACKER.live() == []


@needs_h2load
@needs_h2_client
@pytest.mark.parametrize(
    "app,status,reason",
    [
        ("benchmarks.apps.faults:wrong_body", FAILED, "wrong answer: wrong body"),
        ("benchmarks.apps.faults:always_500", FAILED, "wrong answer: status 500"),
        ("benchmarks.apps.faults:flaky_500", ERRORS, "non-2xx responses"),
        ("benchmarks.apps.faults:flaky_short_body", ERRORS, "body bytes missing"),
    ],
)
def test_a_broken_h2_server_is_failing_not_fast(tmp_path, app, status, reason):
    """Wrong bodies and non-2xx answers over HTTP/2: the precheck catches the ones it sees,
    h2load's counts (statuses, body bytes) the ones that come later under load."""
    scenario = replace(SCENARIOS["h2-plaintext-m16"], name="broken", app=app)
    result = run(tmp_path, scenarios=["broken"], servers=["fastasgi"], scenario_table={"broken": scenario})
    skip_unless_available(result, "fastasgi")
    sr = result.scenarios[0]
    cell = sr.cells["fastasgi"]
    assert cell.status == status and not cell.usable, (cell.reason, result.progress)
    assert reason in cell.reason
    if status == ERRORS:
        assert cell.errors > 0 and cell.rate > 0  # measured, and still not ranked
    assert sr.subject_vs_fastest_peer is None and report.peer_ratios(sr) == []


@needs_h2load
@needs_h2_client
@pytest.mark.parametrize("peer", ["granian", "hypercorn", "h2corn"])
def test_each_peer_serves_h2c_as_configured(tmp_path, peer):
    """granian --http 2 answers no HTTP/1.1: readiness and precheck go over HTTP/2."""
    result = run(tmp_path, scenarios=["h2-plaintext-m1"], servers=[peer], duration=0.5)
    skip_unless_available(result, peer)
    cell = result.scenarios[0].cells[peer]
    assert cell.status == OK and cell.errors == 0 and cell.rate > 0, (cell.reason, result.progress)
