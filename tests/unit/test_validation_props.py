"""Property tests of request validation (paycore.validation) and of its
agreement with the published OpenAPI schemas.

What a merchant relies on: a body the document calls valid is accepted; a
body with one bad field is refused naming that field; nothing a client can
send makes validation raise anything but InvalidRequest; the idempotency
fingerprint does not depend on key order.
"""
from __future__ import annotations

import json
import string

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import jsonschema_rs

from channels import emv
from paycore.http import openapi
from paycore.core import validation
from paycore.errors import InvalidRequest

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
DOC = json.loads(openapi.render())


def _validator(name: str) -> jsonschema_rs.Draft202012Validator:
    # the Rust engine reads patterns as JSON Schema means them ("$" is the end of the text, not
    # "before a final newline" as in Python's re, which the jsonschema package uses)
    return jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                               "components": DOC["components"]})


PAYMENT_SCHEMA = _validator("PaymentCreate")
REFUND_SCHEMA = _validator("RefundCreate")

BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
CONTROL = [chr(c) for c in range(0x20)] + ["\x7f", "\u2028", "\u2029"] + list(BIDI)
# printable text from every plane the JSON can carry, never a control character
free_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"),
                                  exclude_characters="\u2028\u2029" + BIDI), min_size=1, max_size=32)
order_no = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
digits = st.text(string.digits, min_size=10, max_size=32)
other_digits = st.sampled_from(["٠١٢٣٤٥٦٧٨٩", "０１２３４５６７８９", "߀߁߂߃߄߅߆߇߈߉", "²³¹"])
ident = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
metadata = st.dictionaries(st.text(max_size=32), st.one_of(
    st.text(max_size=48), st.integers(-(2 ** 53), 2 ** 53), st.booleans(), st.none()), max_size=8)


@st.composite
def nfc(draw) -> dict:
    body = draw(st.from_regex(r"[0-9]{12,18}", fullmatch=True))
    d = {"token": next(body + c for c in "0123456789" if emv.is_luhn(body + c)),   # a DPAN has a check digit
         "expiry": draw(st.from_regex(r"[3-9][0-9](0[1-9]|1[0-2])", fullmatch=True)),   # not expired
         "cryptogram": draw(st.from_regex(r"[A-Za-z0-9+/=]{4,256}", fullmatch=True))}
    if draw(st.booleans()):
        d["wallet"] = draw(st.sampled_from(validation.NFC_WALLETS))
    if draw(st.booleans()):
        d["emv_data"] = emv.tlv_build([("9F02", bytes(6)), ("9F26", draw(st.binary(min_size=8, max_size=8)))])
    return d


@st.composite
def payment_bodies(draw) -> dict:
    method = draw(st.sampled_from(["barcode", "sonic", "qr", "nfc", "jsapi", "h5", "app", "wallet"]))
    body: dict = {"merchant_order_no": draw(order_no), "amount": draw(st.integers(1, 10 ** 15)),
                  "currency": "CNY", "method": method}
    if method in ("barcode", "sonic"):
        body["auth_code"] = draw(digits)
    elif method == "nfc":
        body["nfc"] = draw(nfc())
    elif method == "jsapi":
        body["payer"] = draw(st.dictionaries(st.sampled_from(["openid", "user_id"]), ident, min_size=1))
    elif method == "wallet":
        body["payer"] = {"user_id": draw(ident)}
    if method not in ("barcode", "sonic", "nfc") or draw(st.booleans()):
        body["channel"] = draw(st.sampled_from(validation.CHANNELS))
    for name, strat in (("subject", free_text.map(lambda s: s[:128])), ("store_id", free_text),
                        ("terminal_id", free_text),
                        ("notify_url", st.sampled_from(["https://m.example.com/hook", "https://pay.example.cn:8443/n?x=1"])),
                        ("expire_in", st.integers(10, 7 * 24 * 3600)), ("metadata", metadata)):
        if draw(st.booleans()):
            body[name] = draw(strat)
    return body


@SETTINGS
@given(payment_bodies())
def test_a_body_the_document_calls_valid_is_accepted(body):
    assert PAYMENT_SCHEMA.is_valid(body), [str(e) for e in PAYMENT_SCHEMA.iter_errors(body)][:1]
    req = validation.create_payment(validation.parse_json_object(orjson.dumps(body)))
    assert req.amount == body["amount"] and req.merchant_order_no == body["merchant_order_no"]
    assert str(req.method) == body["method"]
    if "nfc" in body:
        assert req.nfc is not None and body["nfc"]["token"] not in repr(req.nfc)


