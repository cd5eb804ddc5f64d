"""The audit's comparison: it must find what it exists to find."""
from __future__ import annotations

from paycore.outbox.audit import compare


def _ev(eid: str, pid: str, seq: int) -> dict:
    return {"event_id": eid, "seq": seq, "payment": {"id": pid}}


PG = {"e1": ("p1", 1), "e2": ("p1", 2), "e3": ("p1", 3), "f1": ("p2", 1), "f2": ("p2", 2)}


def test_a_complete_ordered_topic_passes_and_duplicates_are_only_reported():
    kafka = [(0, "p1", _ev("e1", "p1", 1)), (0, "p1", _ev("e2", "p1", 2)), (0, "p1", _ev("e2", "p1", 2)),
             (1, "p2", _ev("f1", "p2", 1)), (0, "p1", _ev("e3", "p1", 3)), (1, "p2", _ev("f2", "p2", 2))]
    rep = compare(PG, kafka)
    assert rep.ok and rep.missing == 0 and rep.out_of_order == 0
    assert rep.duplicated == 1 and rep.duplicated_ids == ["e2"] and rep.kafka_events == 5


def test_missing_events_fail_and_those_still_in_the_outbox_are_shown():
    kafka = [(0, "p1", _ev("e1", "p1", 1)), (1, "p2", _ev("f1", "p2", 1))]
    rep = compare(PG, kafka, pending={"f2"})
    assert not rep.ok and rep.missing == 3 and rep.missing_ids == ["e2", "e3", "f2"] and rep.pending == 1


def test_a_seq_going_backwards_after_dedup_is_out_of_order():
    kafka = [(0, "p1", _ev("e1", "p1", 1)), (0, "p1", _ev("e3", "p1", 3)), (0, "p1", _ev("e2", "p1", 2)),
             (1, "p2", _ev("f1", "p2", 1)), (1, "p2", _ev("f2", "p2", 2)), (1, "p2", _ev("f1", "p2", 1))]
    rep = compare(PG, kafka)
    assert not rep.ok and rep.out_of_order == 1 and rep.out_of_order_payments == ["p1"]
    assert rep.missing == 0 and rep.duplicated == 1   # a late duplicate of f1 is not a regression


def test_wrong_keys_and_unknown_events_are_reported():
    kafka = [(0, "p9", _ev("e1", "p1", 1)), (0, "p1", _ev("e2", "p1", 2)), (0, "p1", _ev("e3", "p1", 3)),
             (1, "p2", _ev("f1", "p2", 1)), (1, "p2", _ev("f2", "p2", 2)), (2, "x", _ev("zz", "x", 1))]
    rep = compare(PG, kafka)
    assert rep.wrong_key == 1 and not rep.ok and rep.unknown == 1
    assert "FAILED" in rep.table() and rep.to_json()["ok"] is False
