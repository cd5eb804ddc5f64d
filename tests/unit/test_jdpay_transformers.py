"""JD Pay transformers: signing, 3DES framing, envelopes and mappings against fixed vectors.

The RSA key below is a TEST VECTOR generated for this file only (1024-bit, never
used anywhere else); the expected bytes are recomputed independently with
`cryptography` in each test, and pinned literals guard against drift.
"""
from __future__ import annotations

import base64
import hashlib
from datetime import date, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from channels.base import Method, PayRequest, RefundStatus, TradeStatus
from channels.jdpay import transformers as tf

TEST_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIICeQIBADANBgkqhkiG9w0BAQEFAASCAmMwggJfAgEAAoGBAM1/J318AFPSJDRP
ZJSuFD+IW9NOzkmqGUC7evArA/tCYiFgEQDmaPew1rUnvGGwYW5fdhZNdEpWo83Q
tNszzBWYEGlI4FjxgoAMCVHM6EplLdSXeImzBf1ix2V0F7RhmO5B4fkjl06qiusY
Ur5zwcgf4vrlyvS1t7BzgMG5uYL9AgMBAAECgYEAyhD9iOO1ArdBSHrFIXoniO2R
ta/pIwBzAncYBS+XI6t8COuI7MSkdOLbzZh8IecpdznBSV7yOeMGAWz3WhCN3O5j
3toObbQobEPORLbMjjjvWoE3iUZo00+KG3ICQ1EXEs9NL8BUpE/mjkMPfKEloQh3
z0z6B8I7ououqR7Y8OECQQDw3c/xLh9tWaaVmiK4Js8BCjSnKZ2tH0NldIKRwseq
5fDicX8GiveiCOXwV4uc2NQaPADMFXZwHxJireuuDjjVAkEA2mhw+3MYOGpUnQBQ
MhJgwe+EBIc12zBDO+3DJbbovFzHZJh+7A/MJwJhBprzNp9XjoWAaFntmKLDO7FK
hXU1iQJBAKRUMJIzDW3lRCm8xwMsNv5WoCWL1u9N7QVCv/ICGYcW6YkUNb2ZAemi
eH3IvI99vvdHCKQz4GIOUNTSI4DUYyECQQCpw/bWLK9N4rCkXML5OLnG5SLr1iFx
n4ETSwud/B/JkiBWvAYj/V+Fjt7WIIkeExsep/yYoBYDx7gTZQp01BdpAkEAiqtL
2l5GT7RP4UeiTXVfN7USZMBnRFqgQMSPLwi90HssUZS5FnymGYXYfsmwnjSCukfG
oYELNksqTRE9oJb9bw==
-----END PRIVATE KEY-----
"""
KEY = serialization.load_pem_private_key(TEST_KEY_PEM, password=None)
assert isinstance(KEY, rsa.RSAPrivateKey)
DES = bytes(range(1, 25))          # base64 AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY
XML = ("<jdpay><version>V2.0</version><merchant>110226843002</merchant>"
       "<tradeNum>pay_000000000000000000000001</tradeNum><amount>1234</amount></jdpay>")
XML_SIGNED_TEXT = tf.XML_HEAD + XML
EXPECTED_SHA = "839be4c9b13f84fe1c7afaa53fd25024377285d6db419e795f13017f6b6a8276"
EXPECTED_SIGN = ("G9dP/LTZv9hLaTw4XQxvXd9uskNzeajXh5VoO+eXfrYb9cte3xIM/CbryQgdBuxsLyc7mzd668MjXDwLSjuOHnNAH8pStjBa"
                 "TXuUh+1xb+03t3gMDfREuAKnFdxX6sbNghDqYILSMrFC+7zhj8Y4J+jStbCcSM+IFE6LtNXH6dM=")
MERCHANT = "110226843002"


def test_sign_source_is_hex_sha256_of_xml_with_declaration() -> None:
    expected = hashlib.sha256(XML_SIGNED_TEXT.encode()).hexdigest()
    assert expected == EXPECTED_SHA
    assert tf.sign_source(XML) == expected.encode()
    # JD's normalisation: line breaks and tabs dropped, pieces trimmed, <sign> ignored
    pretty = (tf.XML_HEAD + "\n<jdpay>\n\t<version>V2.0</version>\r\n  <merchant>110226843002</merchant>\n"
              "  <tradeNum>pay_000000000000000000000001</tradeNum>\n  <amount>1234</amount>\n<sign>xx</sign></jdpay>\n")
    assert tf.sign_source(pretty) == expected.encode()


def test_rsa_sign_is_raw_pkcs1_type1_over_the_hex_digest() -> None:
    independent = base64.b64encode(KEY.sign(EXPECTED_SHA.encode(), padding.PKCS1v15(), NoDigestInfo())).decode()
    assert tf.rsa_sign(KEY, XML) == independent == EXPECTED_SIGN
    # what JD's verifier does: RSA public "decrypt" and compare with the hex digest (no DigestInfo)
    recovered = KEY.public_key().recover_data_from_signature(base64.b64decode(EXPECTED_SIGN), padding.PKCS1v15(), None)
    assert recovered == EXPECTED_SHA.encode()


def test_signed_xml_verifies_and_tampering_fails() -> None:
    signed = tf.signed_xml(KEY, XML)
    assert signed == XML_SIGNED_TEXT[:-len("</jdpay>")] + f"<sign>{EXPECTED_SIGN}</sign></jdpay>"
    assert tf.verify_xml(KEY.public_key(), signed)
    assert not tf.verify_xml(KEY.public_key(), signed.replace("1234", "1235"))
    assert not tf.verify_xml(KEY.public_key(), XML)                       # no sign at all
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert not tf.verify_xml(other.public_key(), signed)


def test_verify_a_vector_signed_independently() -> None:
    body = XML_SIGNED_TEXT.replace("1234", "99")
    sig = KEY.sign(hashlib.sha256(body.encode()).hexdigest().encode(), padding.PKCS1v15(), NoDigestInfo())
    vector = body.replace("</jdpay>", f"<sign>{base64.b64encode(sig).decode()}</sign></jdpay>")
    assert tf.verify_xml(KEY.public_key(), vector)


def _jd_frame(data: bytes) -> bytes:
    framed = len(data).to_bytes(4, "big") + data
    return framed + b"\x00" * ((8 - len(framed) % 8) % 8)


@pytest.mark.parametrize("text", ["", "a", "abcd", "京东 JD pay", "x" * 8, "y" * 12, XML])
def test_3des_uses_jd_length_prefix_and_zero_padding(text: str) -> None:
    enc = Cipher(TripleDES(DES), modes.ECB()).encryptor()
    independent = (enc.update(_jd_frame(text.encode())) + enc.finalize()).hex()
    assert tf.tdes_encrypt_hex(DES, text) == independent
    assert tf.tdes_decrypt_hex(DES, independent) == text
    assert tf.tdes_decrypt_hex(DES, independent.upper()) == text


def test_3des_fixed_vector() -> None:
    assert tf.tdes_encrypt_hex(DES, "京东 JD pay") == "7c505e8f06e9332c5bebbd12e33d62d204008e5a249b6383"
    assert tf.des_key_bytes("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY") == DES


def test_3des_with_wrong_key_or_bad_input_is_rejected() -> None:
    hex_text = tf.tdes_encrypt_hex(DES, XML)
    with pytest.raises(ValueError):
        tf.tdes_decrypt_hex(bytes(range(30, 54)), hex_text)
    with pytest.raises(ValueError):
        tf.tdes_decrypt_hex(DES, hex_text[:-2])
    with pytest.raises(ValueError):
        tf.des_key_bytes(base64.b64encode(b"short").decode())
    with pytest.raises(tf.EnvelopeError) as e:
        tf.decrypt_field(DES, "not base64 !!")
    assert e.value.reason == "undecryptable"


def test_encrypt_field_is_base64_of_hex() -> None:
    value = tf.encrypt_field(DES, "京东 JD pay")
    assert base64.b64decode(value) == b"7c505e8f06e9332c5bebbd12e33d62d204008e5a249b6383"
    assert tf.decrypt_field(DES, value) == "京东 JD pay"


def test_envelope_round_trip_and_rejections() -> None:
    fields = [("version", tf.VERSION), ("merchant", MERCHANT), ("tradeNum", "pay_x"), ("tradeName", "a<b & c"),
              ("amount", "100"), ("note", None)]
    raw = tf.seal(KEY, DES, MERCHANT, fields, result=("000000", "ok"))
    outer = tf.parse_xml(raw)
    assert set(outer) == {"version", "merchant", "result", "encrypt"} and outer["version"] == "V2.0"
    env = tf.open_envelope(KEY.public_key(), DES, raw)
    assert env.merchant == MERCHANT and env.code == "000000" and env.fields is not None
    assert env.fields["tradeName"] == "a<b & c" and "note" not in env.fields and env.fields["sign"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(tf.EnvelopeError) as e:
        tf.open_envelope(other.public_key(), DES, raw)
    assert e.value.reason == "bad_signature"
    with pytest.raises(tf.EnvelopeError) as e:
        tf.open_envelope(KEY.public_key(), bytes(24), raw)
    assert e.value.reason in ("undecryptable", "bad_signature")
    for bad in (b"not xml", b"<other/>", b'<!DOCTYPE x [<!ENTITY a "b">]><jdpay/>'):
        with pytest.raises(tf.EnvelopeError) as e:
            tf.open_envelope(KEY.public_key(), DES, bad)
        assert e.value.reason == "malformed"
    # a different merchant inside the signed part than outside
    inner_other = tf.seal(KEY, DES, MERCHANT, [("version", tf.VERSION), ("merchant", "999")])
    with pytest.raises(tf.EnvelopeError):
        tf.open_envelope(KEY.public_key(), DES, inner_other)


def test_error_envelope_has_no_encrypted_part() -> None:
    env = tf.open_envelope(KEY.public_key(), DES, tf.error_envelope(MERCHANT, tf.CODE_SYSTEM_ERROR, "系统异常"))
    assert env.fields is None and env.code == tf.CODE_SYSTEM_ERROR and env.desc == "系统异常"


@pytest.mark.parametrize(("fen", "wire"), [(0, "0"), (1, "1"), (99, "99"), (100, "100"),
                                           (123456789012, "123456789012")])
def test_amounts_are_plain_fen(fen: int, wire: str) -> None:
    assert tf.fen_to_wire(fen) == wire
    assert tf.wire_to_fen(wire) == fen


@pytest.mark.parametrize("bad", ["1.00", "-1", "+1", " 1", "1e3", "０", "abc"])
def test_amount_garbage_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        tf.wire_to_fen(bad)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_amount_out_of_range_is_rejected(bad) -> None:
    with pytest.raises(ValueError):
        tf.fen_to_wire(bad)


def test_times_are_china_time() -> None:
    t = datetime(2024, 3, 1, 16, 30, 5, tzinfo=timezone.utc)
    assert tf.jd_time(t) == "20240302003005"
    assert tf.parse_jd_time("20240302003005") == t
    assert tf.parse_jd_time(None) is None


def test_ids_pass_through_and_revoke_number_is_stable() -> None:
    pid = "pay_0123456789abcdefghijklmn"
    assert tf.from_trade_num(tf.to_trade_num(pid)) == pid
    assert tf.revoke_trade_num(pid) == "rvk_0123456789abcdefghijklmn" == tf.revoke_trade_num(pid)


def test_fkmpay_request_fields() -> None:
    now = datetime(2024, 1, 1, 0, 0, tzinfo=timezone.utc)
    req = PayRequest("pay_a", 1234, Method.BARCODE, "coffee", "http://n/notify", now + timedelta(minutes=5),
                     auth_code="181234567890123456", terminal_id="T1")
    fields = dict(tf.fkmpay_request(req, MERCHANT, now))
    assert fields["token"] == "181234567890123456" and fields["amount"] == "1234"
    assert fields["tradeTime"] == "20240101080000" and fields["currency"] == "CNY" and fields["version"] == "V2.0"
    qr = dict(tf.uniorder_request(req, MERCHANT, now, "QR"))
    assert qr["tradeType"] == "QR" and qr["expireTime"] == "300" and "token" not in qr


STATUS_CASES = [("0", TradeStatus.PENDING), ("1", TradeStatus.PROCESSING), ("2", TradeStatus.SUCCEEDED),
                ("3", TradeStatus.SUCCEEDED), ("4", TradeStatus.SUCCEEDED), ("5", TradeStatus.FAILED),
                ("6", TradeStatus.CLOSED), ("7", TradeStatus.REVERSED)]


@pytest.mark.parametrize(("status", "expected"), STATUS_CASES)
def test_status_mapping(status: str, expected: TradeStatus) -> None:
    codes = tf.JdCodes()
    res = tf.trade_result("000000", "ok", {"status": status, "amount": "5", "orderId": "JD1"}, codes)
    assert res.status is expected and res.amount == 5 and res.channel_trade_no == "JD1"


def test_result_codes_mapping() -> None:
    codes = tf.JdCodes()
    assert tf.trade_result(tf.CODE_USER_PAYING, "", {"status": "1"}, codes).status is TradeStatus.PROCESSING
    assert tf.trade_result(tf.CODE_NOT_FOUND, "", None, codes).status is TradeStatus.NOT_FOUND
    declined = tf.trade_result(tf.CODE_DECLINED, "余额不足", {"status": "5"}, codes)
    assert declined.status is TradeStatus.FAILED and declined.failure_code == "100001"
    with pytest.raises(ValueError):
        tf.trade_result("000000", "", {"status": "42"}, codes)
    assert tf.refund_result("000000", "", {"status": "2"}, codes).status is RefundStatus.SUCCEEDED
    assert tf.refund_result("000000", "", {"status": "1"}, codes).status is RefundStatus.PROCESSING
    assert tf.refund_result(tf.CODE_REFUND_DECLINED, "", None, codes).status is RefundStatus.FAILED


def test_tables_can_be_overridden_from_settings() -> None:
    codes = tf.JdCodes.from_extra({"status_map": {"8": "CLOSED"}, "user_paying_codes": ["EXPAS4"]})
    assert codes.status_map["8"] is TradeStatus.CLOSED and codes.status_map["2"] is TradeStatus.SUCCEEDED
    assert codes.user_paying_codes == {"EXPAS4"} and codes.system_error_codes == {tf.CODE_SYSTEM_ERROR}


def test_notification_mapping() -> None:
    codes = tf.JdCodes()
    pay = tf.notification(tf.Envelope(MERCHANT, "000000", "ok", {"tradeNum": "pay_a", "tradeType": "0",
                                                                 "amount": "100", "status": "2"}), codes)
    assert pay.kind == "payment" and pay.out_trade_no == "pay_a" and pay.amount == 100
    assert pay.payment is not None and pay.payment.status is TradeStatus.SUCCEEDED
    refund_fields = {"tradeNum": "rfd_a", "oTradeNum": "pay_a", "tradeType": "1", "amount": "40", "status": "2"}
    rfd = tf.notification(tf.Envelope(MERCHANT, "000000", "ok", refund_fields), codes)
    assert rfd.kind == "refund" and rfd.out_refund_no == "rfd_a" and rfd.out_trade_no == "pay_a"
    assert rfd.refund is not None and rfd.refund.status is RefundStatus.SUCCEEDED and rfd.amount == 40
    with pytest.raises(ValueError):
        tf.notification(tf.Envelope(MERCHANT, "000000", "ok", {"tradeType": "0"}), codes)


def test_bill_round_trip() -> None:
    rows = [["pay_a", "", "0", "JD1", "1000", "CNY", "2", "20240101080000"],
            ["pay_b", "", "0", "JD2", "50", "CNY", "5", "20240101080000"],
            ["rfd_a", "pay_a", "1", "JDR1", "300", "CNY", "2", "20240101090000"]]
    lines = tf.parse_bill(tf.bill_csv(rows))
    assert [(ln.kind, ln.out_trade_no, ln.out_refund_no, ln.amount, ln.status) for ln in lines] == [
        ("payment", "pay_a", None, 1000, "SUCCEEDED"), ("refund", "pay_a", "rfd_a", 300, "REFUNDED")]
    with pytest.raises(ValueError):
        tf.parse_bill("a,b\n1,2\n")
    assert tf.bill_request(MERCHANT, date(2024, 1, 2))[-2] == ("billDate", "20240102")


def test_uniorder_gen_sends_the_return_address_as_callback_url() -> None:
    """The H5 cashier returns the customer to the address paycore gave (JD's ``callbackUrl``);
    a QR order, which has no cashier page, and an order without one send none."""
    now = datetime(2024, 1, 1, 0, 0, tzinfo=timezone.utc)
    back = "https://pay.example.com/c/m_demo/back/abc/mac"
    req = PayRequest("pay_a", 1234, Method.H5, "coffee", "http://n/notify", now + timedelta(minutes=5),
                     return_url=back)
    gen = tf.uniorder_request(req, MERCHANT, now, "GEN")
    assert dict(gen)["callbackUrl"] == back and dict(gen)["notifyUrl"] == "http://n/notify"
    xml = tf.build_xml(gen)
    assert "<callbackUrl>https://pay.example.com/c/m_demo/back/abc/mac</callbackUrl><notifyUrl>" in xml
    assert "callbackUrl" not in tf.build_xml(tf.uniorder_request(req, MERCHANT, now, "QR"))
    plain = PayRequest("pay_a", 1234, Method.H5, "coffee", "http://n/notify", now + timedelta(minutes=5))
    assert "callbackUrl" not in tf.build_xml(tf.uniorder_request(plain, MERCHANT, now, "GEN"))
