"""The benchmark runner: ``python -m benchmarks --help``.

For each scenario, for each round, for each server (the order rotated every round, so
drift in the machine hits all servers alike): start the server pinned to the server CPUs
on a free port, wait until it answers, check one answer in full, warm up, measure with the
load generator pinned to the other CPUs, read the server tree's CPU time and peak RSS, stop
it. A server that fails any check is reported as failing with the reason, and never ranked.
Every step has a time limit, and every process started is stopped, also on Ctrl-C.

HTTP/1.1 scenarios run under the chosen generator (wrk, or h2load --h1); the HTTP/2 ones
always under h2load over h2c, with each server's h2c arguments; a server without HTTP/2 is
skipped for them as not applicable.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import os
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from benchmarks import h2load, httpcheck, machine, report, wrk, wsclient
from benchmarks.model import (
    ERRORS,
    FAILED,
    NOISY_LOAD,
    OK,
    SKIPPED,
    Cell,
    Sample,
    ScenarioResult,
    aggregate,
)
from benchmarks.procs import (
    TRACKER,
    cpu_busy_seconds,
    install_signal_handlers,
    pin_prefix,
    tree_cpu_seconds,
    tree_peak_rss_kib,
)
from benchmarks.scenarios import SCENARIOS, Scenario, make_body
from benchmarks.servers import BASELINE, SERVERS, SUBJECT, Probe, ServerSpec, probe

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "benchmarks", "results")
#: the HTTP/1.1 load generators; the websocket scenario always uses wsload, and the HTTP/2
#: scenarios h2load over h2c (H2_GENERATOR)
GENERATORS = ("wrk", "h2load")
H2_GENERATOR = "h2load h2c"


@dataclass
class Options:
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    servers: list[str] = field(default_factory=lambda: list(SERVERS))
    rounds: int = 3
    duration: float = 5.0
    warmup: float = 2.0
    server_cpus: str | None = "0"
    client_cpus: str | None = "1"
    host: str = "127.0.0.1"
    wrk: str | None = None
    #: the HTTP/1.1 load generator: "wrk" (every response checked by bench.lua) or "h2load"
    #: (--h1); the HTTP/2 scenarios always use h2load over h2c
    generator: str = "wrk"
    h2load: str | None = None
    startup_timeout: float = 30.0
    out_dir: str | None = DEFAULT_OUT  # None: write no files
    name: str | None = None
    chart: bool = True
    log_dir: str | None = None
    python: str = sys.executable
    command_line: str = "python -m benchmarks"
    # the tables, replaceable by tests
    server_table: dict[str, ServerSpec] = field(default_factory=lambda: dict(SERVERS))
    scenario_table: dict[str, Scenario] = field(default_factory=lambda: dict(SCENARIOS))


@dataclass
class RunResult:
    scenarios: list[ScenarioResult]
    machine: dict
    probes: dict[str, Probe]
    interrupted: bool
    files: list[str] = field(default_factory=list)
    log_dir: str | None = None


def parse_cpus(spec: str | None) -> list[int]:
    """'1', '1-3', '0,2' -> CPU numbers."""
    cpus: list[int] = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            cpus.extend(range(int(a), int(b) + 1))
        else:
            cpus.append(int(part))
    return cpus


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def server_env() -> dict[str, str]:
    """The environment servers run in: the repo root on the path (for benchmarks.apps), and
    src/ when fastasgi is built in place there, ahead of any installed copy."""
    env = dict(os.environ)
    paths = [REPO]
    built = glob.glob(os.path.join(REPO, "src", "fastasgi", "_http", "_core*.so")) + glob.glob(
        os.path.join(REPO, "src", "fastasgi", "_http", "_core*.pyd")
    )
    if built:
        paths.append(os.path.join(REPO, "src"))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise the soft open-files limit (children inherit it): 1,000 connections need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def log_tail(path: str, lines: int = 4) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4000))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    tail = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return (" | log: " + " / ".join(t.strip()[:200] for t in tail)) if tail else ""


class Runner:
    def __init__(self, opts: Options, progress=None, env: dict[str, str] | None = None):
        self.opts = opts
        self.progress = progress if progress is not None else sys.stderr
        self.env = env if env is not None else server_env()
        self.wrk_path: str | None = None
        self.h2load_path: str | None = None
        self._body_files: dict[int, str] = {}
        self.wsload: str | None = None
        self.wsload_missing: str | None = None
        self.h2_client: str | None = None  # the precheck's HTTP/2 client (httpcheck)
        self.client_threads = max(1, len(parse_cpus(opts.client_cpus)) or 1)
        self.log_dir = opts.log_dir
        self.pinned_cpus = sorted(set(parse_cpus(opts.server_cpus) + parse_cpus(opts.client_cpus)))

    # -- set-up ---------------------------------------------------------------------------

    def say(self, text: str = "", end: str = "\n") -> None:
        print(text, end=end, file=self.progress, flush=True)

    def selected_scenarios(self) -> list[Scenario]:
        unknown = [s for s in self.opts.scenarios if s not in self.opts.scenario_table]
        if unknown:
            raise ValueError(
                f"unknown scenario(s): {', '.join(unknown)}; "
                f"choose from {', '.join(self.opts.scenario_table)}"
            )
        return [self.opts.scenario_table[s] for s in self.opts.scenarios]

    def selected_servers(self) -> list[ServerSpec]:
        unknown = [s for s in self.opts.servers if s not in self.opts.server_table]
        if unknown:
            raise ValueError(
                f"unknown server(s): {', '.join(unknown)}; choose from {', '.join(self.opts.server_table)}"
            )
        return [self.opts.server_table[s] for s in self.opts.servers]

    def prepare_load_generators(self, scenarios: list[Scenario]) -> None:
        """The HTTP load generator (wrk or h2load) is required when any HTTP scenario is
        selected (LoadGeneratorMissing says how to install it); a missing C compiler only
        skips the websocket scenario."""
        if self.opts.generator not in GENERATORS:
            raise ValueError(
                f"unknown generator {self.opts.generator!r}; choose from {', '.join(GENERATORS)}"
            )
        h1 = [s for s in scenarios if s.kind == "http" and not s.http2]
        h2 = [s for s in scenarios if s.kind == "http" and s.http2]
        if h2 or (h1 and self.opts.generator == "h2load"):
            self.h2load_path = h2load.find_h2load(self.opts.h2load)
        if h1 and self.opts.generator == "wrk":
            self.wrk_path = wrk.find_wrk(self.opts.wrk)
        if h2:
            self.h2_client = httpcheck.h2_client()
        if any(s.kind == "websocket" for s in scenarios):
            try:
                self.wsload = wsclient.ensure_built()
            except wrk.LoadGeneratorMissing as exc:
                self.wsload_missing = str(exc)

    def probe_servers(self, specs: list[ServerSpec]) -> dict[str, Probe]:
        return {s.name: probe(s, env=self.env, cwd=REPO, python=self.opts.python) for s in specs}

    # -- one measurement ------------------------------------------------------------------

    def run_one(self, spec: ServerSpec, scenario: Scenario, rnd: int) -> Sample:
        sample = self._run_one(spec, scenario, rnd)
        if sample.status == FAILED and "address already in use" in sample.detail.lower():
            # free_port() found the port free, someone took it before the server bound it
            sample = self._run_one(spec, scenario, rnd)
        return sample

    def _run_one(self, spec: ServerSpec, scenario: Scenario, rnd: int) -> Sample:
        o = self.opts
        sample = Sample(scenario.name, spec.name, rnd, FAILED)
        port = free_port(o.host)
        argv = pin_prefix(o.server_cpus) + spec.command(
            scenario.app, o.host, port, o.python, http2=scenario.http2
        )
        log_path = os.path.join(self.log_dir, f"{scenario.name}-{spec.name}-r{rnd}.log")
        with open(log_path, "wb") as log:
            log.write(("$ " + shlex.join(argv) + "\n").encode())
            log.flush()
            proc = TRACKER.spawn(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                sample.startup_s = httpcheck.wait_ready(
                    o.host, port, proc, o.startup_timeout, path=scenario.path, http2=scenario.http2
                )
            except httpcheck.ServerFailed as exc:
                sample.detail = f"not ready: {exc}{log_tail(log_path)}"
                return sample
            TRACKER.remember_family(proc)
            wrong = self.inspect_server(proc, spec, sample)
            if wrong:
                sample.detail = wrong
                return sample
            problems = httpcheck.verify(scenario, o.host, port)
            if problems:
                sample.detail = "wrong answer: " + "; ".join(problems)
                return sample
            if scenario.kind == "websocket":
                sample.generator = "wsload"
                self._measure_ws(proc, spec, scenario, port, sample)
            else:
                sample.generator = self.generator_of(scenario)
                self._measure_http(proc, spec, scenario, port, sample)
            if proc.poll() is not None:
                sample.status = FAILED
                sample.detail = f"server exited (code {proc.returncode}) during the run{log_tail(log_path)}"
            return sample
        finally:
            TRACKER.stop(proc)

    def inspect_server(self, proc, spec: ServerSpec, sample: Sample) -> str | None:
        """Called once the server answers, before the precheck: a subclass may look at the
        running process (and note what it sees in ``sample.info``); a returned text fails
        the measurement with that reason."""
        return None

    def _wrk_argv(self, scenario: Scenario, port: int, seconds: float) -> list[str]:
        expected = scenario.expected
        if scenario.check == "len":
            expected_arg = str(len(expected))
        elif scenario.check == "eq":
            expected_arg = expected.decode("latin-1")
        else:
            expected_arg = "-"
        return pin_prefix(self.opts.client_cpus) + wrk.command(
            self.wrk_path,
            f"http://{url_host(self.opts.host)}:{port}{scenario.path}",
            threads=self.client_threads,
            connections=scenario.connections,
            duration=seconds,
            method=scenario.method,
            path=scenario.path,
            body_bytes=scenario.body_bytes,
            pipeline=scenario.pipeline,
            check=scenario.check,
            expected=expected_arg,
            require_headers=scenario.require_server_date,
        )

    def _run_wrk(self, scenario: Scenario, port: int, seconds: float):
        fin = TRACKER.run_bounded(self._wrk_argv(scenario, port, seconds), timeout=seconds + 30)
        if fin.timed_out:
            return fin, None, f"wrk did not finish within {seconds + 30:.0f}s"
        res = wrk.parse(fin.stdout)
        if fin.returncode != 0 or res.checks is None:
            why = (fin.stderr.strip() or fin.stdout.strip())[-300:]
            return fin, None, f"wrk failed (exit {fin.returncode}): {why}"
        return fin, res, None

    def _body_file(self, n: int) -> str:
        """A file holding the request body of ``n`` bytes, for h2load's -d."""
        path = self._body_files.get(n)
        if path is None or not os.path.exists(path):
            path = os.path.join(self.log_dir or tempfile.gettempdir(), f"h2load-body-{n}.bin")
            with open(path, "wb") as f:
                f.write(make_body(n))
            self._body_files[n] = path
        return path

    @staticmethod
    def h2load_misfit(scenario: Scenario) -> str | None:
        """Why h2load cannot drive ``scenario`` (it sends GET, or POST with -d's body)."""
        if scenario.method not in ("GET", "POST") or (scenario.method == "POST") != bool(scenario.body_bytes):
            return (
                f"h2load sends GET, or POST with a body; not {scenario.method} with "
                f"{scenario.body_bytes} body bytes"
            )
        return None

    def _h2load_argv(self, scenario: Scenario, port: int, seconds: float) -> list[str]:
        why = self.h2load_misfit(scenario)
        if why:
            raise ValueError(f"scenario {scenario.name}: {why}")
        return pin_prefix(self.opts.client_cpus) + h2load.command(
            self.h2load_path,
            f"http://{url_host(self.opts.host)}:{port}{scenario.path}",
            threads=self.client_threads,
            connections=scenario.connections,
            duration=seconds,
            pipeline=scenario.pipeline,
            body_file=self._body_file(scenario.body_bytes) if scenario.body_bytes else None,
            h1=not scenario.http2,
        )

    def _run_h2load(self, scenario: Scenario, port: int, seconds: float):
        fin = TRACKER.run_bounded(self._h2load_argv(scenario, port, seconds), timeout=seconds + 30)
        if fin.timed_out:
            return fin, None, f"h2load did not finish within {seconds + 30:.0f}s"
        if scenario.check == "echo":
            body_len = scenario.body_bytes
        elif scenario.check in ("eq", "len"):
            body_len = len(scenario.expected)
        else:
            body_len = None
        res = h2load.parse(
            fin.stdout,
            expected_body_len=body_len,
            connections=scenario.connections,
            pipeline=scenario.pipeline,
        )
        if fin.returncode != 0 or not res.parsed:
            why = (fin.stderr.strip() or fin.stdout.strip())[-300:]
            return fin, None, f"h2load failed (exit {fin.returncode}): {why}"
        return fin, res, None

    def generator_of(self, scenario: Scenario) -> str:
        """The load generator that drives ``scenario``, as the reports name it."""
        if scenario.kind == "websocket":
            return "wsload"
        if scenario.http2:
            return H2_GENERATOR
        return self.opts.generator

    def _run_http(self, scenario: Scenario, port: int, seconds: float):
        if scenario.http2 or self.opts.generator == "h2load":
            return self._run_h2load(scenario, port, seconds)
        return self._run_wrk(scenario, port, seconds)

    def _window_start(self, proc):
        return tree_cpu_seconds(proc.pid), cpu_busy_seconds(self.pinned_cpus), time.monotonic()

    def _window_end(self, proc, start, fin, sample: Sample) -> None:
        """Server and load-generator CPU shares over the measured window, the server tree's
        CPU seconds in it (per request: see ``_per_request``), and the share of the pinned
        cores that other processes took meanwhile (noise)."""
        cpu0, (busy0, steal0), t0 = start
        cpu1, (busy1, steal1), t1 = (
            tree_cpu_seconds(proc.pid),
            cpu_busy_seconds(self.pinned_cpus),
            time.monotonic(),
        )
        sample.server_cpu_s = cpu1 - cpu0
        elapsed = t1 - t0
        if elapsed <= 0:
            return
        sample.server_cpu = (cpu1 - cpu0) / elapsed
        sample.client_cpu = fin.cpu_seconds / fin.wall_seconds if fin.wall_seconds else None
        if self.pinned_cpus:
            span = elapsed * len(self.pinned_cpus)
            other = (busy1 - busy0) - (cpu1 - cpu0) - fin.cpu_seconds
            sample.other_load = max(0.0, other / span)
            sample.steal = (steal1 - steal0) / span

    @staticmethod
    def _per_request(sample: Sample) -> None:
        """The server tree's CPU time over the window divided by the requests (messages)
        the load generator saw completed in it, in microseconds."""
        if sample.server_cpu_s is not None and sample.requests > 0:
            sample.server_cpu_us_per_req = sample.server_cpu_s * 1e6 / sample.requests

    def _measure_http(self, proc, spec: ServerSpec, scenario: Scenario, port: int, sample: Sample) -> None:
        need_hdr = scenario.require_server_date
        errors, details = 0, []
        if self.opts.warmup > 0:
            _, warm, why = self._run_http(scenario, port, self.opts.warmup)
            if warm is None:
                sample.detail = f"warm-up: {why}"
                return
            sample.warmup_rate = warm.rps
            errors += warm.error_count(need_hdr)
            if warm.error_count(need_hdr):
                details.append("warm-up: " + warm.error_detail(need_hdr))
        start = self._window_start(proc)
        fin, res, why = self._run_http(scenario, port, self.opts.duration)
        if res is None:
            sample.detail = why
            return
        self._window_end(proc, start, fin, sample)
        sample.peak_rss_kib = tree_peak_rss_kib(proc.pid)
        sample.rate = res.rps
        sample.requests = res.requests
        self._per_request(sample)
        if scenario.latency_meaningful:
            sample.p50_ms, sample.p99_ms = res.p("p50"), res.p("p99")
        errors += res.error_count(need_hdr)
        if res.error_count(need_hdr):
            details.append(res.error_detail(need_hdr))
        sample.errors = errors
        sample.detail = "; ".join(details)
        if res.requests == 0 or res.responses == 0:
            sample.status = FAILED
            sample.detail = sample.detail or "no response completed during the measurement"
        else:
            sample.status = OK if errors == 0 else ERRORS

    def _ws_argv(self, scenario: Scenario, port: int, warmup: float, duration: float) -> list[str]:
        return pin_prefix(self.opts.client_cpus) + wsclient.command(
            self.wsload,
            self.opts.host,
            port,
            scenario.path,
            connections=scenario.connections,
            window=scenario.ws_window,
            size=scenario.ws_size,
            binary_messages=scenario.ws_binary,
            deflate=scenario.ws_deflate,
            warmup=warmup,
            duration=duration,
        )

    def _run_ws(self, scenario: Scenario, port: int, warmup: float, duration: float):
        limit = warmup + duration + 30
        fin = TRACKER.run_bounded(self._ws_argv(scenario, port, warmup, duration), timeout=limit)
        if fin.timed_out:
            return fin, None, f"wsload did not finish within {limit:.0f}s"
        try:
            return fin, wsclient.parse(fin.stdout), None
        except ValueError as exc:
            return fin, None, f"wsload failed (exit {fin.returncode}): {exc} {fin.stderr.strip()[-200:]}"

    def _measure_ws(self, proc, spec: ServerSpec, scenario: Scenario, port: int, sample: Sample) -> None:
        errors, details = 0, []
        if self.opts.warmup > 0:
            _, warm, why = self._run_ws(scenario, port, 0, self.opts.warmup)
            if warm is None:
                sample.detail = f"warm-up: {why}"
                return
            sample.warmup_rate = warm.rate
            errors += warm.errors
            if warm.errors:
                details.append(f"warm-up: {warm.errors} errors ({warm.first_error})")
        start = self._window_start(proc)
        fin, res, why = self._run_ws(scenario, port, 0.25, self.opts.duration)
        if res is None:
            sample.detail = why
            return
        self._window_end(proc, start, fin, sample)
        sample.peak_rss_kib = tree_peak_rss_kib(proc.pid)
        sample.rate = res.rate
        sample.requests = res.messages
        self._per_request(sample)
        sample.p50_ms, sample.p99_ms = res.latency_ms["p50"], res.latency_ms["p99"]
        errors += res.errors
        if res.errors:
            details.append(f"{res.errors} errors ({res.first_error})")
        sample.errors = errors
        sample.detail = "; ".join(details)
        if res.messages == 0:
            sample.status = FAILED
            sample.detail = sample.detail or "no echo arrived during the measurement"
        else:
            sample.status = OK if errors == 0 else ERRORS

    # -- the whole run --------------------------------------------------------------------

    def skip_reason(self, spec: ServerSpec, scenario: Scenario, probes: dict[str, Probe]) -> str | None:
        p = probes[spec.name]
        if not p.available:
            return p.reason
        if scenario.kind == "websocket":
            if spec.websocket is not True:
                return str(spec.websocket)
            if self.wsload is None:
                return self.wsload_missing or "no websocket load generator"
            if ":" in self.opts.host:
                return "the websocket load generator speaks IPv4 only"
        elif scenario.http2:
            if not spec.serves_h2c:
                return f"not applicable: {spec.h2c}"
            if self.h2_client is None:
                return httpcheck.H2_CLIENT_MISSING
            return self.h2load_misfit(scenario)
        elif self.opts.generator == "h2load":
            return self.h2load_misfit(scenario)
        return None

    def run(self) -> RunResult:
        o = self.opts
        scenarios = self.selected_scenarios()
        specs = self.selected_servers()
        if o.rounds < 1 or o.duration <= 0 or o.warmup < 0:
            raise ValueError("--rounds must be >= 1, --duration > 0 and --warmup >= 0")
        self.prepare_load_generators(scenarios)
        for cpus in (o.server_cpus, o.client_cpus):
            if cpus:
                pin_prefix(cpus)  # fails early and clearly without taskset
        raise_fd_limit()
        own_log_dir = self.log_dir is None
        if own_log_dir:
            self.log_dir = tempfile.mkdtemp(prefix="fastasgi-bench-logs-")
        self.say(f"probing {len(specs)} servers ...")
        probes = self.probe_servers(specs)
        for spec in specs:
            p = probes[spec.name]
            self.say(f"  {spec.name:<10} {p.version if p.available else 'SKIPPED: ' + str(p.reason)}")
        tools = {"wrk": wrk.wrk_version(self.wrk_path) if self.wrk_path else "not used"}
        if self.h2load_path:
            tools["h2load"] = h2load.h2load_version(self.h2load_path)
        if self.h2_client:
            tools["h2 precheck"] = self.h2_client
        if self.wsload:
            tools["wsload"] = os.path.basename(self.wsload)
        record = machine.record(
            repo=REPO,
            server_cpus=o.server_cpus,
            client_cpus=o.client_cpus,
            versions={n: (p.version if p.available else "not available") for n, p in probes.items()},
            tools=tools,
        )
        self.say("machine: " + machine.summary_line(record))

        plan = []  # (scenario, runnable specs, skipped {name: reason})
        for sc in scenarios:
            runnable, skipped = [], {}
            for spec in specs:
                why = self.skip_reason(spec, sc, probes)
                if why:
                    skipped[spec.name] = why
                else:
                    runnable.append(spec)
            plan.append((sc, runnable, skipped))
        total = sum(len(r) for _, r, _ in plan) * o.rounds
        per = 2.5 + o.warmup + o.duration
        self.say(
            f"{total} measurements, about {total * per / 60:.1f} min "
            f"({o.rounds} round(s) x {o.warmup:g}s warm-up + {o.duration:g}s each); "
            f"server logs in {self.log_dir}"
        )

        samples: dict[tuple[str, str], list[Sample]] = {}
        dropped: set[tuple[str, str]] = set()  # failed to start / answered wrongly: no more rounds
        interrupted = False
        done = 0
        try:
            for sc, runnable, _ in plan:
                for rnd in range(1, o.rounds + 1):
                    shift = (rnd - 1) % len(runnable) if runnable else 0
                    for spec in runnable[shift:] + runnable[:shift]:
                        done += 1
                        key = (sc.name, spec.name)
                        if key in dropped:
                            continue
                        self.say(
                            f"[{done:>3}/{total}] {sc.name:<10} round {rnd}/{o.rounds} {spec.name:<10} ",
                            end="",
                        )
                        s = self.run_one(spec, sc, rnd)
                        samples.setdefault(key, []).append(s)
                        if s.status == FAILED:
                            dropped.add(key)
                        self.say(self._progress_text(sc, s))
        except KeyboardInterrupt:
            interrupted = True
            self.say("\ninterrupted: stopping servers, reporting what was measured")
        finally:
            TRACKER.stop_all()

        results = []
        for sc, _runnable, skipped in plan:
            cells: dict[str, Cell] = {}
            for spec in specs:
                if spec.name in skipped:
                    cells[spec.name] = Cell(sc.name, spec.name, SKIPPED, reason=skipped[spec.name])
                else:
                    cells[spec.name] = aggregate(sc.name, spec.name, samples.get((sc.name, spec.name), []))
            sr = ScenarioResult(
                sc.name,
                sc.description,
                sc.unit,
                cells,
                BASELINE,
                SUBJECT,
                generator=self.generator_of(sc),
            )
            sr.compute_ratios()
            results.append(sr)

        result = RunResult(results, record, probes, interrupted, log_dir=self.log_dir)
        if o.out_dir:
            result.files = self.write_outputs(result, [s.name for s in specs])
        failures = any(c.status in (FAILED, ERRORS) for sr in results for c in sr.cells.values())
        if own_log_dir and not failures and not interrupted:
            shutil.rmtree(self.log_dir, ignore_errors=True)
            result.log_dir = None
        return result

    @staticmethod
    def _progress_text(sc: Scenario, s: Sample) -> str:
        if s.status == FAILED:
            return f"FAILED: {s.detail}"
        lat = f"  p99 {report.fmt_ms(s.p99_ms)} ms" if s.p99_ms is not None else ""
        cpu = (
            f"  server CPU {report.fmt_us(s.server_cpu_us_per_req)} us/{sc.unit.split('/')[0]}"
            if s.server_cpu_us_per_req is not None
            else ""
        )
        text = f"{report.fmt_rate(s.rate):>9} {sc.unit}{cpu}{lat}"
        if s.other_load is not None and s.other_load > NOISY_LOAD:
            text += f"  (noisy: other processes took {s.other_load:.0%} of the pinned cores)"
        return text + ("  ok" if s.status == OK else f"  ERRORS: {s.errors} ({s.detail})")

    def write_outputs(self, result: RunResult, servers: list[str]) -> list[str]:
        o = self.opts
        os.makedirs(o.out_dir, exist_ok=True)
        name = o.name or "bench-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = os.path.join(o.out_dir, name)
        payload = {
            "command": o.command_line,
            "interrupted": result.interrupted,
            "config": {
                "rounds": o.rounds,
                "duration_s": o.duration,
                "warmup_s": o.warmup,
                "generator": o.generator,
                "server_cpus": o.server_cpus,
                "client_cpus": o.client_cpus,
                "host": o.host,
                "servers": {
                    s: {
                        "argv": list(o.server_table[s].argv),
                        # HTTP/2 scenarios: appended to argv, or why they do not apply
                        "h2c": o.server_table[s].h2c
                        if isinstance(o.server_table[s].h2c, str)
                        else list(o.server_table[s].h2c),
                        "notes": o.server_table[s].notes,
                    }
                    for s in servers
                },
                "scenarios": {
                    sr.name: _scenario_config(o.scenario_table[sr.name]) for sr in result.scenarios
                },
            },
            "machine": result.machine,
            "results": result.scenarios,
        }
        files = [base + ".json", base + ".md"]
        report.write_json(files[0], payload)
        with open(files[1], "w") as f:
            f.write(
                report.markdown(
                    result.scenarios, result.machine, servers, o.rounds, o.command_line, generator=o.generator
                )
            )
        if o.chart:
            why_not = report.chart(base + ".png", result.scenarios, servers, result.machine)
            if why_not:
                self.say(f"no chart: {why_not}")
            else:
                files.append(base + ".png")
        return files


