"""The bench's grown comparison (loadtest/bench.py compare_grown): which rate it judges at and how."""
from __future__ import annotations

import asyncio

from loadtest.bench import GROWN_BOUND, climb_pair, compare_grown, errors_text, operating_rate


def step(rate, cpu, pg, p99, achieved=None, errors=0):
    return {"rate": rate, "achieved": achieved if achieved is not None else rate, "p99_ms": p99, "cpu_us": cpu,
            "errors": errors, "relay_lag_p99_ms": 50.0, "postgres_cpu_us": pg}


def turn(rate, cpu, pg, p99, ok=True):
    return {"rate": rate, "achieved": rate, "errors": {}, "unfinished": 0, "cpu_us": cpu, "postgres_cpu_us": pg,
            "p99_ms": p99, "ok": ok}


def climb(*steps, rows=None):
    out = {"steps": list(steps)}
    if rows:
        out["rows_preloaded"] = rows
    return out


EMPTY = climb(step(500, 900, 400, 20), step(1000, 600, 300, 40), step(1250, 560, 290, 160))
GROWN = climb(step(500, 910, 410, 22), step(1000, 610, 310, 45), step(1250, 580, 300, 900), rows=10_000_000)


def test_the_operating_point_is_the_highest_step_at_three_quarters_of_what_both_sustained():
    assert operating_rate([100, 200, 300, 500, 750, 1000, 1250], 100) == 750
    assert operating_rate([100, 200, 300, 500, 750, 1000], 100) == 750
    assert operating_rate([100, 200], 100) == 100
    assert operating_rate([100], 100) == 100
    assert operating_rate([], 100) == 100   # nothing sustained: the lowest rate tried


def test_without_turns_the_knee_decides_all_three():
    c = compare_grown(EMPTY, GROWN)
    assert c["rate"] == 1250 and c["sustained"]
    assert c["ratio"]["p99"] == round(900 / 160, 3)
    assert c["within_bound"] is False   # p99 at the knee 5.6x


def test_with_turns_p99_is_judged_at_the_operating_point_on_the_median_turn():
    turns = {"empty": [turn(1000, 600, 300, 40), turn(1000, 640, 320, 300), turn(1000, 610, 305, 42)],
             "grown": [turn(1000, 615, 310, 43), turn(1000, 620, 300, 41), turn(1000, 630, 315, 44)]}
    c = compare_grown(EMPTY, GROWN, 1000, turns)
    assert c["rate"] == 1000 and c["at"] == "operating point" and c["turns_each"] == 3
    assert c["empty"]["p99_ms"] == 42 and c["grown"]["p99_ms"] == 43   # the 300 ms turn is not the median
    assert c["empty"]["p99_ms_each"] == [40, 300, 42]
    assert c["at_knee"]["rate"] == 1250 and c["at_knee"]["ratio"]["p99"] > 1 + GROWN_BOUND
    assert c["within_bound"] is True
    assert c["rows_preloaded"] == 10_000_000


def secs(rate, cpu, pg, seconds, ok=True):
    """A turn whose generator gave each second's p99; the turn's own p99 is its worst second's here."""
    return dict(turn(rate, cpu, pg, max(seconds), ok), p99_ms_by_second=list(seconds))


def test_with_each_second_s_p99_the_median_second_decides_and_a_stall_in_a_few_does_not():
    # three 5 s turns a side; a stall of the machine lands in two of the empty turns and one grown
    empty = [secs(1000, 600, 300, [20, 22, 250, 21, 23]), secs(1000, 600, 300, [21, 20, 22, 24, 20]),
             secs(1000, 600, 300, [22, 180, 21, 20, 22])]
    grown = [secs(1000, 600, 300, [22, 21, 23, 22, 300]), secs(1000, 600, 300, [21, 23, 22, 20, 21]),
             secs(1000, 600, 300, [23, 22, 21, 22, 24])]
    c = compare_grown(EMPTY, GROWN, 1000, {"empty": empty, "grown": grown})
    assert c["empty"]["p99_ms"] == 22 and c["grown"]["p99_ms"] == 22
    assert c["empty"]["p99_of"] == "the median of 15 seconds"
    # the turns' own figures beside it: two of three empty turns stalled, so their median is a stall's
    assert c["empty"]["p99_ms_of_turns"] == 180 and c["grown"]["p99_ms_of_turns"] == 24
    assert c["empty"]["p99_ms_each"] == [250, 24, 180]
    assert c["p99_of_turns_ratio"] == round(24 / 180, 3)
    assert c["ratio"]["p99"] == 1.0 and c["within_bound"] is True


