"""Turning results into a terminal table, a markdown table, JSON and a PNG chart."""

from __future__ import annotations

import json
import os

from benchmarks.model import (
    ERRORS,
    FAILED,
    OK,
    SKIPPED,
    Cell,
    ScenarioResult,
    to_jsonable,
)


def fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def fmt_us(v: float | None) -> str:
    """CPU microseconds per request."""
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def fmt_mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


def short_status(cell: Cell) -> str:
    if cell.status == OK:
        notes = []
        if cell.client_bound:
            notes.append("load generator saturated")
        if cell.noisy:
            notes.append(f"noisy: {cell.other_load:.0%} other load")
        return "ok" + (f" ({'; '.join(notes)})" if notes else "")
    if cell.status == ERRORS:
        return f"FAIL: {cell.reason}"
    if cell.status == FAILED:
        return f"FAIL: {cell.reason}"
    return f"skipped: {cell.reason}"


def text_table(results: list[ScenarioResult], rounds: int) -> str:
    """One block per scenario, best first; failing servers listed last with the reason."""
    out = []
    for sr in results:
        out.append("")
        out.append(f"{sr.name}: {sr.description} [{sr.generator}]")
        head = (
            "server",
            sr.unit,
            "CPU us/req",
            "spread",
            "p50 ms",
            "p99 ms",
            "errors",
            "RSS MiB",
            "srv CPU",
            "gen CPU",
            f"x {sr.baseline}",
            "status",
        )
        rows = [head]
        for c in sr.ranking():
            rows.append(
                (
                    c.server,
                    fmt_rate(c.rate) if c.status != SKIPPED else "-",
                    fmt_us(c.server_cpu_us_per_req) if c.status != SKIPPED else "-",
                    "-" if c.spread_pct is None else f"±{c.spread_pct:.1f}%",
                    fmt_ms(c.p50_ms),
                    fmt_ms(c.p99_ms),
                    str(c.errors) if c.status != SKIPPED else "-",
                    fmt_mib(c.peak_rss_kib),
                    fmt_pct(c.server_cpu),
                    fmt_pct(c.client_cpu),
                    fmt_ratio(c.ratio_to_baseline),
                    short_status(c),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
        for r in rows:
            cols = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, len(widths))]
            out.append("  " + "  ".join(cols) + "  " + r[-1])
        out.append("  " + subject_line(sr))
    out.append("")
    warning = noise_warning(results)
    if warning:
        out.append(warning)
    out.append(
        f"median of {rounds} round(s); spread = (max - min) / 2 / median; servers that "
        "fail a check are not ranked. 'CPU us/req': CPU time (user + system) of the server's "
        "process tree per request served (websocket: per message), over the measured window. "
        "'srv CPU' / 'gen CPU': share of one core used by the server tree / the load generator "
        "while measured; 'noisy': other processes used the pinned cores meanwhile."
    )
    return "\n".join(out)


def subject_line(sr: ScenarioResult) -> str:
    s = sr.cells.get(sr.subject)
    if s is None or s.status == SKIPPED:
        return f"{sr.subject}: not run"
    if not s.usable:
        return f"{sr.subject}: FAILING ({s.reason})"
    parts = [f"{sr.subject}: {fmt_ratio(sr.subject_vs_baseline)} {sr.baseline}"]
    if sr.fastest_peer:
        parts.append(f"{fmt_ratio(sr.subject_vs_fastest_peer)} the fastest peer ({sr.fastest_peer})")
    else:
        parts.append("no other server passed")
    return ", ".join(parts)


def peer_ratios(sr: ScenarioResult) -> list[tuple[str, float, float | None]]:
    """The subject against each peer that passed, fastest peer first: (peer, subject's
    rate / peer's rate, subject's server CPU per request / peer's)."""
    s = sr.cells.get(sr.subject)
    if s is None or not s.usable:
        return []
    out = []
    for c in sr.ranking():
        if c.server == sr.subject or not c.usable:
            continue
        cpu = None
        if s.server_cpu_us_per_req and c.server_cpu_us_per_req:
            cpu = s.server_cpu_us_per_req / c.server_cpu_us_per_req
        out.append((c.server, s.rate / c.rate, cpu))
    return out


def peer_line(sr: ScenarioResult) -> str:
    pairs = peer_ratios(sr)
    if not pairs:
        return ""
    return f"{sr.subject} vs each peer (req/s, CPU us/req): " + ", ".join(
        f"{peer} {fmt_ratio(rate)} / {fmt_ratio(cpu)}" for peer, rate, cpu in pairs
    )


