"""Two builds of fastasgi, before and after a change, measured in one run:
``python -m benchmarks.compare_builds --before /tmp/fastasgi-before``.

A "build" is a source tree whose ``src/`` holds fastasgi with its extension built in place
(``python3 setup.py build_ext --inplace`` at the tree's root). "before" is usually a git
worktree of an older commit outside the repository, "after" the repository itself:

    git worktree add /tmp/fastasgi-before e1d513d
    (cd /tmp/fastasgi-before && python3 setup.py build_ext --inplace)
    python3 setup.py build_ext --inplace
    python -m benchmarks.compare_builds --before /tmp/fastasgi-before

Each server runs with ``PYTHONPATH=<tree>/src:<this repository>`` (its own fastasgi, and
benchmarks.apps from here, so both serve the same app), pinned with ``taskset -c 0``;
h2load ``--h1`` is the load generator, pinned with ``taskset -c 1``. The rounds interleave
the builds (A B A B ...; ``--order abba`` alternates who goes first), so drift in the
machine hits both alike. Every server process is checked to have mapped the extension of
its own tree (/proc/PID/maps), and the extension's SHA-256 is recorded each round: an
"after" tree rebuilt during the run is reported. Each measurement is the same as in
``python -m benchmarks`` (precheck, warm-up, timed window, every answer judged): a run
with errors is reported as such, never as a number.

Output: a markdown table with requests/s and the server's CPU time per request (user +
system of its process tree over the timed window, divided by the requests served in it)
for before and after, medians over rounds, and the ratios after/before; the same with
every round in JSON. CPU per request is the steadier number when other work shares the
machine; the ratios are what to read, not the absolute values.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import asdict, dataclass, field

from benchmarks import h2load, machine, report
from benchmarks.model import FAILED, OK, Cell, Sample, aggregate
from benchmarks.procs import TRACKER, install_signal_handlers, pin_prefix, process_tree
from benchmarks.runner import (
    DEFAULT_OUT,
    REPO,
    Options,
    Runner,
    raise_fd_limit,
)
from benchmarks.scenarios import SCENARIOS
from benchmarks.servers import SERVERS, ServerSpec
from benchmarks.wrk import LoadGeneratorMissing

DEFAULT_SCENARIOS = ("plaintext", "pipelined")
LABELS = ("before", "after")
EXT_GLOB = os.path.join("src", "fastasgi", "_http", "_core*.so")

BUILD_HINT = (
    "build it in place first:\n"
    "  git worktree add /tmp/fastasgi-before <commit>     (for a 'before' tree)\n"
    "  cd <tree> && python3 setup.py build_ext --inplace\n"
    "setup.py reads pyproject.toml, which needs setuptools >= 77 (the build requirement); with an "
    "older setuptools, build with an interpreter that has it, e.g. a venv with "
    "'pip install \"setuptools>=77\" wheel Cython' (--build --build-python PATH does this step)"
)


class BuildMissing(RuntimeError):
    """A tree has no extension built in place for this interpreter."""


@dataclass
class Build:
    label: str  # "before" or "after"
    tree: str  # the source tree's root
    extension: str  # the in-place built _core extension
    git: str | None = None
    sha256: str | None = None  # of the extension when the run started
    stale_sources: list[str] = field(default_factory=list)  # sources newer than the extension
    imported: dict = field(default_factory=dict)  # what a fresh interpreter imports from it

    @property
    def src(self) -> str:
        return os.path.join(self.tree, "src")

    def env(self) -> dict[str, str]:
        """The server's environment: this tree's src/ first, then this repository (for
        benchmarks.apps); an inherited PYTHONPATH is dropped so nothing else comes first."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([self.src, REPO])
        return env


