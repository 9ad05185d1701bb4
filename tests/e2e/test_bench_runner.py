"""The benchmark harness (benchmarks/): its tables, its reading of real wrk output, its
failure paths against real processes, and a short real run of fastasgi and uvicorn."""

import io
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import httpcheck, report, runner, wrk, wsclient
from benchmarks.model import (
    ERRORS,
    FAILED,
    OK,
    SKIPPED,
    Cell,
    Sample,
    ScenarioResult,
    aggregate,
)
from benchmarks.procs import TRACKER, pin_prefix, process_tree
from benchmarks.scenarios import SCENARIOS, Scenario
from benchmarks.servers import SERVERS, ServerSpec

FIXTURES = ROOT / "tests" / "bench_fixtures"
HAVE_WRK = shutil.which("wrk") is not None
TWO_CPUS = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2
SERVER_CPUS, CLIENT_CPUS = ("0", "1") if TWO_CPUS and shutil.which("taskset") else (None, None)
needs_wrk = pytest.mark.skipif(not HAVE_WRK, reason="wrk is not installed (apt-get install wrk)")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def options(tmp_path, **kw) -> runner.Options:
    base = {
        "rounds": 1,
        "duration": 1,
        "warmup": 1,
        "server_cpus": SERVER_CPUS,
        "client_cpus": CLIENT_CPUS,
        "out_dir": None,
        "log_dir": str(tmp_path / "logs"),
        "startup_timeout": 20,
    }
    base.update(kw)
    os.makedirs(base["log_dir"], exist_ok=True)
    return runner.Options(**base)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- the command table ----------------------------------------------------------------------


def test_every_server_renders_a_complete_command():
    assert list(SERVERS)[:2] == ["fastasgi", "uvicorn"]
    for spec in SERVERS.values():
        argv = spec.command("pkg.mod:app", "127.0.0.1", 8123, python="/py")
        assert argv[0] == "/py"
        assert "pkg.mod:app" in argv, spec.name
        assert not any("{" in part for part in argv), (spec.name, argv)
        joined = " ".join(argv)
        assert "8123" in joined and "127.0.0.1" in joined, spec.name


def test_server_flags_are_the_documented_configurations():
    def cmd(name):
        return SERVERS[name].command("a:b", "127.0.0.1", 1, python="py")

    uv = cmd("uvicorn")
    assert uv[uv.index("--http") + 1] == "httptools" and uv[uv.index("--loop") + 1] == "uvloop"
    assert "--no-access-log" in uv
    gr = cmd("granian")
    assert gr[gr.index("--interface") + 1] == "asgi" and gr[gr.index("--workers") + 1] == "1"
    fa = cmd("fastasgi")
    assert fa[1:3] == ["-m", "fastasgi"] and "--no-access-log" in fa
    assert "--server-header" in cmd("h2corn")
    assert cmd("daphne")[-1] == "a:b"
    assert SERVERS["fastpysgi"].websocket is not True
    assert all(SERVERS[n].websocket is True for n in ("fastasgi", "uvicorn", "granian", "hypercorn"))


def test_pinning_prefix():
    if not shutil.which("taskset"):
        pytest.skip("taskset is not installed")
    assert pin_prefix("0")[1:] == ["-c", "0"]
    assert pin_prefix(None) == [] and pin_prefix("") == []
    assert runner.parse_cpus("0,2-4") == [0, 2, 3, 4]


def test_scenario_table_covers_the_issue():
    assert {
        "plaintext",
        "json",
        "pipelined",
        "echo-64k",
        "echo-1m",
        "stream",
        "conns-1k",
        "websocket",
        "fastapi",
        "starlette",
    } <= set(SCENARIOS)
    assert SCENARIOS["pipelined"].pipeline == 16 and SCENARIOS["pipelined"].require_server_date
    assert SCENARIOS["conns-1k"].connections == 1000
    assert SCENARIOS["echo-1m"].body_bytes == 1 << 20
    assert len({s.app for s in SCENARIOS.values()}) >= 6