def test_a_grown_database_slower_in_every_second_fails_on_the_median_second():
    empty = [secs(1000, 600, 300, [20, 21, 22, 20, 21])] * 3
    grown = [secs(1000, 600, 300, [24, 25, 26, 24, 25])] * 3   # every second ~20 % slower
    c = compare_grown(EMPTY, GROWN, 1000, {"empty": empty, "grown": grown})
    assert c["ratio"]["p99"] == round(25 / 21, 3) and c["within_bound"] is False


def test_the_turns_say_how_much_of_their_windows_both_databases_shared():
    def at(t, start, end):
        return dict(t, window=[start, end])
    # both at once (one generator a little later than the other): the least shared of the turns
    together = {"empty": [at(turn(500, 600, 300, 40), 10.0, 20.0), at(turn(500, 600, 300, 40), 30.2, 40.2)],
                "grown": [at(turn(500, 600, 300, 40), 10.5, 20.5), at(turn(500, 600, 300, 40), 30.0, 40.0)]}
    c = compare_grown(EMPTY, GROWN, 1000, together)
    assert c["overlap"] == 0.95 and c["each_at"] == 500 and c["side_by_side"] == "at the same time"
    # one after the other: nothing shared
    apart = {"empty": [at(turn(500, 600, 300, 40), 10.0, 20.0)], "grown": [at(turn(500, 600, 300, 40), 21.0, 31.0)]}
    assert compare_grown(EMPTY, GROWN, 1000, apart)["overlap"] == 0.0
    # turns without windows (older lines): not known
    assert compare_grown(EMPTY, GROWN, 1000, {"empty": [turn(500, 600, 300, 40)],
                                              "grown": [turn(500, 600, 300, 40)]})["overlap"] is None


def test_a_grown_p99_beyond_the_bound_at_the_operating_point_fails():
    turns = {"empty": [turn(1000, 600, 300, 40)] * 3, "grown": [turn(1000, 600, 300, 45)] * 3}
    c = compare_grown(EMPTY, GROWN, 1000, turns)
    assert c["ratio"]["p99"] == 1.125 and c["within_bound"] is False


def test_the_knee_is_reported_beside_the_operating_point_and_cpu_there_decides():
    grown = climb(step(500, 910, 410, 22), step(1000, 610, 310, 45), step(1250, 700, 300, 200), rows=10)
    same = {"empty": [turn(1000, 600, 300, 40)] * 3, "grown": [turn(1000, 600, 300, 40)] * 3}
    c = compare_grown(EMPTY, grown, 1000, same)
    assert c["ratio"] == {"paycore_cpu": 1.0, "postgres_cpu": 1.0, "p99": 1.0}
    assert c["at_knee"]["ratio"]["paycore_cpu"] == 1.25 and c["within_bound"] is True
    costlier = {"empty": [turn(1000, 600, 300, 40)] * 3,
                "grown": [turn(1000, 600, 340, 40), turn(1000, 600, 335, 40), turn(1000, 600, 200, 40)]}
    c = compare_grown(EMPTY, grown, 1000, costlier)
    assert c["grown"]["postgres_cpu_us"] == 335 and c["ratio"]["postgres_cpu"] == 1.117
    assert c["within_bound"] is False


