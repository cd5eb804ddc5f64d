"""The one-code page's pure parts: picking the app, parsing yuan, the tokens."""
import pytest
from hypothesis import given, strategies as st

from channels.base import Method
from paycore.errors import InvalidRequest
from paycore.http.onecode import Forbidden, Tokens, app_for, method_for, parse_yuan, yuan
from channels.secrets import Secret


@pytest.mark.parametrize("ua,channel", [
    ("Mozilla/5.0 (iPhone) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI", "wechatpay"),
    ("Mozilla/5.0 (Windows NT 10.0) MicroMessenger/7.0.20.1781 WindowsWechat(0x63090a13)", None),
    ("Mozilla/5.0 (Linux; Android 13) Nebula AliApp(AP/10.5.26.8000) AlipayClient/10.5.26.8000", "alipay"),
    ("Mozilla/5.0 (iPhone) (com.unionpay.chsp) UnionPay/1.0 CloudPay", "unionpay"),
    ("Mozilla/5.0 (Linux; Android 12) MQQBrowser/6.2 TBS/046141 QQ/8.9.28.10155 NetType/WIFI", "qqwallet"),
    ("Mozilla/5.0 (Linux; Android 12) MQQBrowser/6.2 TBS/046141 Mobile Safari/537.36", None),
    ("jdapp;iPhone;12.3.4;;;M/5.0;appBuild/168960;", "jdpay"),
    ("Mozilla/5.0 (iPhone) jdjr-app/6.5.20", "jdpay"),
    ("Mozilla/5.0 (Linux; Android 13) aweme_290100 JsSdk/1.0 BytedanceWebview/d8a21c6", "douyinpay"),
    ("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0.0.0 Safari/537.36", None),
    ("", None),
])
def test_the_app_is_picked_by_user_agent(ua, channel):
    app = app_for(ua)
    assert (app.channel if app else None) == channel


def test_jsapi_first_then_h5_then_the_app_sdk():
    assert method_for(frozenset({Method.BARCODE, Method.QR, Method.JSAPI, Method.H5})) is Method.JSAPI
    assert method_for(frozenset({Method.BARCODE, Method.QR, Method.H5})) is Method.H5
    assert method_for(frozenset({Method.BARCODE, Method.QR, Method.NFC, Method.APP})) is Method.APP
    assert method_for(frozenset({Method.BARCODE})) is None


@pytest.mark.parametrize("text,fen", [("12.34", 1234), ("0.01", 1), ("8", 800), ("8.5", 850), ("100000.00", 10000000),
                                      ("0.1", 10)])