# (field, a bad value, the field the error must name)
BAD_VALUES = [
    ("merchant_order_no", "", "merchant_order_no"), ("merchant_order_no", "a" * 65, "merchant_order_no"),
    ("merchant_order_no", "has space", "merchant_order_no"), ("merchant_order_no", "订单1", "merchant_order_no"),
    ("merchant_order_no", "abc\n", "merchant_order_no"), ("merchant_order_no", 12, "merchant_order_no"),
    ("amount", 0, "amount"), ("amount", -1, "amount"), ("amount", 1.5, "amount"), ("amount", 100.0, "amount"),
    ("amount", "100", "amount"), ("amount", True, "amount"), ("amount", 10 ** 15 + 1, "amount"),
    ("amount", 10 ** 30, "amount"), ("amount", None, "amount"), ("amount", [1], "amount"),
    ("currency", "USD", "currency"), ("currency", "cny", "currency"), ("currency", None, "currency"),
    ("method", "card", "method"), ("method", "BARCODE", "method"), ("method", 1, "method"),
    ("channel", "paypal", "channel"), ("channel", "", "channel"), ("channel", {"x": 1}, "channel"),
    ("subject", "a" * 129, "subject"), ("subject", "", "subject"), ("subject", 5, "subject"),
    ("store_id", "s" * 33, "store_id"), ("terminal_id", ["t"], "terminal_id"),
    ("notify_url", "ftp://x.example/", "notify_url"), ("notify_url", "http://[", "notify_url"),
    ("notify_url", "https://", "notify_url"), ("notify_url", "javascript:alert(1)", "notify_url"),
    ("expire_in", 9, "expire_in"), ("expire_in", 7 * 24 * 3600 + 1, "expire_in"), ("expire_in", 60.5, "expire_in"),
    ("metadata", [], "metadata"), ("metadata", "x", "metadata"), ("metadata", {"k": "v" * 5000}, "metadata"),
    ("unexpected", 1, "unexpected"), ("", 1, "body"),
]


@pytest.mark.parametrize("field,value,named", BAD_VALUES, ids=[f"{f or 'empty'}-{i}" for i, (f, _, _) in
                                                                enumerate(BAD_VALUES)])
def test_one_bad_field_is_refused_by_its_name(field, value, named):
    body = {"merchant_order_no": "o-1", "amount": 100, "currency": "CNY", "method": "qr", "channel": "alipay",
            "subject": "s", "metadata": {}}
    body[field] = value
    with pytest.raises(InvalidRequest) as e:
        validation.create_payment(body)
    assert e.value.field == named
    if not (isinstance(value, float) and value.is_integer()):   # JSON Schema counts 100.0 as an integer
        assert not PAYMENT_SCHEMA.is_valid(body)


@SETTINGS
@given(payment_bodies(), st.sampled_from(["merchant_order_no", "subject", "store_id", "terminal_id", "channel",
                                          "auth_code", "notify_url"]),
       st.sampled_from(CONTROL), st.integers(0, 8))
def test_control_characters_in_any_string_field_are_refused(body, field, ctrl, at):
    value = body.get(field)
    if not isinstance(value, str):
        value = {"channel": "alipay", "auth_code": "1345678901234567"}.get(field, "text")
        if field == "auth_code" and body["method"] not in ("barcode", "sonic"):
            return
    body[field] = value[:at] + ctrl + value[at:]
    with pytest.raises(InvalidRequest) as e:
        validation.create_payment(body)
    # "channel" with a control character is no channel at all; others name themselves
    assert e.value.field == field
    assert not PAYMENT_SCHEMA.is_valid(body)


@SETTINGS
@given(other_digits, st.sampled_from(["auth_code", "token"]))
def test_digits_of_other_scripts_are_not_digits(d, where):
    if where == "auth_code":
        body = {"merchant_order_no": "o", "amount": 1, "currency": "CNY", "method": "barcode",
                "auth_code": "13" + (d * 16)[:16]}
        named = "auth_code"
    else:
        body = {"merchant_order_no": "o", "amount": 1, "currency": "CNY", "method": "nfc",
                "nfc": {"token": "62" + (d * 14)[:14], "expiry": "2812", "cryptogram": "AAEC"}}
        named = "nfc.token"
    with pytest.raises(InvalidRequest) as e:
        validation.create_payment(body)
    assert e.value.field == named
    assert not PAYMENT_SCHEMA.is_valid(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(validation.PAYMENT_FIELDS) + ["x"]), json_values, max_size=10))
def test_nothing_a_client_sends_raises_anything_but_invalid_request(body):
    try:
        req = validation.create_payment(body)
    except InvalidRequest as e:
        assert e.field, "every refusal names a field"
        assert e.status == 400
        return
    assert type(req.amount) is int and req.amount > 0


@SETTINGS
@given(st.dictionaries(st.sampled_from(["token", "expiry", "cryptogram", "wallet", "emv_data", "pan"]),
                       json_values, max_size=6))