def sha256_of(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def find_extension(tree: str) -> str:
    """The extension built in place in ``tree`` for this interpreter (BuildMissing if
    there is none)."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    if not os.path.isdir(os.path.join(tree, "src", "fastasgi")):
        raise BuildMissing(f"{tree}: no src/fastasgi here; is it a fastasgi source tree?")
    found = [p for p in glob.glob(os.path.join(tree, EXT_GLOB)) if p.endswith(suffix)]
    if not found:
        raise BuildMissing(f"{tree}: no fastasgi/_http/_core{suffix} in src/; {BUILD_HINT}")
    return os.path.realpath(found[0])


def newer_sources(tree: str, extension: str) -> list[str]:
    """Sources of the extension (Cython and the vendored C) changed after it was built: the
    tree's extension then does not match its own source."""
    try:
        built = os.path.getmtime(extension)
    except OSError:
        return []
    patterns = [os.path.join("src", "fastasgi", "_http", "**", f"*.{ext}") for ext in ("pyx", "pxd", "pxi")]
    patterns += [os.path.join("csrc", "**", f"*.{ext}") for ext in ("c", "h")]
    newer = []
    for pattern in patterns:
        for path in glob.glob(os.path.join(tree, pattern), recursive=True):
            if os.path.getmtime(path) > built:
                newer.append(os.path.relpath(path, tree))
    return sorted(newer)


def build_in_place(tree: str, python: str, log) -> None:
    """``python setup.py build_ext --inplace`` in ``tree``; RuntimeError with the end of
    its output when it fails."""
    done = subprocess.run(
        [python, "setup.py", "build_ext", "--inplace"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    print(f"built {tree} (exit {done.returncode})", file=log, flush=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise RuntimeError(f"building {tree} failed:\n{tail}\n{BUILD_HINT}")


_IMPORT_PROBE = (
    "import json, fastasgi, fastasgi._http._core as c; "
    "print(json.dumps({'fastasgi': fastasgi.__file__, 'core': c.__file__, "
    "'version': getattr(fastasgi, '__version__', None)}))"
)


def probe_import(build: Build, python: str) -> dict:
    """Import fastasgi the way the server will (same interpreter, environment and working
    directory) and report the files it came from."""
    done = subprocess.run(
        [python, "-c", _IMPORT_PROBE],
        cwd=REPO,
        env=build.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0][:300]}


def mapped_extensions(pid: int) -> list[str]:
    """Paths of fastasgi's _core extension mapped by ``pid`` and its descendants (a file
    replaced since it was mapped keeps its old path, with " (deleted)")."""
    found = []
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/maps") as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and "/fastasgi/_http/_core" in parts[5]:
                        path = parts[5].strip()
                        if path not in found:
                            found.append(path)
        except OSError:
            continue
    return found


class BuildRunner(Runner):
    """The benchmark runner for one build: its environment, and a check that the server
    process really mapped that build's extension."""

    def __init__(self, opts: Options, build: Build, progress=None):
        super().__init__(opts, progress=progress, env=build.env())
        self.build = build

    def inspect_server(self, proc, spec: ServerSpec, sample: Sample) -> str | None:
        mapped = mapped_extensions(proc.pid)
        sample.info["extension"] = mapped
        sample.info["sha256"] = sha256_of(self.build.extension)
        own = [m for m in mapped if os.path.realpath(m.removesuffix(" (deleted)")) == self.build.extension]
        if not own:
            return (
                f"the {self.build.label} server did not load {self.build.extension} "
                f"(mapped: {', '.join(mapped) or 'no fastasgi extension'})"
            )
        if any(m.endswith(" (deleted)") for m in own):
            sample.info["replaced_while_running"] = True
        return None


@dataclass
class Comparison:
    scenario: str
    cells: dict[str, Cell]
    rate_ratio: float | None = None  # median after / median before
    cpu_ratio: float | None = None  # the same for server CPU us/req
    paired_rate_ratio: float | None = None  # median over rounds of after/before in that round
    paired_cpu_ratio: float | None = None

    def compute(self) -> None:
        a, b = self.cells.get("after"), self.cells.get("before")
        if not (a and b and a.usable and b.usable):
            return
        self.rate_ratio = a.rate / b.rate
        if a.server_cpu_us_per_req and b.server_cpu_us_per_req:
            self.cpu_ratio = a.server_cpu_us_per_req / b.server_cpu_us_per_req
        by_round = {lab: {s.round: s for s in self.cells[lab].samples if s.status == OK} for lab in LABELS}
        rounds = sorted(set(by_round["before"]) & set(by_round["after"]))
        rates = [
            by_round["after"][r].rate / by_round["before"][r].rate
            for r in rounds
            if by_round["before"][r].rate
        ]
        cpus = [
            by_round["after"][r].server_cpu_us_per_req / by_round["before"][r].server_cpu_us_per_req
            for r in rounds
            if by_round["after"][r].server_cpu_us_per_req and by_round["before"][r].server_cpu_us_per_req
        ]
        self.paired_rate_ratio = statistics.median(rates) if rates else None
        self.paired_cpu_ratio = statistics.median(cpus) if cpus else None


def _status(c: Cell) -> str:
    if c.status == OK:
        return "ok" + (f" (noisy: up to {c.other_load:.0%} other load)" if c.noisy else "")
    return f"{c.status}: {c.reason}"


def markdown(
    comparisons: list[Comparison],
    builds: dict[str, Build],
    opts: Options,
    record: dict,
    order: str,
    command_line: str,
    warnings: list[str],
) -> str:
    b, a = builds["before"], builds["after"]
    tools = record.get("tools", {})
    generators = []
    if tools.get("h2load"):
        generators.append(f"{tools['h2load']} (`--h1` for HTTP/1.1)")
    if tools.get("wsload"):
        generators.append("wsload (benchmarks/wsload) for the websocket scenarios")
    lines = [
        f"fastasgi before ({b.git or '?'}, `{b.tree}`) and after ({a.git or '?'}, `{a.tree}`), measured "
        f"in one run: median of {opts.rounds} interleaved round(s) ({order.upper()}), "
        f"{opts.duration:g} s each after {opts.warmup:g} s of warm-up; {' and '.join(generators)} "
        f"pinned to CPU {opts.client_cpus}, the server to CPU {opts.server_cpus}; "
        f"{record.get('cpu_model')}, {record.get('kernel')}, Python {record.get('python')}.",
        "",
    ]
    if warnings:
        lines += [f"**{w}**" for w in warnings] + [""]
    lines += [
        "| scenario | before req/s | after req/s | after/before req/s | before server CPU us/req | "
        "after server CPU us/req | after/before server CPU us/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cmp in comparisons:
        cb, ca = cmp.cells["before"], cmp.cells["after"]

        def rate(c: Cell) -> str:
            return report.fmt_rate(c.rate) if c.usable else f"fails ({report.fmt_rate(c.rate)})"

        lines.append(
            f"| {cmp.scenario} | {rate(cb)} | {rate(ca)} | {report.fmt_ratio(cmp.rate_ratio)} | "
            f"{report.fmt_us(cb.server_cpu_us_per_req)} | {report.fmt_us(ca.server_cpu_us_per_req)} | "
            f"{report.fmt_ratio(cmp.cpu_ratio)} |"
        )
    lines += [
        "",
        "Ratios of medians above; the median of the per-round ratios (each round's after over the "
        "same round's before) is less sensitive to drift between rounds:",
        "",
        "| scenario | after/before req/s, paired | after/before server CPU us/req, paired | before | after |",
        "|---|---:|---:|---|---|",
    ]
    for cmp in comparisons:
        lines.append(
            f"| {cmp.scenario} | {report.fmt_ratio(cmp.paired_rate_ratio)} | "
            f"{report.fmt_ratio(cmp.paired_cpu_ratio)} | {_status(cmp.cells['before'])} | "
            f"{_status(cmp.cells['after'])} |"
        )
    lines += [
        "",
        "Every round (server CPU: share of one core the server used; other load: share of the pinned "
        "cores that other processes used meanwhile):",
        "",
        "| round | scenario | build | req/s | server CPU us/req | server CPU | generator CPU | other load | status |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    rows = [(s.round, cmp.scenario, s) for cmp in comparisons for c in cmp.cells.values() for s in c.samples]
    for rnd, name, s in sorted(rows, key=lambda r: (r[2].info.get("seq", 0), r[0], r[1])):  # run order
        status = "ok" if s.status == OK else f"{s.status}: {s.detail}"
        lines.append(
            f"| {rnd} | {name} | {s.server} | {report.fmt_rate(s.rate)} | "
            f"{report.fmt_us(s.server_cpu_us_per_req)} | {report.fmt_pct(s.server_cpu)} | "
            f"{report.fmt_pct(s.client_cpu)} | {report.fmt_pct(s.other_load)} | {status} |"
        )
    lines += [
        "",
        "Server CPU us/req: user + system CPU time of the server's process tree over the timed window "
        "(/proc/PID/stat), divided by the requests (websocket: messages) the load generator completed "
        "in it. Each server process was checked to have mapped its own tree's extension (/proc/PID/maps):",
        "",
    ]
    for build in (b, a):
        lines.append(
            f"- {build.label}: `{build.extension}` (sha256 {str(build.sha256)[:16]}), "
            f"fastasgi imported from `{build.imported.get('fastasgi', build.imported.get('error'))}`"
        )
    lines += ["", f"Produced by `{command_line}`."]
    return "\n".join(lines) + "\n"


def text_summary(comparisons: list[Comparison]) -> str:
    head = (
        "scenario",
        "before req/s",
        "after req/s",
        "after/before",
        "before us/req",
        "after us/req",
        "after/before",
    )
    rows = [head]
    for cmp in comparisons:
        cb, ca = cmp.cells["before"], cmp.cells["after"]
        rows.append(
            (
                cmp.scenario,
                report.fmt_rate(cb.rate) + ("" if cb.usable else " FAIL"),
                report.fmt_rate(ca.rate) + ("" if ca.usable else " FAIL"),
                report.fmt_ratio(cmp.rate_ratio),
                report.fmt_us(cb.server_cpu_us_per_req),
                report.fmt_us(ca.server_cpu_us_per_req),
                report.fmt_ratio(cmp.cpu_ratio),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    out = []
    for r in rows:
        out.append(
            "  " + r[0].ljust(widths[0]) + "  " + "  ".join(r[i].rjust(widths[i]) for i in range(1, len(r)))
        )
    for cmp in comparisons:
        for lab in LABELS:
            c = cmp.cells[lab]
            if not c.usable:
                out.append(f"  {cmp.scenario} / {lab}: {c.status}: {c.reason}")
    return "\n".join(out)


@dataclass
class CompareOptions:
    before: str
    after: str = REPO
    scenarios: list[str] = field(default_factory=lambda: list(DEFAULT_SCENARIOS))
    rounds: int = 5
    duration: float = 5.0
    warmup: float = 2.0
    server_cpus: str | None = "0"
    client_cpus: str | None = "1"
    order: str = "abab"
    h2load: str | None = None
    out_dir: str | None = DEFAULT_OUT
    name: str | None = None
    log_dir: str | None = None
    startup_timeout: float = 30.0
    build: bool = False
    build_python: str = sys.executable
    python: str = sys.executable
    command_line: str = "python -m benchmarks.compare_builds"
    #: other servers (names from benchmarks.servers) measured in the same rounds, for scale
    peers: list[str] = field(default_factory=list)


def peers_markdown(scenarios: list, cells: dict[tuple[str, str], Cell], names: list[str]) -> list[str]:
    """The builds and the peers side by side, per scenario: req/s, server CPU us/req, and the
    "after" build's ratios to each (above 1: after serves more, or spends less CPU)."""
    lines = [
        "",
        "Peers measured in the same interleaved rounds (same app, same load generator, same pins):",
        "",
        "| scenario | server | req/s | server CPU us/req | after's req/s / this | this CPU us/req / after's |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for sc in scenarios:
        after = cells.get((sc.name, "after"))
        for name in names:
            c = cells.get((sc.name, name))
            if c is None:
                continue
            rate_ratio = cpu_ratio = None
            if after and after.usable and c.usable and c.rate:
                rate_ratio = after.rate / c.rate
                if after.server_cpu_us_per_req and c.server_cpu_us_per_req:
                    cpu_ratio = c.server_cpu_us_per_req / after.server_cpu_us_per_req
            shown = report.fmt_rate(c.rate) if c.usable else f"fails ({_status(c)})"
            lines.append(
                f"| {sc.name} | {name} | {shown} | {report.fmt_us(c.server_cpu_us_per_req)} | "
                f"{report.fmt_ratio(rate_ratio)} | {report.fmt_ratio(cpu_ratio)} |"
            )
    return lines


def run(co: CompareOptions, progress=None) -> dict:
    """The whole comparison; returns what is written as JSON (plus "markdown" and "files")."""
    progress = progress if progress is not None else sys.stderr

    def say(text: str = "", end: str = "\n") -> None:
        print(text, end=end, file=progress, flush=True)

    unknown = [s for s in co.scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"not a scenario: {', '.join(unknown)}")
    if co.rounds < 1 or co.duration <= 0 or co.warmup < 0:
        raise ValueError("--rounds must be >= 1, --duration > 0 and --warmup >= 0")
    if co.order not in ("abab", "abba"):
        raise ValueError("--order is abab or abba")
    trees = {"before": os.path.realpath(co.before), "after": os.path.realpath(co.after)}
    if trees["before"] == trees["after"]:
        raise ValueError("--before and --after are the same tree")
    if co.build:
        for lab in LABELS:
            build_in_place(trees[lab], co.build_python, progress)
    builds = {lab: Build(lab, trees[lab], find_extension(trees[lab])) for lab in LABELS}
    for build in builds.values():
        build.git = machine.git_revision(build.tree)
        build.sha256 = sha256_of(build.extension)
        build.stale_sources = newer_sources(build.tree, build.extension)
        if build.stale_sources:
            say(
                f"warning: {build.label}: {', '.join(build.stale_sources[:4])} changed after "
                f"{os.path.basename(build.extension)} was built; it is not rebuilt here (--build does)"
            )
        build.imported = probe_import(build, co.python)
        core = build.imported.get("core")
        if core is None or os.path.realpath(core) != build.extension:
            raise RuntimeError(
                f"{build.label}: a fresh interpreter with PYTHONPATH={build.src} imports "
                f"{core or build.imported.get('error')}, not {build.extension}"
            )
        say(f"{build.label:<6} {build.tree} ({build.git}): {build.extension} sha256 {build.sha256[:16]}")
    if builds["before"].sha256 == builds["after"].sha256:
        say("note: both extensions are byte for byte the same file contents")

    for cpus in (co.server_cpus, co.client_cpus):
        if cpus:
            pin_prefix(cpus)
    raise_fd_limit()
    own_log_dir = co.log_dir is None
    log_dir = co.log_dir or tempfile.mkdtemp(prefix="fastasgi-compare-logs-")
    os.makedirs(log_dir, exist_ok=True)
    opts = Options(
        scenarios=list(co.scenarios),
        servers=list(LABELS),
        rounds=co.rounds,
        duration=co.duration,
        warmup=co.warmup,
        server_cpus=co.server_cpus,
        client_cpus=co.client_cpus,
        generator="h2load",
        h2load=co.h2load,
        startup_timeout=co.startup_timeout,
        out_dir=None,
        log_dir=log_dir,
        python=co.python,
        command_line=co.command_line,
    )
    runners: dict[str, Runner] = {lab: BuildRunner(opts, builds[lab], progress=progress) for lab in LABELS}
    unknown_peers = [p for p in co.peers if p not in SERVERS or p == "fastasgi"]
    if unknown_peers:
        raise ValueError(f"not a peer server: {', '.join(unknown_peers)}")
    for peer in co.peers:
        runners[peer] = Runner(opts, progress=progress)
    scenarios = [SCENARIOS[s] for s in co.scenarios]
    for r in runners.values():
        r.prepare_load_generators(scenarios)
    specs = {
        lab: ServerSpec(
            name=lab,
            module="fastasgi",
            argv=SERVERS["fastasgi"].argv,
            notes=f"fastasgi from {builds[lab].src}",
        )
        for lab in LABELS
    }
    specs.update({peer: SERVERS[peer] for peer in co.peers})
    tools = {}
    if runners["after"].h2load_path:
        tools["h2load"] = h2load.h2load_version(runners["after"].h2load_path)
    if runners["after"].wsload:
        tools["wsload"] = runners["after"].wsload
    record = machine.record(
        repo=REPO,
        server_cpus=co.server_cpus,
        client_cpus=co.client_cpus,
        versions={lab: f"{builds[lab].git} {builds[lab].tree}" for lab in LABELS},
        tools=tools,
    )
    say("machine: " + machine.summary_line(record))
    total = co.rounds * len(scenarios) * (2 + len(co.peers))
    say(
        f"{total} measurements, about {total * (2.5 + co.warmup + co.duration) / 60:.1f} min; "
        f"server logs in {log_dir}"
    )

    samples: dict[tuple[str, str], list[Sample]] = {}
    dropped: set[tuple[str, str]] = set()
    interrupted = False
    seq = 0
    try:
        for rnd in range(1, co.rounds + 1):
            order = list(LABELS) if co.order == "abab" or rnd % 2 else list(reversed(LABELS))
            for sc in scenarios:
                for lab in order + list(co.peers):
                    seq += 1
                    if (sc.name, lab) in dropped:
                        continue
                    say(f"[{seq:>3}/{total}] round {rnd}/{co.rounds} {sc.name:<10} {lab:<6} ", end="")
                    s = runners[lab].run_one(specs[lab], sc, rnd)
                    s.info["seq"] = seq
                    samples.setdefault((sc.name, lab), []).append(s)
                    if s.status == FAILED:
                        dropped.add((sc.name, lab))
                    say(Runner._progress_text(sc, s))
    except KeyboardInterrupt:
        interrupted = True
        say("\ninterrupted: stopping servers, reporting what was measured")
    finally:
        TRACKER.stop_all()

    comparisons = []
    for sc in scenarios:
        cells = {lab: aggregate(sc.name, lab, samples.get((sc.name, lab), [])) for lab in LABELS}
        cmp = Comparison(sc.name, cells)
        cmp.compute()
        comparisons.append(cmp)

    warnings = []
    for lab in LABELS:
        if builds[lab].stale_sources:
            warnings.append(
                f"The {lab} extension is older than its sources "
                f"({', '.join(builds[lab].stale_sources[:4])}): it was measured as built, "
                "which is not what its tree's source says."
            )
        seen = {s.info.get("sha256") for v in samples.values() for s in v if s.server == lab}
        seen.discard(None)
        if len(seen) > 1 or (seen and builds[lab].sha256 not in seen):
            warnings.append(
                f"The {lab} extension changed during the run ({len(seen | {builds[lab].sha256})} "
                "different files were served): its rounds mix builds."
            )
        if any(s.info.get("replaced_while_running") for v in samples.values() for s in v if s.server == lab):
            warnings.append(f"The {lab} extension was replaced while a server was running it.")
    noisy = [c for cmp in comparisons for c in cmp.cells.values() if c.noisy]
    if noisy:
        worst = max(c.other_load for c in noisy)
        warnings.append(
            f"Other processes used the pinned cores during {len(noisy)} of "
            f"{2 * len(comparisons)} cells (up to {worst:.0%} of their time): the machine was "
            "not quiet; the ratios, taken in one interleaved run, are what to read."
        )
    if interrupted:
        warnings.append("The run was interrupted: fewer rounds than asked for.")

    md = markdown(comparisons, builds, opts, record, co.order, co.command_line, warnings)
    if co.peers:
        peer_cells = {
            (sc.name, name): aggregate(sc.name, name, samples.get((sc.name, name), []))
            for sc in scenarios
            for name in [*LABELS, *co.peers]
        }
        md += "\n".join(peers_markdown(scenarios, peer_cells, [*LABELS, *co.peers])) + "\n"
    payload = {
        "command": co.command_line,
        "interrupted": interrupted,
        "config": {
            "rounds": co.rounds,
            "duration_s": co.duration,
            "warmup_s": co.warmup,
            "order": co.order,
            "generator": "h2load --h1 (HTTP/1.1), h2load (h2-*), wsload (websocket*)",
            "server_cpus": co.server_cpus,
            "client_cpus": co.client_cpus,
            "scenarios": list(co.scenarios),
            "server_argv": list(SERVERS["fastasgi"].argv),
        },
        "builds": {
            lab: {**asdict(builds[lab]), "pythonpath": builds[lab].env()["PYTHONPATH"]} for lab in LABELS
        },
        "machine": record,
        "warnings": warnings,
        "results": [
            {
                "scenario": cmp.scenario,
                "rate_ratio": cmp.rate_ratio,
                "cpu_us_per_req_ratio": cmp.cpu_ratio,
                "paired_rate_ratio": cmp.paired_rate_ratio,
                "paired_cpu_us_per_req_ratio": cmp.paired_cpu_ratio,
                "cells": {lab: asdict(c) for lab, c in cmp.cells.items()},
            }
            for cmp in comparisons
        ],
    }
    files = []
    if co.out_dir:
        os.makedirs(co.out_dir, exist_ok=True)
        name = co.name or "compare-builds-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = os.path.join(co.out_dir, name)
        with open(base + ".json", "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        with open(base + ".md", "w") as f:
            f.write(md)
        files = [base + ".json", base + ".md"]
    failures = any(not c.usable for cmp in comparisons for c in cmp.cells.values())
    if own_log_dir and not failures and not interrupted:
        shutil.rmtree(log_dir, ignore_errors=True)
        log_dir = None
    payload["markdown"] = md
    payload["files"] = files
    payload["log_dir"] = log_dir
    payload["comparisons"] = comparisons
    return payload


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare_builds",
        description="Two fastasgi builds (source trees with the extension built in place) in one "
        "run, interleaved rounds, h2load --h1 (HTTP/2 scenarios: h2load; websocket ones: wsload): "
        "requests/s (messages/s) and server CPU time per request (message), "
        "before and after, and the ratios.",
    )
    p.add_argument(
        "--before",
        required=True,
        help="the 'before' tree, e.g. a git worktree of the "
        "old commit: git worktree add /tmp/fastasgi-before COMMIT",
    )
    p.add_argument("--after", default=REPO, help="the 'after' tree (default: this repository)")
    p.add_argument(
        "--scenario",
        "--scenarios",
        dest="scenarios",
        action="append",
        metavar="NAMES",
        help=f"comma-separated scenarios, any of python -m benchmarks --list (default: "
        f"{','.join(DEFAULT_SCENARIOS)})",
    )
    p.add_argument("--rounds", type=int, default=5, help="rounds, each measuring both builds (default: 5)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per server (default: 5)")
    p.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of load before each measurement (default: 2)"
    )
    p.add_argument(
        "--order",
        choices=("abab", "abba"),
        default="abab",
        help="abab: before first in every round (default); abba: alternate who goes first",
    )
    p.add_argument("--server-cpus", default="0", help="CPUs for the server (default: 0)")
    p.add_argument("--client-cpus", default="1", help="CPUs for h2load (default: 1)")
    p.add_argument("--no-pin", action="store_true", help="do not pin (results then mean little)")
    p.add_argument("--h2load", help="path of the h2load binary (default: h2load on PATH)")
    p.add_argument(
        "--build", action="store_true", help="first run 'setup.py build_ext --inplace' in both trees"
    )
    p.add_argument(
        "--build-python",
        default=sys.executable,
        help="interpreter for --build (needs setuptools >= 77; default: this one)",
    )
    p.add_argument(
        "--peers",
        action="append",
        metavar="NAMES",
        help="other servers measured in the same rounds, comma-separated (e.g. uvicorn,granian)",
    )
    p.add_argument("--startup-timeout", type=float, default=30.0)
    p.add_argument(
        "--out", default=DEFAULT_OUT, help="directory for the markdown and JSON (default: benchmarks/results)"
    )
    p.add_argument("--name", help="base name of the result files (default: compare-builds-DATE-TIME)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument(
        "--log-dir",
        help="keep server logs here (default: a temporary directory, removed when everything passed)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scenarios = [x.strip() for v in (args.scenarios or []) for x in v.split(",") if x.strip()]
    co = CompareOptions(
        before=args.before,
        after=args.after,
        scenarios=scenarios or list(DEFAULT_SCENARIOS),
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        server_cpus=None if args.no_pin else args.server_cpus,
        client_cpus=None if args.no_pin else args.client_cpus,
        order=args.order,
        h2load=args.h2load,
        out_dir=None if args.no_write else args.out,
        name=args.name,
        log_dir=args.log_dir,
        startup_timeout=args.startup_timeout,
        build=args.build,
        build_python=args.build_python,
        peers=[x.strip() for v in (args.peers or []) for x in v.split(",") if x.strip()],
        command_line="python -m benchmarks.compare_builds "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
    )
    if not args.no_pin and not (hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2):
        print("fewer than 2 usable CPUs: pass --no-pin to run anyway", file=sys.stderr)
        return 2
    restore = install_signal_handlers()
    try:
        result = run(co)
    except (BuildMissing, LoadGeneratorMissing, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        TRACKER.stop_all()
        restore()
    print(text_summary(result["comparisons"]))
    print()
    print(result["markdown"])
    for path in result["files"]:
        print(f"wrote {os.path.relpath(path)}")
    if result["log_dir"]:
        print(f"server logs: {result['log_dir']}")
    return 130 if result["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