def test_yuan_strings_become_fen(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("bad", ["-1", "1.234", "1e3", "0", "0.00", "+5", "05", " 5", "5 ", "5,00", "", ".5", "5.",
                                 "NaN", "Infinity", "１２", 5, 5.0, None, True, "9" * 20])
def test_anything_else_is_refused(bad):
    with pytest.raises(InvalidRequest) as e:
        parse_yuan(bad)
    assert e.value.field == "amount"


@given(st.integers(min_value=1, max_value=10**14))
def test_yuan_round_trips(fen):
    assert parse_yuan(yuan(fen).replace(",", "")) == fen


def test_form_tokens_bind_code_session_and_time():
    t = Tokens(Secret("k" * 64))
    token = t.form("m_demo", "sid" * 8, now=1_000_000)
    form_id = t.check_form(token, "m_demo", "sid" * 8, now=1_000_100)
    assert len(form_id) == 24
    for code, sid, now in (("m_other", "sid" * 8, 1_000_100), ("m_demo", "other" * 5, 1_000_100),
                           ("m_demo", "sid" * 8, 1_000_000 + 31 * 60)):
        with pytest.raises(Forbidden):
            t.check_form(token, code, sid, now=now)
    with pytest.raises(Forbidden):
        t.check_form(token[:-1] + ("A" if token[-1] != "A" else "B"), "m_demo", "sid" * 8, now=1_000_100)
    assert Tokens(Secret("k" * 64)).csrf("s") == t.csrf("s") != Tokens(Secret("j" * 64)).csrf("s")


def test_the_pseudonymous_payer_is_stable_and_shaped_like_the_channel():
    t = Tokens(Secret("k" * 64))
    assert t.payer("wechatpay", "a") == t.payer("wechatpay", "a") != t.payer("wechatpay", "b")
    assert t.payer("alipay", "a")["user_id"].startswith("2088") and len(t.payer("alipay", "a")["user_id"]) == 16
    assert len(t.payer("qqwallet", "a")["openid"]) == 32
    assert t.payer("douyinpay", "a")["openid"].startswith("o")


# ------------------------------------------------------------- the client's address behind proxies
from paycore.http.onecode import client_address, trusted_networks  # noqa: E402

TRUSTED = trusted_networks(["10.0.0.0/8", "192.0.2.1"])


@pytest.mark.parametrize("peer,xff,client", [
    ("198.51.100.7", ["1.2.3.4"], "198.51.100.7"),              # not a proxy: its header is ignored
    ("192.0.2.1", ["203.0.113.5"], "203.0.113.5"),              # the load balancer names the customer
    ("192.0.2.1", ["6.6.6.6, 203.0.113.5"], "203.0.113.5"),     # what the client wrote in front is not believed
    ("192.0.2.1", ["203.0.113.5, 10.1.2.3"], "203.0.113.5"),    # past the trusted hops, right to left
    ("192.0.2.1", ["203.0.113.5", "10.1.2.3"], "203.0.113.5"),  # several header lines are one list
    ("192.0.2.1", [], "192.0.2.1"),                             # no header: the proxy itself
    ("192.0.2.1", ["10.1.2.3"], "10.1.2.3"),                    # only trusted hops: the farthest
    ("192.0.2.1", ["203.0.113.5, garbage"], "192.0.2.1"),       # a garbled hop stops the walk
    ("192.0.2.1", ["2001:db8::1"], "2001:db8::1"),
    (None, ["1.2.3.4"], "unknown"),
])
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(peer, xff, client):
    assert client_address(peer, xff, TRUSTED) == client


def test_without_trusted_proxies_the_peer_is_the_client():
    assert client_address("192.0.2.1", ["203.0.113.5"], ()) == "192.0.2.1"
    with pytest.raises(ValueError):
        trusted_networks(["not-an-address"])


# ------------------------------------------------------------- OAuth state and the payer cookie
def test_the_oauth_state_binds_code_channel_and_session():
    t = Tokens(Secret("k" * 64))
    state = t.oauth_state("m_demo", "wechatpay", "sid" * 8, now=1_000_000)
    assert state.isalnum() and len(state) < 128                 # WeChat allows [A-Za-z0-9], 128 bytes
    t.check_oauth_state(state, "m_demo", "wechatpay", "sid" * 8, now=1_000_100)
    for code, channel, sid, now in (("m_x", "wechatpay", "sid" * 8, 1_000_100),
                                    ("m_demo", "alipay", "sid" * 8, 1_000_100),
                                    ("m_demo", "wechatpay", "other" * 5, 1_000_100),
                                    ("m_demo", "wechatpay", "sid" * 8, 1_000_000 + 11 * 60)):
        with pytest.raises(Forbidden):
            t.check_oauth_state(state, code, channel, sid, now=now)
    for forged in ("", "x", "1000000x", state[:-1] + ("0" if state[-1] != "0" else "1"), "１x00"):
        with pytest.raises(Forbidden):
            t.check_oauth_state(forged, "m_demo", "wechatpay", "sid" * 8, now=1_000_100)


def test_the_payer_cookie_is_signed_and_bound_to_the_session():
    t = Tokens(Secret("k" * 64))
    cookie = t.payer_cookie("alipay", {"user_id": "2088102177846875"}, "sid" * 8, now=1_000_000)
    assert t.payer_from_cookie(cookie, "alipay", "sid" * 8, 86400, now=1_000_100) == {"user_id": "2088102177846875"}
    assert t.payer_from_cookie(cookie, "wechatpay", "sid" * 8, 86400, now=1_000_100) is None
    assert t.payer_from_cookie(cookie, "alipay", "other" * 5, 86400, now=1_000_100) is None
    assert t.payer_from_cookie(cookie, "alipay", "sid" * 8, 86400, now=1_000_000 + 86401) is None
    swapped = cookie.replace("2088102177846875", "2088000000000001")
    assert t.payer_from_cookie(swapped, "alipay", "sid" * 8, 86400, now=1_000_100) is None
    for junk in ("", "a.b.c", "openid.x y.1.m", "x" * 300):
        assert t.payer_from_cookie(junk, "alipay", "sid" * 8, 86400, now=1_000_100) is None