def test_any_nfc_object_is_accepted_or_refused_inside_nfc(nfc_obj):
    body = {"merchant_order_no": "o", "amount": 1, "currency": "CNY", "method": "nfc", "nfc": nfc_obj}
    try:
        validation.create_payment(body)
    except InvalidRequest as e:
        assert e.field and e.field.startswith("nfc")


@SETTINGS
@given(st.binary(max_size=256) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_a_json_object_or_a_400_about_the_body(raw):
    try:
        d = validation.parse_json_object(raw)
    except InvalidRequest as e:
        assert e.field == "body"
        return
    assert isinstance(d, dict)


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b'{"a": "\xc3\x28"}', b'{"a": "\\ud800"}', b"[" * 5000,
                                 b'{"amount": 1e400}', b"\x00", b"null", b"[]", b'"x"', b"{" * 2000])
def test_malformed_bodies_are_400_about_the_body(raw):
    with pytest.raises(InvalidRequest) as e:
        validation.parse_json_object(raw)
    assert e.value.field == "body"


@pytest.mark.parametrize("depth,ok", [(1, True), (32, True), (33, False), (300, False), (1000, False)])
def test_deep_metadata_is_refused_before_it_can_break_a_write(depth, ok):
    md = b'{"a":' * depth + b"1" + b"}" * depth   # bytes: orjson would not even write it
    body = (b'{"merchant_order_no": "o", "amount": 1, "currency": "CNY", "method": "qr", "channel": "alipay", '
            b'"metadata": ' + md + b"}")
    if ok:
        req = validation.create_payment(validation.parse_json_object(body))
        orjson.dumps({"event": {"payment": {"metadata": req.metadata}}})   # later writes still work
    else:
        with pytest.raises(InvalidRequest) as e:
            validation.create_payment(validation.parse_json_object(body))
        assert e.value.field == "metadata"


@SETTINGS
@given(payment_bodies(), st.randoms(use_true_random=False))
def test_fingerprint_ignores_key_order(body, rnd):
    keys = list(body)
    rnd.shuffle(keys)
    shuffled = {k: body[k] for k in keys}
    a = validation.create_payment(body).fingerprint
    assert validation.create_payment(shuffled).fingerprint == a
    changed = dict(body, amount=body["amount"] % (10 ** 15) + 1)
    assert validation.create_payment(changed).fingerprint != a


@SETTINGS
@given(st.fixed_dictionaries({"refund_no": order_no, "amount": st.integers(1, 10 ** 15)},
                             optional={"reason": free_text}))
def test_valid_refunds_are_accepted(body):
    assert REFUND_SCHEMA.is_valid(body)
    r = validation.create_refund(body)
    assert r.amount == body["amount"] and r.refund_no == body["refund_no"]


@SETTINGS
@given(st.dictionaries(st.sampled_from(["refund_no", "amount", "reason", "extra"]), json_values, max_size=4))
def test_any_refund_body_is_accepted_or_refused_by_field(body):
    try:
        validation.create_refund(body)
    except InvalidRequest as e:
        assert e.field
        return
    assert REFUND_SCHEMA.is_valid(body) or body.get("reason") is None   # the server also takes a null reason


GOOD_NFC = {"token": "6234567890123451", "expiry": "3012", "cryptogram": "AgAAAAAAAIhtq2rXYk3E0QABAAA=",
            "wallet": "applepay", "emv_data": "9F2608A1B2C3D4E5F60718"}


@pytest.mark.parametrize("change,field", [
    ({"token": "6234567890123456"}, "nfc.token"),                       # check digit wrong
    ({"expiry": "2001"}, "nfc.expiry"),                                 # expired
    ({"emv_data": "9F02060000000001009F1A020156"}, "nfc.emv_data"),     # no cryptogram (9F26)
    ({"emv_data": "9F2604A1B2C3D4"}, "nfc.emv_data"),                   # a cryptogram of 4 bytes
    ({"emv_data": "9F2608A1B2"}, "nfc.emv_data"),                       # truncated
    ({"emv_data": "9F2608A1B2C3D4E5F6071"}, "nfc.emv_data"),            # half a byte
    ({"emv_data": "DEADBEEF"}, "nfc.emv_data"),                         # no TLV at all
])
def test_nfc_data_the_network_would_refuse_is_refused_first(change, field):
    body = {"merchant_order_no": "o", "amount": 1, "currency": "CNY", "method": "nfc", "nfc": dict(GOOD_NFC, **change)}
    with pytest.raises(InvalidRequest) as e:
        validation.create_payment(body)
    assert e.value.field == field
    assert validation.create_payment(dict(body, nfc=GOOD_NFC)).nfc is not None