def _scenario_config(sc: Scenario) -> dict:
    d = dict(vars(sc))
    d["expected"] = len(sc.expected)  # the bytes themselves are in benchmarks/apps/
    return d


# -- command line -------------------------------------------------------------------------


def _csv(values: list[str] | None) -> list[str]:
    out = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare ASGI servers side by side: each pinned to its own core, the same "
        "app, wrk (or the websocket client) on another core, every response checked.",
    )
    p.add_argument(
        "--scenario",
        "--scenarios",
        dest="scenarios",
        action="append",
        metavar="NAMES",
        help=f"comma-separated, repeatable (default: all): {', '.join(SCENARIOS)}",
    )
    p.add_argument(
        "--servers",
        "--server",
        dest="servers",
        action="append",
        metavar="NAMES",
        help=f"comma-separated, repeatable (default: all): {', '.join(SERVERS)}",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measurements per server and scenario, servers interleaved per round (default: 3)",
    )
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per round (default: 5)")
    p.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of load before each measurement, checked but not counted (default: 2)",
    )
    p.add_argument("--server-cpus", default="0", help="CPUs for the server (taskset list, default: 0)")
    p.add_argument(
        "--client-cpus",
        default="1",
        help="CPUs for the load generator (default: 1); wrk gets one thread per CPU",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin (results then mean little)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to serve on (default: 127.0.0.1)")
    p.add_argument(
        "--generator",
        choices=GENERATORS,
        default="wrk",
        help="HTTP/1.1 load generator: wrk (default; every response's status, body and "
        "headers checked by benchmarks/lua/bench.lua) or h2load (nghttp2-client, "
        "run with --h1; statuses, errors and body byte counts checked). The HTTP/2 "
        "scenarios (h2-*) always run under h2load over h2c",
    )
    p.add_argument("--wrk", help="path of the wrk binary (default: wrk on PATH)")
    p.add_argument("--h2load", help="path of the h2load binary (default: h2load on PATH)")
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=30.0,
        help="seconds a server may take to answer its first request (default: 30)",
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help="directory for the JSON, markdown and PNG results (default: benchmarks/results)",
    )
    p.add_argument("--name", help="base name of the result files (default: bench-DATE-TIME)")
    p.add_argument("--no-write", action="store_true", help="print the table only, write no files")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    p.add_argument(
        "--log-dir",
        help="keep server logs here (default: a temporary directory, removed when every server passed)",
    )
    p.add_argument(
        "--list", action="store_true", help="list scenarios and servers (with availability) and exit"
    )
    return p