def test_wrk_command_line():
    argv = wrk.command(
        "/usr/bin/wrk",
        "http://127.0.0.1:9/x",
        threads=1,
        connections=64,
        duration=1.2,
        method="POST",
        path="/x",
        body_bytes=10,
        pipeline=16,
        check="echo",
        expected="",
        require_headers=True,
    )
    assert argv[:6] == ["/usr/bin/wrk", "-t1", "-c64", "-d2s", "--timeout=8s", "--latency"]
    assert argv[argv.index("-s") + 1] == wrk.LUA_SCRIPT and os.path.exists(wrk.LUA_SCRIPT)
    assert argv[argv.index("--") + 1 :] == ["POST", "/x", "10", "16", "echo", "-", "hdr"]
    # never more threads than connections
    assert (
        wrk.command(
            "w",
            "u",
            threads=4,
            connections=2,
            duration=1,
            method="GET",
            path="/",
            body_bytes=0,
            pipeline=1,
            check="none",
            expected="",
            require_headers=False,
        )[1]
        == "-t2"
    )


# -- reading real wrk output ------------------------------------------------------------------


def test_parse_clean_run():
    r = wrk.parse(fixture("wrk_plaintext_ok.txt"))
    assert r.requests == 107937
    assert r.rps == pytest.approx(107937 / 2.101605)
    assert r.p("p50") == pytest.approx(1.201) and r.p("p99") == pytest.approx(2.653)
    assert r.checks == {"responses": 107937, "non2xx": 0, "badbody": 0, "nohdr": 0}
    assert r.error_count() == 0 and r.error_detail() == ""


def test_parse_text_without_the_lua_lines():
    r = wrk.parse(fixture("wrk_plain_no_lua.txt"))
    assert r.checks is None and r.summary is None
    assert r.requests == 43158 and r.rps == pytest.approx(21529.42)
    assert r.duration_s == pytest.approx(2.0)
    assert r.latency_ms == pytest.approx(
        {"avg": 3.0, "max": 13.75, "p50": 2.32, "p75": 4.48, "p90": 5.80, "p99": 9.58}
    )
    assert r.error_count() == 0


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("wrk_*.txt")))
def test_text_and_lua_numbers_agree(name):
    """wrk's text (rounded) and bench.lua's summary (exact) describe the same run."""
    full = fixture(name)
    text_only = wrk.parse("\n".join(line for line in full.splitlines() if not line.startswith("BENCH-")))
    both = wrk.parse(full)
    assert text_only.requests == both.requests
    assert text_only.rps == pytest.approx(both.rps, rel=0.01, abs=0.01)
    assert text_only.socket_errors == both.socket_errors
    for key in ("p50", "p99"):
        if key in both.latency_ms and key in text_only.latency_ms:
            assert text_only.latency_ms[key] == pytest.approx(both.latency_ms[key], rel=0.01, abs=0.01)


def test_parse_non2xx_responses():
    r = wrk.parse(fixture("wrk_flaky_500.txt"))
    assert r.non2xx_3xx == 857 and r.checks["non2xx"] == 857
    assert r.error_count() == 857  # counted once, not by both wrk and the script
    assert "non-2xx responses: 857" in r.error_detail()


def test_parse_wrong_bodies():
    r = wrk.parse(fixture("wrk_badbody.txt"))
    assert r.error_count() == r.requests == 42137
    assert "wrong bodies: 42137" in r.error_detail()


def test_parse_timeouts_and_socket_errors():
    t = wrk.parse(fixture("wrk_timeouts.txt"))
    assert t.socket_errors["timeout"] == 31 and t.error_count() == 31
    s = wrk.parse(fixture("wrk_socket_errors.txt"))
    assert s.requests == 0 and s.rps == 0
    assert s.socket_errors == {"connect": 0, "read": 64, "write": 86224, "timeout": 0}
    assert s.error_count() == 64 + 86224
    assert "read errors: 64" in s.error_detail()


def test_parse_pipelined_headers_and_refused():
    p = wrk.parse(fixture("wrk_pipelined_ok.txt"))
    assert p.requests == 58821 and p.error_count(require_headers=True) == 0
    assert p.p("p99") == 0  # wrk's latency is meaningless when pipelining
    assert SCENARIOS["pipelined"].latency_meaningful is False
    refused = wrk.parse(fixture("wrk_refused.txt"))
    assert refused.requests == 0 and refused.checks is None  # the runner treats this as failed


