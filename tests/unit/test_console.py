"""The console's pure parts: TOTP against the RFCs' test vectors, argon2id
hashes, the rights table, the payments search filter and its SQL, and the
Chinese text of every template string."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from paycore.core import search
from paycore.errors import InvalidRequest
from paycore.http.console import i18n
from paycore.merchants import users

# RFC 6238 appendix B: (time, SHA1, SHA256, SHA512), 8 digits, each algorithm with its own seed
RFC6238 = [(59, "94287082", "46119246", "90693936"), (1111111109, "07081804", "68084774", "25091201"),
           (1111111111, "14050471", "67062674", "99943326"), (1234567890, "89005924", "91819424", "93441116"),
           (2000000000, "69279037", "90698825", "38618901"), (20000000000, "65353130", "77737706", "47863826")]
SEEDS = {"sha1": b"12345678901234567890", "sha256": b"12345678901234567890123456789012",
         "sha512": b"1234567890123456789012345678901234567890123456789012345678901234"}
# RFC 4226 appendix D: HOTP of counters 0..9
RFC4226 = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]


@pytest.mark.parametrize("at,sha1,sha256,sha512", RFC6238)
def test_totp_matches_rfc_6238(at, sha1, sha256, sha512):
    for digest, want in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        assert users.totp(SEEDS[digest], at, digits=8, digest=digest) == want


def test_hotp_matches_rfc_4226():
    assert [users.hotp(SEEDS["sha1"], c) for c in range(10)] == RFC4226


def test_a_code_is_accepted_one_step_either_side_and_no_further():
    key = users.new_totp_key()
    at = 1_700_000_000.0
    step = int(at // 30)
    assert users.totp_step(key, users.totp(key, at), at) == step
    assert users.totp_step(key, users.totp(key, at - 30), at) == step - 1
    assert users.totp_step(key, users.totp(key, at + 30), at) == step + 1
    assert users.totp_step(key, users.totp(key, at - 60), at) is None
    for bad in ("", "12345", "1234567", "abcdef", None):
        assert users.totp_step(key, bad, at) is None


def test_the_uri_carries_the_key_for_an_authenticator_app():
    uri = users.totp_uri("ops.alice", SEEDS["sha1"])
    assert uri.startswith("otpauth://totp/paycore:ops.alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&")
    assert "digits=6" in uri and "period=30" in uri


def test_passwords_are_argon2id_and_short_ones_are_refused():
    h = users.hash_password("correct horse battery")
    assert h.startswith("$argon2id$")
    assert users.verify_password(h, "correct horse battery")
    assert not users.verify_password(h, "correct horse batterY")
    assert not users.verify_password("not a hash", "x")
    with pytest.raises(ValueError):
        users.hash_password("short")


def test_support_can_read_but_change_nothing():
    writes = {"payments.refund", "payments.cancel", "attention.resolve", "merchants.write", "codes.write",
              "webhooks.replay", "users.write", "reconciliation.run", "credentials.rotate"}
    assert not [r for r in writes if users.allowed("support", r)]
    assert users.allowed("support", "payments.read") and users.allowed("support", "audit.read")
    assert not users.allowed("merchant", "audit.read") and not users.allowed("merchant", "merchants.read")
    assert users.allowed("admin", "users.write") and not users.allowed("finance", "users.write")


def test_the_search_filter_parses_and_names_the_bad_field():
    f = search.parse_filter({"status": "SUCCEEDED", "since": "2026-12-01", "until": "2026-12-01", "channel": "",
                             "merchant_order_no": " o-1 "})
    assert f.status == "SUCCEEDED" and f.merchant_order_no == "o-1" and f.channel is None
    assert f.since == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert f.until == datetime(2026, 12, 2, tzinfo=timezone.utc)     # a whole day
    for q, field in (({"status": "PAID"}, "status"), ({"since": "yesterday"}, "since"),
                     ({"id": "pay_1' or 1=1"}, "id"), ({"channel": "paypal"}, "channel")):
        with pytest.raises(InvalidRequest) as e:
            search.parse_filter(q)
        assert e.value.field == field


def test_a_scoped_search_is_always_limited_to_its_merchant():
    sql, args = search.search_sql(search.PaymentFilter(merchant_id="m_other"), "m_test", None, 51)
    assert "merchant_id = $1" in sql and args[0] == "m_test"
    # another merchant in the filter only narrows it further (to nothing): conditions are all ANDed
    assert "merchant_id = $2" in sql and " or " not in sql.lower()
    cursor = search.encode_cursor({"created_at": datetime(2026, 12, 1, 10, tzinfo=timezone.utc), "id": "pay_x"})
    sql, args = search.search_sql(search.PaymentFilter(status="FAILED"), None, search.decode_cursor(cursor), 51)
    assert "(created_at, id) < ($2, $3)" in sql and args[1:3] == [datetime(2026, 12, 1, 10, tzinfo=timezone.utc),
                                                                   "pay_x"]
    with pytest.raises(InvalidRequest):
        search.decode_cursor("x.pay_1")


def test_every_template_string_has_chinese():
    templates = Path(i18n.__file__).resolve().parent.parent / "templates" / "console"
    found = set()
    for t in templates.glob("*.html"):
        found |= set(re.findall(r'''_\(["']([^"']+)["']\)''', t.read_text()))
    assert len(found) > 100
    assert sorted(found - set(i18n.ZH)) == []


def test_money_is_yuan_from_fen_without_floats():
    assert i18n.money(1234567) == "12,345.67" and i18n.money(5) == "0.05" and i18n.money(None) == ""