def _list(opts: Options) -> int:
    print("scenarios:")
    for s in SCENARIOS.values():
        print(f"  {s.name:<11} {s.description}")
    print("servers:")
    env = server_env()
    for spec in SERVERS.values():
        p = probe(spec, env=env, cwd=REPO, python=opts.python)
        state = p.version if p.available else f"not available: {p.reason}"
        print(f"  {spec.name:<10} {state}  [{spec.notes}]")
    try:
        print(f"wrk: {wrk.find_wrk(opts.wrk)}")
    except wrk.LoadGeneratorMissing as exc:
        print(str(exc))
    try:
        print(f"h2load: {h2load.find_h2load(opts.h2load)}")
    except wrk.LoadGeneratorMissing as exc:
        print(str(exc))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cpus_ok = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2
    opts = Options(
        scenarios=_csv(args.scenarios) or list(SCENARIOS),
        servers=_csv(args.servers) or list(SERVERS),
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        server_cpus=None if args.no_pin else args.server_cpus,
        client_cpus=None if args.no_pin else args.client_cpus,
        host=args.host,
        wrk=args.wrk,
        generator=args.generator,
        h2load=args.h2load,
        startup_timeout=args.startup_timeout,
        out_dir=None if args.no_write else args.out,
        name=args.name,
        chart=not args.no_chart,
        log_dir=args.log_dir,
        command_line="python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:]),
    )
    if args.list:
        return _list(opts)
    if not args.no_pin and not cpus_ok:
        print(
            "fewer than 2 usable CPUs: server and load generator would share a core; "
            "pass --no-pin to run anyway",
            file=sys.stderr,
        )
        return 2
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)
    restore_signals = install_signal_handlers()
    runner = Runner(opts)
    try:
        result = runner.run()
    except (wrk.LoadGeneratorMissing, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        TRACKER.stop_all()
        restore_signals()
    print(report.text_table(result.scenarios, opts.rounds))
    print()
    print("ratios:")
    print(report.ratio_lines(result.scenarios))
    for path in result.files:
        print(f"wrote {os.path.relpath(path)}")
    if result.log_dir:
        print(f"server logs: {result.log_dir}")
    return 130 if result.interrupted else 0