def test_parse_wsload_output():
    r = wsclient.parse(fixture("wsload_ok.txt"))
    assert r.messages == 211443 and r.rate == pytest.approx(70554.14)
    assert r.latency_ms["p99"] == pytest.approx(5.472) and r.errors == 0
    with pytest.raises(ValueError):
        wsclient.parse("segfault\n")


# -- results, ratios, reports ------------------------------------------------------------------


def _sample(server, rate, rnd=1, status=OK, errors=0, detail=""):
    return Sample(
        "plaintext",
        server,
        rnd,
        status,
        detail=detail,
        rate=rate,
        errors=errors,
        p50_ms=1.0,
        p99_ms=2.0,
        peak_rss_kib=30000,
        server_cpu=1.0,
        client_cpu=0.5,
    )


def test_aggregate_median_spread_and_status():
    cell = aggregate("plaintext", "uvicorn", [_sample("uvicorn", r, i) for i, r in enumerate((90, 100, 120))])
    assert cell.status == OK and cell.rate == 100 and (cell.rate_min, cell.rate_max) == (90, 120)
    assert cell.spread_pct == pytest.approx(15.0)
    one = aggregate("plaintext", "uvicorn", [_sample("uvicorn", 100)])
    assert one.spread_pct is None
    erred = aggregate(
        "plaintext", "x", [_sample("x", 500), _sample("x", 400, 2, ERRORS, 7, "non-2xx responses: 7")]
    )
    assert erred.status == ERRORS and erred.errors == 7 and not erred.usable
    failed = aggregate("plaintext", "y", [_sample("y", None, 1, FAILED, detail="not ready")])
    assert failed.status == FAILED and "not ready" in failed.reason


def test_a_failing_server_is_never_the_fastest():
    cells = {
        "fastasgi": aggregate("plaintext", "fastasgi", [_sample("fastasgi", 300)]),
        "uvicorn": aggregate("plaintext", "uvicorn", [_sample("uvicorn", 100)]),
        "granian": aggregate("plaintext", "granian", [_sample("granian", 150)]),
        "cheater": aggregate("plaintext", "cheater", [_sample("cheater", 900, errors=3, status=ERRORS)]),
        "gone": Cell("plaintext", "gone", SKIPPED, reason="not installed"),
    }
    sr = ScenarioResult("plaintext", "d", "req/s", cells, "uvicorn", "fastasgi")
    sr.compute_ratios()
    assert sr.fastest_peer == "granian" and sr.subject_vs_fastest_peer == pytest.approx(2.0)
    assert sr.subject_vs_baseline == pytest.approx(3.0)
    assert cells["granian"].ratio_to_baseline == pytest.approx(1.5)
    assert cells["cheater"].ratio_to_baseline is None
    assert [c.server for c in sr.ranking()][:3] == ["fastasgi", "granian", "uvicorn"]
    text = report.text_table([sr], 1)
    assert "FAIL" in text and "skipped: not installed" in text and "2.00x the fastest peer (granian)" in text
    md = report.markdown([sr], {"cpu_model": "cpu"}, list(cells), 1, "python -m benchmarks")
    assert "| plaintext | **300** | 100 | 150 | fails | n/a | 3.00x | 2.00x (granian) |" in md


def test_precheck_rules():
    pipelined = SCENARIOS["pipelined"]
    good = {"server": "x", "date": "Sat, 21 Nov 2026 04:59:33 GMT"}
    assert httpcheck.check_response(pipelined, 200, good, b"Hello, World!") == []
    assert (
        "no Date header"
        in httpcheck.check_response(pipelined, 200, {"server": "daphne"}, b"Hello, World!")[0]
    )
    assert "status 500" in httpcheck.check_response(SCENARIOS["plaintext"], 500, good, b"oops")[0]
    assert "wrong body" in httpcheck.check_response(SCENARIOS["plaintext"], 200, good, b"Hello")[0]