def ratio_lines(results: list[ScenarioResult]) -> str:
    lines = []
    for sr in results:
        ratios = ", ".join(
            f"{c.server} {fmt_ratio(c.ratio_to_baseline)}" for c in sr.ranking() if c.ratio_to_baseline
        )
        lines.append(f"{sr.name:<11} x {sr.baseline}: {ratios or '-'}")
        lines.append(f"{'':<11} {subject_line(sr)}")
        if peer_line(sr):
            lines.append(f"{'':<11} {peer_line(sr)}")
    return "\n".join(lines)


def noise_warning(results: list[ScenarioResult]) -> str | None:
    noisy = [c for sr in results for c in sr.cells.values() if c.noisy]
    if not noisy:
        return None
    worst = max(c.other_load for c in noisy)
    total = sum(1 for sr in results for c in sr.cells.values() if c.rounds)
    return (
        f"Warning: other processes used the pinned cores during {len(noisy)} of {total} "
        f"measured cells (up to {worst:.0%} of their time): the machine was not quiet, "
        "treat these numbers as approximate."
    )


def _md_cell(c: Cell | None) -> str:
    if c is None or c.status == SKIPPED:
        return "n/a"
    if c.status in (ERRORS, FAILED):
        return "fails"
    return fmt_rate(c.rate)


def markdown(
    results: list[ScenarioResult],
    machine: dict,
    servers: list[str],
    rounds: int,
    command_line: str,
    generator: str | None = None,
) -> str:
    gen = generator or (results[0].generator if results else "wrk")
    # e.g. HTTP/2 scenarios (h2load over h2c) in a run whose HTTP/1.1 generator is wrk
    others = sorted({sr.generator for sr in results} - {gen, "wsload"})
    gens = "; ".join(
        [gen] + [f"{o} for {', '.join(sr.name for sr in results if sr.generator == o)}" for o in others]
    )
    lines = [
        (
            f"Requests/s (websocket: messages/s), median of {rounds} round(s). "
            f"{machine.get('cpu_model')}, server pinned to CPU {machine.get('server_cpus')}, load "
            f"generator ({gens}; websocket: wsload) to CPU {machine.get('client_cpus')}; "
            f"{machine.get('kernel')}, Python {machine.get('python')}."
        ),
        "",
        "| scenario | " + " | ".join(servers) + f" | {results[0].subject if results else 'fastasgi'} / "
        f"{results[0].baseline if results else 'uvicorn'} | vs fastest peer |",
        "|---|" + "---:|" * len(servers) + "---:|---|",
    ]
    warning = noise_warning(results)
    if warning:
        lines[1:1] = ["", f"**{warning}**"]
    notes = []
    for sr in results:
        row = [sr.name]
        best = max((c.rate for c in sr.cells.values() if c.usable), default=None)
        for name in servers:
            c = sr.cells.get(name)
            text = _md_cell(c)
            if c is not None and c.usable and c.rate == best:
                text = f"**{text}**"
            if c is not None and c.status in (ERRORS, FAILED, SKIPPED) and c.reason:
                notes.append(f"{sr.name} / {name}: {c.status}: {c.reason}")
            row.append(text)
        row.append(fmt_ratio(sr.subject_vs_baseline))
        peer = (
            f"{fmt_ratio(sr.subject_vs_fastest_peer)} ({sr.fastest_peer})"
            if sr.subject_vs_fastest_peer
            else "-"
        )
        row.append(peer)
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Server CPU time per request (us; user + system of the server's process tree over "
        "the measured window, divided by the requests, websocket: messages, served in it; "
        "lower is better, and it holds also when the load generator was the limit):",
        "",
    ]
    lines.append("| scenario | " + " | ".join(f"{name} server CPU us/req" for name in servers) + " |")
    lines.append("|---|" + "---:|" * len(servers))
    for sr in results:
        row = [sr.name]
        for name in servers:
            c = sr.cells.get(name)
            if c is None or c.status == SKIPPED:
                row.append("n/a")
            elif not c.usable:
                row.append(f"fails ({fmt_us(c.server_cpu_us_per_req)})")
            else:
                row.append(fmt_us(c.server_cpu_us_per_req))
        lines.append("| " + " | ".join(row) + " |")
    peer_rows = [(sr.name, peer_ratios(sr)) for sr in results]
    if any(pairs for _, pairs in peer_rows):
        subject = results[0].subject
        lines += [
            "",
            f"{subject} against each peer that passed: its requests/s over the peer's, and its "
            "server CPU us/req over the peer's (req/s above 1x: faster; CPU below 1x: cheaper):",
            "",
            "| scenario | peer | req/s ratio | CPU us/req ratio |",
            "|---|---|---:|---:|",
        ]
        for name, pairs in peer_rows:
            for peer, rate, cpu in pairs:
                lines.append(f"| {name} | {peer} | {fmt_ratio(rate)} | {fmt_ratio(cpu)} |")
    lines += ["", "Details (p50 / p99 latency in ms, peak RSS of the server's processes in MiB):", ""]
    lines.append(
        "| scenario | generator | server | rate | server CPU us/req | spread | p50 | p99 | RSS | errors |"
    )
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for sr in results:
        for c in sr.ranking():
            if c.status == SKIPPED:
                continue
            rate = fmt_rate(c.rate) if c.usable else f"fails ({fmt_rate(c.rate)})"
            spread = "-" if c.spread_pct is None else f"±{c.spread_pct:.1f}%"
            lines.append(
                f"| {sr.name} | {sr.generator} | {c.server} | {rate} | "
                f"{fmt_us(c.server_cpu_us_per_req)} | {spread} | {fmt_ms(c.p50_ms)} | "
                f"{fmt_ms(c.p99_ms)} | {fmt_mib(c.peak_rss_kib)} | {c.errors} |"
            )
    if notes:
        lines += ["", "Not ranked:", ""] + [f"- {n}" for n in notes]
    versions = machine.get("server_versions") or {}
    if versions:
        lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "."]
    lines += ["", f"Produced by `{command_line}`."]
    return "\n".join(lines) + "\n"


