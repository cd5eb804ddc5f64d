"""``make bench``'s grown comparison end to end, at a toy size: the empty and the grown database
each get their own paycore (sharing the simulators and the broker), every step runs on both, and
the comparison line is made of turns at the operating point that load both at the same time.
Figures are not judged here (a test never times anything); what the bench's user reads is: both
scenario lines, the preload's rows in the grown database only, every event published from each,
and a comparison line that says at which rate and from how many turns it judged."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson

from loadtest.stack import sized_settings

VM = Path("/proc/sys/vm")


def _writeback() -> tuple[str, str]:
    return ((VM / "dirty_background_bytes").read_text(), (VM / "dirty_background_ratio").read_text())


async def test_the_bench_runs_the_empty_and_the_grown_database_turn_by_turn(tmp_path):
    argv = [sys.executable, "-m", "loadtest.bench", "--scenarios", "barcode_hmac,barcode_hmac_grown",
            "--grown-rows", "3000", "--max-rate", "200", "--duration", "1", "--warmup", "0.3",
            "--charts", str(tmp_path / "charts"), "--var", str(tmp_path / "var"),
            # each paycore's relay as a process of its own (kafka.relay = "separate"): its events still all
            # reach the topic, and its CPU is counted as paycore's
            "--relay", "separate",
            # its private Postgres makes 64 MB of WAL segments before the first step (4 GB in make bench)
            "--wal-prewarm-mb", "64",
            # the kernel's background writeback at 16 MB for the run where it may be set (root)
            "--dirty-background-mb", "16"]
    before = _writeback()
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=os.getcwd())
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    assert proc.returncode == 0, err.decode()[-3000:]
    lines = [orjson.loads(x) for x in out.splitlines() if x.strip()]
    head = lines[0]
    by = {x["scenario"]: x for x in lines if "scenario" in x}
    empty, grown = by["barcode_hmac"], by["barcode_hmac_grown"]
    compare = next(x for x in lines if "compare" in x)

    assert head["relay"] == "separate"
    assert grown["rows_preloaded"] == 3000 and "rows_preloaded" not in empty
    # the same ladder on both, step by step, until one stops; the other may go on alone
    e_rates, g_rates = [s["rate"] for s in empty["steps"]], [s["rate"] for s in grown["steps"]]
    n = min(len(e_rates), len(g_rates))
    assert n >= 1 and e_rates[:n] == g_rates[:n] and sorted(set(e_rates)) == e_rates
    for s in (empty, grown):
        assert s["errors"] == 0 and s["audit_ok"] is True
        assert s["events_written"] == s["events_published"] > 0
        assert s["events_missing"] == 0 and s["events_duplicated"] == 0 and s["outbox_left"] == 0
        # the grown database's preloaded payments are not counted as this run's
        assert 0 < s["payments_created"] < 3000
    # the floor ratio: the empty run's from three turns (paycore and the floor each time, at the top
    # rate), the median of their ratios; the grown twin's from one
    assert len(empty["floor_turns"]) == 3 and len(grown["floor_turns"]) == 1
    ratios = sorted(t["ratio"] for t in empty["floor_turns"])
    assert empty["floor_over_paycore"] == ratios[1]
    assert all(t["ratio"] == round(t["floor_cpu_us"] / t["paycore_cpu_us"], 3) for t in empty["floor_turns"])
    assert empty["floor_turns"][0]["paycore_cpu_us"] == empty["paycore_cpu_us_per_payment"]
    assert compare["rows_preloaded"] == 3000
    assert compare["at"] == "operating point" and compare["turns_each"] == 9
    # the turns load both databases at once, half the operating rate each: their windows overlap
    # (one after the other they would share nothing)
    assert compare["side_by_side"] == "at the same time" and compare["each_at"] == compare["rate"] / 2
    assert compare["overlap"] > 0
    assert len(compare["empty"]["p99_ms_each"]) == len(compare["grown"]["p99_ms_each"]) == 9
    assert compare["rate"] in [s["rate"] for s in empty["steps"]]
    assert compare["at_knee"]["rate"] >= compare["rate"]
    assert set(compare["ratio"]) == {"paycore_cpu", "postgres_cpu", "p99"}
    # p99 judged on the median second of the turns' (each second's own p99), the median turn's beside it
    for side in ("empty", "grown"):
        assert compare[side]["p99_of"].startswith("the median of ") and compare[side]["p99_of"].endswith(" seconds")
        assert compare[side]["p99_ms_of_turns"] is not None
    assert "p99_of_turns_ratio" in compare
    assert isinstance(compare["within_bound"], bool)
    assert (tmp_path / "charts" / "bench-barcode_hmac_grown.png").stat().st_size > 1000
    # its databases on a Postgres of its own, sized for the machine, stopped at the end
    assert head["postgres"] == f"own (shared_buffers {sized_settings()['shared_buffers']})"
    # the WAL made before the first step is kept for reuse by the checkpoint after it: at least the
    # four 16 MB segments asked for are in pg_wal (a fresh cluster has one or two)
    assert head["postgres_wal_segments"] >= 4
    # the writeback threshold was the bench's for the run, and the machine's is back after it
    if os.access(VM / "dirty_background_bytes", os.W_OK):
        assert head["dirty_background"] == "16 MB (set for the run)"
    else:
        assert "the machine's" in head["dirty_background"]
    assert _writeback() == before
    assert b"could not drop" not in err
    pgdata = str(tmp_path / "var" / "pg")
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and pgdata in _cmdline(pid)]
    # every twin's relay process was started, and is gone with the bench
    relay_logs = sorted((tmp_path / "var").rglob("relay.log"))
    assert len(relay_logs) == 3 and all("standing for the outbox's leadership" in f.read_text() for f in relay_logs)
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and " relay" in _cmdline(pid)
                and str(tmp_path) in _cmdline(pid)]


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
