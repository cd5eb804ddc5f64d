"""Pictures of a ``make bench`` run: one PNG per scenario.

Left: paycore's CPU per payment (and Postgres's) at each offered rate of the
climb, beside the floor (the same HTTP work with no payment logic, measured at
the highest sustained rate). Right: p99 latency at each rate, with the p99
bound a step must stay under to count as sustained. Written with matplotlib's
Agg backend (no screen); the figures are the bench's own JSON, nothing else.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def chart(result: dict[str, Any], path: Path, *, p99_bound_ms: float | None = None) -> Path:
    """Draw ``result`` (one scenario's JSON line of loadtest.bench) into ``path`` (PNG)."""
    steps = result["steps"]
    rates = [s["rate"] for s in steps]
    fig, (cpu, lat) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    title = f"{result['scenario']} — {result['flow']} via {result['channel']}"
    if result.get("rows_preloaded"):
        title += f", {result['rows_preloaded']:,} payments preloaded"
    fig.suptitle(title)

    cpu.plot(rates, [s["cpu_us"] for s in steps], "o-", label="paycore CPU µs / payment")
    pg = [s.get("postgres_cpu_us") for s in steps]
    if any(v is not None for v in pg):
        cpu.plot(rates, [v if v is not None else float("nan") for v in pg], "s--", label="Postgres CPU µs / payment")
    floor = result.get("floor_cpu_us_per_request")
    if floor:
        cpu.axhline(floor, color="grey", linestyle=":", label=f"floor {floor:,.0f} µs (at {result['rate_offered']}/s)")
        cpu.plot([result["rate_offered"]], [floor], "D", color="grey")
    ratio = result.get("floor_over_paycore")
    cpu.set_title(f"CPU per payment (floor/paycore {ratio})" if ratio is not None else "CPU per payment")
    cpu.set_xlabel("offered payments / s")
    cpu.set_ylabel("µs of CPU")
    cpu.set_ylim(bottom=0)
    cpu.grid(alpha=0.3)
    cpu.legend(fontsize=8)

    lat.plot(rates, [s["p99_ms"] for s in steps], "o-", color="tab:red", label="p99")
    for s in steps:
        if s["errors"] or s["achieved"] < 0.97 * s["rate"]:
            lat.annotate("not sustained", (s["rate"], s["p99_ms"]), textcoords="offset points", xytext=(-70, 6),
                         fontsize=8)
    if p99_bound_ms:
        lat.axhline(p99_bound_ms, color="grey", linestyle=":", label=f"sustained bound {p99_bound_ms:g} ms")
    lat.set_title("p99 latency")
    lat.set_xlabel("offered payments / s")
    lat.set_ylabel("ms")
    lat.set_yscale("log")
    lat.grid(alpha=0.3, which="both")
    lat.legend(fontsize=8)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