def write_json(path: str, payload: dict) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=to_jsonable)
        f.write("\n")


def chart(path: str, results: list[ScenarioResult], servers: list[str], machine: dict) -> str | None:
    """Grouped bars, one group per scenario and one bar per server: above the rates (log
    scale, whiskers min-max), below the same as multiples of the baseline server. Servers
    that fail are marked with a cross instead of a bar. Returns None on success, else why
    not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    if not results or not servers:
        return "nothing to draw"
    n = len(servers)
    width = 0.8 / n
    baseline = results[0].baseline
    fig, (ax, rel) = plt.subplots(
        2,
        1,
        figsize=(max(8, 1.3 * len(results) * max(1, n / 4)), 8.5),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 2]},
    )
    colors = plt.get_cmap("tab10").colors
    all_rates = [c.rate for sr in results for c in sr.cells.values() if c.usable]
    floor = min(all_rates) / 3 if all_rates else 1
    for i, name in enumerate(servers):
        xs, heights, lo, hi, fails, rx, ratios = [], [], [], [], [], [], []
        for j, sr in enumerate(results):
            c = sr.cells.get(name)
            x = j - 0.4 + width * (i + 0.5)
            if c is not None and c.usable:
                xs.append(x)
                heights.append(c.rate)
                lo.append(c.rate - c.rate_min)
                hi.append(c.rate_max - c.rate)
                if c.ratio_to_baseline is not None:
                    rx.append(x)
                    ratios.append(c.ratio_to_baseline)
            elif c is not None and c.status in (ERRORS, FAILED):
                fails.append(x)
        color = colors[i % len(colors)]
        ax.bar(
            xs,
            heights,
            width,
            label=name,
            color=color,
            yerr=[lo, hi],
            capsize=2,
            error_kw={"elinewidth": 0.8},
        )
        rel.bar(rx, ratios, width, color=color)
        for x, r in zip(rx, ratios, strict=True):
            rel.text(x, r, f"{r:.1f}", ha="center", va="bottom", fontsize=6)
        if fails:
            ax.scatter(fails, [floor * 1.3] * len(fails), marker="x", color=color, s=40)
            rel.scatter(fails, [0.05] * len(fails), marker="x", color=color, s=40)
    ax.set_yscale("log")
    ax.set_ylabel("requests/s (websocket: messages/s), log")
    ax.set_title(
        f"ASGI servers, one core each: {machine.get('cpu_model')}, Python {machine.get('python')}\n"
        "median of rounds, whiskers min-max; x = server failed the scenario's checks",
        fontsize=9,
        pad=26,
    )
    ax.legend(fontsize=8, ncol=min(n, 8), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", which="both", alpha=0.3)
    rel.axhline(1.0, color="black", linewidth=0.8)
    rel.set_ylabel(f"x {baseline}")
    rel.grid(axis="y", alpha=0.3)
    rel.set_xticks(range(len(results)))
    rel.set_xticklabels([f"{sr.name}\n({sr.unit})" for sr in results], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def ensure_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
