"""Results: one ``Sample`` per (scenario, server, round), aggregated into one ``Cell`` per
(scenario, server), plus the ratios the reports print."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

OK, ERRORS, FAILED, SKIPPED = "ok", "errors", "failed", "skipped"

#: a load generator using more than this share of its core may be what limits the rate
CLIENT_BOUND_CPU = 0.95
#: more than this share of the pinned cores used by other processes marks a cell as noisy
NOISY_LOAD = 0.05


@dataclass
class Sample:
    scenario: str
    server: str
    round: int
    status: str  # OK, ERRORS or FAILED
    detail: str = ""  # failure reason or error breakdown
    rate: float | None = None  # req/s or msg/s
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_kib: int | None = None
    server_cpu: float | None = None  # share of one core the server tree used while measured
    client_cpu: float | None = None  # the same for the load generator
    startup_s: float | None = None
    warmup_rate: float | None = None
    other_load: float | None = None  # share of the pinned cores other processes used meanwhile
    steal: float | None = None  # share of the pinned cores' time stolen by the hypervisor
    #: user + system CPU seconds of the server's process tree over the measured window
    server_cpu_s: float | None = None
    #: server_cpu_s per request (websocket: per message) served in the window, microseconds
    server_cpu_us_per_req: float | None = None
    generator: str = ""  # wrk, h2load or wsload
    info: dict = field(default_factory=dict)  # what a caller records about the run


@dataclass
class Cell:
    scenario: str
    server: str
    status: str
    reason: str = ""
    rate: float | None = None  # median over rounds
    rate_min: float | None = None
    rate_max: float | None = None
    spread_pct: float | None = None  # (max - min) / 2 / median, in percent
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    requests: int = 0
    peak_rss_kib: int | None = None
    server_cpu: float | None = None
    #: median over rounds of the server tree's CPU time per request, microseconds
    server_cpu_us_per_req: float | None = None
    client_cpu: float | None = None
    client_bound: bool = False
    other_load: float | None = None  # the most any round saw
    noisy: bool = False  # other processes took more than NOISY_LOAD of the pinned cores
    rounds: int = 0
    ratio_to_baseline: float | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Only a clean cell is ranked or used in a ratio: a server that errs is not fast."""
        return self.status == OK and self.rate is not None


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(scenario: str, server: str, samples: list[Sample]) -> Cell:
    if not samples:
        return Cell(scenario, server, SKIPPED, reason="not run")
    failed = [s for s in samples if s.status == FAILED]
    erred = [s for s in samples if s.status == ERRORS]
    measured = [s for s in samples if s.rate is not None]
    rates = [s.rate for s in measured]
    cell = Cell(scenario, server, OK, samples=list(samples), rounds=len(measured))
    if rates:
        cell.rate = statistics.median(rates)
        cell.rate_min, cell.rate_max = min(rates), max(rates)
        if len(rates) > 1 and cell.rate:
            cell.spread_pct = (cell.rate_max - cell.rate_min) / 2 / cell.rate * 100
    cell.p50_ms = _median(s.p50_ms for s in measured)
    cell.p99_ms = _median(s.p99_ms for s in measured)
    cell.errors = sum(s.errors for s in samples)
    cell.requests = sum(s.requests for s in samples)
    rss = [s.peak_rss_kib for s in samples if s.peak_rss_kib]
    cell.peak_rss_kib = max(rss) if rss else None
    cell.server_cpu = _median(s.server_cpu for s in measured)
    cell.server_cpu_us_per_req = _median(s.server_cpu_us_per_req for s in measured)
    cell.client_cpu = _median(s.client_cpu for s in measured)
    cell.client_bound = bool(cell.client_cpu is not None and cell.client_cpu > CLIENT_BOUND_CPU)
    loads = [s.other_load for s in measured if s.other_load is not None]
    cell.other_load = max(loads) if loads else None
    cell.noisy = bool(cell.other_load is not None and cell.other_load > NOISY_LOAD)
    if failed:
        cell.status = FAILED
        cell.reason = f"round {failed[0].round}: {failed[0].detail}"
    elif erred:
        cell.status = ERRORS
        cell.reason = f"{cell.errors} failed requests ({erred[0].detail})"
    return cell


@dataclass
class ScenarioResult:
    name: str
    description: str
    unit: str
    cells: dict[str, Cell]
    baseline: str
    subject: str
    fastest_peer: str | None = None
    subject_vs_fastest_peer: float | None = None
    subject_vs_baseline: float | None = None
    generator: str = "wrk"  # the load generator of this scenario: wrk, h2load or wsload

    def compute_ratios(self) -> None:
        base = self.cells.get(self.baseline)
        for cell in self.cells.values():
            if base is not None and base.usable and cell.usable:
                cell.ratio_to_baseline = cell.rate / base.rate
        peers = [c for n, c in self.cells.items() if n != self.subject and c.usable]
        subject = self.cells.get(self.subject)
        if peers:
            best = max(peers, key=lambda c: c.rate)
            self.fastest_peer = best.server
            if subject is not None and subject.usable:
                self.subject_vs_fastest_peer = subject.rate / best.rate
        if subject is not None and subject.usable and base is not None and base.usable:
            self.subject_vs_baseline = subject.rate / base.rate

    def ranking(self) -> list[Cell]:
        usable = sorted((c for c in self.cells.values() if c.usable), key=lambda c: -c.rate)
        others = [c for c in self.cells.values() if not c.usable]
        return usable + others


def to_jsonable(obj):
    if isinstance(obj, (Sample, Cell)):
        return asdict(obj)
    if isinstance(obj, ScenarioResult):
        d = {k: v for k, v in obj.__dict__.items() if k != "cells"}
        d["cells"] = {name: asdict(cell) for name, cell in obj.cells.items()}
        return d
    raise TypeError(type(obj))