# -- failure paths against real processes ------------------------------------------------------


def _one(tmp_path, spec: ServerSpec, scenario: Scenario, **kw) -> Sample:
    r = runner.Runner(options(tmp_path, **kw), progress=io.StringIO())
    return r.run_one(spec, scenario, 1)


def test_server_that_exits_at_start_is_reported(tmp_path):
    spec = ServerSpec(
        name="broken",
        module="json",
        argv=("{python}", "-c", "import sys; sys.stderr.write('boom: cannot start\\n'); sys.exit(3)"),
    )
    s = _one(tmp_path, spec, SCENARIOS["plaintext"])
    assert s.status == FAILED and s.rate is None
    assert "exited with code 3" in s.detail and "boom: cannot start" in s.detail


def test_server_that_never_listens_times_out_and_is_killed(tmp_path):
    marker = tmp_path / "pid"
    spec = ServerSpec(
        name="sleeper",
        module="json",
        argv=(
            "{python}",
            "-c",
            f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)",
        ),
    )
    t0 = time.monotonic()
    s = _one(tmp_path, spec, SCENARIOS["plaintext"], startup_timeout=1.5)
    assert time.monotonic() - t0 < 10
    assert s.status == FAILED and "did not listen" in s.detail
    assert not alive(int(marker.read_text()))
    assert TRACKER.live() == []


def test_server_answering_500_fails_the_precheck(tmp_path):
    scenario = replace(SCENARIOS["plaintext"], app="benchmarks.apps.faults:always_500")
    s = _one(tmp_path, SERVERS["uvicorn"], scenario)
    assert s.status == FAILED and "status 500" in s.detail and s.rate is None


@needs_wrk
def test_server_answering_some_500s_under_load_is_failing_not_fast(tmp_path):
    scenario = replace(SCENARIOS["plaintext"], name="flaky", app="benchmarks.apps.faults:flaky_500")
    opts = options(
        tmp_path, scenarios=["flaky"], servers=["uvicorn"], warmup=0, scenario_table={"flaky": scenario}
    )
    result = runner.Runner(opts, progress=io.StringIO()).run()
    cell = result.scenarios[0].cells["uvicorn"]
    assert cell.status == ERRORS and cell.errors > 0 and not cell.usable
    assert "non-2xx responses" in cell.reason
    assert cell.rate > 0  # it was measured, and still not ranked
    assert result.scenarios[0].fastest_peer is None