def test_the_median_turn_decides_sustained_too_and_any_error_fails():
    good, slow = turn(1000, 600, 300, 40), turn(1000, 600, 300, 40, ok=False)
    one_slow = {"empty": [good] * 5, "grown": [good, slow, good, good, good]}
    c = compare_grown(EMPTY, GROWN, 1000, one_slow)
    assert c["grown"]["turns_sustained"] == 4 and c["grown"]["sustained"] and c["within_bound"] is True
    three_slow = {"empty": [good] * 5, "grown": [slow, slow, good, slow, good]}
    c = compare_grown(EMPTY, GROWN, 1000, three_slow)
    assert c["grown"]["turns_sustained"] == 2 and c["within_bound"] is False
    failed = dict(good, errors={"http_503": 1})
    c = compare_grown(EMPTY, GROWN, 1000, {"empty": [good] * 5, "grown": [good, good, failed, good, good]})
    assert c["grown"]["errors"] == 1 and c["within_bound"] is False
    # which kinds failed, summed over the turns (a request still out at the end counts as unfinished)
    late = dict(good, errors={"http_503": 2, "connection": 1}, unfinished=3)
    c = compare_grown(EMPTY, GROWN, 1000, {"empty": [good] * 5, "grown": [failed, late, good, good, good]})
    assert c["grown"]["errors"] == 7
    assert c["grown"]["errors_by_kind"] == {"http_503": 3, "connection": 1, "unfinished": 3}
    assert c["empty"]["errors_by_kind"] == {}


def test_a_step_s_errors_are_logged_by_kind():
    assert errors_text({"errors": {}, "unfinished": 0}) == "0"
    assert errors_text({"errors": {"http_503": 10, "connection": 1}, "unfinished": 2}) == \
        "13 (http_503 10, unfinished 2, connection 1)"


def test_nothing_sustained_still_compares_in_turns_at_the_lowest_rate_and_is_not_within_bound():
    # a loaded machine: the first step already falls short on the empty database
    empty = climb(step(100, 900, 400, 20, achieved=80))
    grown = climb(step(100, 910, 410, 22), rows=3000)
    op = operating_rate([], 100)
    same = {"empty": [turn(100, 900, 400, 20)] * 3, "grown": [turn(100, 900, 400, 20)] * 3}
    c = compare_grown(empty, grown, op, same)
    assert c["at"] == "operating point" and c["rate"] == 100 and c["turns_each"] == 3
    assert c["at_knee"]["rate"] == 100 and c["at_knee"]["sustained"] is False
    assert c["ratio"] == {"paycore_cpu": 1.0, "postgres_cpu": 1.0, "p99": 1.0}
    assert c["within_bound"] is False   # equal figures, but nothing was sustained


def _ladder(tops: dict[str, int]):
    """A climb against two databases that sustain up to their ``tops``; what was measured, in order."""
    calls: list[tuple[str, int]] = []

    async def step(side: str, rate: int) -> bool:
        calls.append((side, rate))
        return rate <= tops[side]
    return calls, step


def test_the_paired_climb_goes_on_alone_for_the_database_that_still_sustains():
    rates = (100, 200, 300, 500, 750, 1000, 1250, 1500)
    # the grown database stalls at 1,000/s: the empty one's line must still reach its own top (1,250/s)
    calls, step = _ladder({"empty": 1250, "grown": 750})
    both = asyncio.run(climb_pair(rates, step))
    assert both == [100, 200, 300, 500, 750]
    assert calls[:10] == [(s, r) for r in both for s in ("empty", "grown")]   # together, empty first
    assert calls[10:] == [("empty", 1000), ("grown", 1000), ("empty", 1250), ("empty", 1500)]
    # and the other way round: the empty one stalls first
    calls, step = _ladder({"empty": 200, "grown": 500})
    assert asyncio.run(climb_pair(rates, step)) == [100, 200]
    assert calls[4:] == [("empty", 300), ("grown", 300), ("grown", 500), ("grown", 750)]
    # both sustain every rate: every step on both, and nothing after the ladder's end
    calls, step = _ladder({"empty": 10_000, "grown": 10_000})
    assert asyncio.run(climb_pair(rates, step)) == list(rates) and len(calls) == 2 * len(rates)
    # neither sustains the first: one step each, nothing sustained by both
    calls, step = _ladder({"empty": 0, "grown": 0})
    assert asyncio.run(climb_pair(rates, step)) == [] and calls == [("empty", 100), ("grown", 100)]