def test_load_generator_missing(tmp_path, capsys):
    opts = options(tmp_path, scenarios=["plaintext"], servers=["uvicorn"], wrk="/nonexistent/wrk")
    with pytest.raises(wrk.LoadGeneratorMissing, match="apt-get install wrk"):
        runner.Runner(opts, progress=io.StringIO()).run()
    code = runner.main(
        ["--wrk", "/nonexistent/wrk", "--scenario", "plaintext", "--servers", "uvicorn", "--no-write"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "wrk is needed" in err and "brew install wrk" in err


def test_websocket_scenario_without_a_compiler_is_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    opts = options(tmp_path, scenarios=["websocket"], servers=["uvicorn", "fastpysgi"])
    result = runner.Runner(opts, progress=io.StringIO()).run()
    cells = result.scenarios[0].cells
    assert cells["uvicorn"].status == SKIPPED and "C compiler" in cells["uvicorn"].reason
    if result.probes["fastpysgi"].available:
        assert "no WebSocket support" in cells["fastpysgi"].reason


def test_unknown_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown server"):
        runner.Runner(
            options(tmp_path, scenarios=["plaintext"], servers=["nginx"]), progress=io.StringIO()
        ).run()
    assert runner.main(["--scenario", "nope", "--no-write"]) == 2


def test_interrupt_stops_the_server(tmp_path, monkeypatch):
    seen = {}

    def interrupted(scenario, host, port, timeout=10.0):
        seen["pids"] = [pid for p in TRACKER.live() for pid in process_tree(p.pid)]
        raise KeyboardInterrupt

    monkeypatch.setattr(httpcheck, "verify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _one(tmp_path, SERVERS["uvicorn"], SCENARIOS["plaintext"])
    assert seen["pids"]
    assert not any(alive(pid) for pid in seen["pids"])
    assert TRACKER.live() == []


def test_tracker_kills_the_whole_tree():
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = TRACKER.spawn([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 5
    while len(process_tree(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    tree = process_tree(proc.pid)
    assert len(tree) == 2
    TRACKER.stop_all()  # returns once the whole tree is gone
    proc.stdout.close()
    assert not any(alive(pid) for pid in tree)


def test_run_bounded_kills_at_the_deadline():
    t0 = time.monotonic()
    fin = TRACKER.run_bounded([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert fin.timed_out and time.monotonic() - t0 < 5 and TRACKER.live() == []
    ok = TRACKER.run_bounded([sys.executable, "-c", "print('hi')"], timeout=10)
    assert (ok.returncode, ok.stdout.strip(), ok.timed_out) == (0, "hi", False)


# -- real runs -----------------------------------------------------------------------------------


def test_websocket_load_generator_against_uvicorn(tmp_path):
    try:
        wsclient.ensure_built()
    except wrk.LoadGeneratorMissing as exc:
        pytest.skip(str(exc))
    opts = options(tmp_path, scenarios=["websocket"], servers=["uvicorn"], warmup=0)
    result = runner.Runner(opts, progress=io.StringIO()).run()
    cell = result.scenarios[0].cells["uvicorn"]
    assert cell.status == OK, cell.reason
    assert cell.rate > 100 and cell.errors == 0 and cell.p99_ms is not None


@needs_wrk
def test_smoke_fastasgi_and_uvicorn(tmp_path):
    progress = io.StringIO()
    opts = options(
        tmp_path,
        scenarios=["plaintext"],
        servers=["fastasgi", "uvicorn"],
        out_dir=str(tmp_path / "out"),
        name="smoke",
    )
    result = runner.Runner(opts, progress=progress).run()
    sr = result.scenarios[0]
    for name in ("fastasgi", "uvicorn"):
        cell = sr.cells[name]
        assert cell.status == OK, (name, cell.reason, progress.getvalue())
        assert cell.rate > 100 and cell.errors == 0 and cell.requests > 100
        assert cell.peak_rss_kib > 1000 and cell.p99_ms > 0 and cell.server_cpu > 0
    assert sr.subject_vs_baseline == pytest.approx(sr.cells["fastasgi"].rate / sr.cells["uvicorn"].rate)
    assert "[  1/2] plaintext" in progress.getvalue()
    files = {Path(f).suffix: f for f in result.files}
    assert set(files) == {".json", ".md", ".png"}
    data = json.loads(Path(files[".json"]).read_text())
    assert data["machine"]["cpu_model"] and data["machine"]["kernel"]
    assert set(data["machine"]["server_versions"]) == {"fastasgi", "uvicorn"}
    assert data["results"][0]["cells"]["uvicorn"]["status"] == OK
    assert "| scenario | fastasgi | uvicorn |" in Path(files[".md"]).read_text()
    assert Path(files[".png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert TRACKER.live() == []


@needs_wrk
def test_interrupted_run_reports_what_it_measured(tmp_path, monkeypatch):
    calls = []

    def fake_run_one(self, spec, scenario, rnd):
        calls.append(spec.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return _sample(spec.name, 1000.0, rnd)

    monkeypatch.setattr(runner.Runner, "run_one", fake_run_one)
    opts = options(
        tmp_path,
        scenarios=["plaintext"],
        servers=["uvicorn", "daphne"],
        rounds=2,
        out_dir=str(tmp_path / "out"),
        name="partial",
        chart=False,
    )
    result = runner.Runner(opts, progress=io.StringIO()).run()
    assert result.interrupted and calls == ["uvicorn", "daphne"]
    cells = result.scenarios[0].cells
    assert cells["uvicorn"].status == OK and cells["uvicorn"].rate == 1000.0
    assert cells["daphne"].status == SKIPPED  # never measured
    assert json.loads(Path(result.files[0]).read_text())["interrupted"] is True
