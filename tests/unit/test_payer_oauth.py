"""The apps' OAuth for the jsapi payer id, as pure mappings: the authorize links and the
token answers (WeChat snsapi_base, Alipay auth_base + alipay.system.oauth.token, Douyin)."""
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from channels import oauth
from channels.alipay import transformers as ali
from channels.base import ChannelError
from channels.douyinpay import transformers as dy
from channels.wechatpay import transformers as wx
from channels.secrets import Secret
from paycore.config import channel_settings

BACK = "https://pay.example.cn/c/m_demo/auth/wechatpay"


def test_wechat_authorize_link_is_in_wechats_order_with_its_fragment():
    url = wx.oauth_authorize_url(wx.OAUTH_AUTHORIZE_URL, "wxd678efh567hg6787", BACK, "123x9f")
    parts = urlsplit(url)
    assert (parts.netloc, parts.path, parts.fragment) == ("open.weixin.qq.com", "/connect/oauth2/authorize",
                                                          "wechat_redirect")
    assert [kv.split("=")[0] for kv in parts.query.split("&")] == ["appid", "redirect_uri", "response_type",
                                                                    "scope", "state"]
    q = parse_qs(parts.query)
    assert q["scope"] == ["snsapi_base"] and q["redirect_uri"] == [BACK] and "%2F" in parts.query


def test_wechat_token_answer_gives_the_openid_or_a_refusal():
    url = wx.oauth_token_url(wx.OAUTH_API_URL, "wxapp", "s3cret", "CODE1")
    assert url.startswith("https://api.weixin.qq.com/sns/oauth2/access_token?")
    assert parse_qs(urlsplit(url).query) == {"appid": ["wxapp"], "secret": ["s3cret"], "code": ["CODE1"],
                                             "grant_type": ["authorization_code"]}
    ok = {"access_token": "AT", "expires_in": 7200, "refresh_token": "RT", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
          "scope": "snsapi_base"}
    assert wx.oauth_payer(200, json.dumps(ok).encode()) == {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}
    with pytest.raises(ChannelError) as e:
        wx.oauth_payer(200, b'{"errcode":40029,"errmsg":"invalid code"}')
    assert (e.value.kind, e.value.retriable) == ("rejected", False)
    for status, body in ((502, b"bad gateway"), (200, b"<html>"), (200, b"[]"), (200, b'{"openid":"a b"}')):
        with pytest.raises(ChannelError) as e:
            wx.oauth_payer(status, body)
        assert e.value.retriable


def test_alipay_auth_base_link_and_token_answer():
    url = ali.oauth_authorize_url(ali.OAUTH_AUTHORIZE_URL, "2016091200494382", BACK, "1x2")
    q = parse_qs(urlsplit(url).query)
    assert url.startswith("https://openauth.alipay.com/oauth2/publicAppAuthorize.htm?")
    assert q == {"app_id": ["2016091200494382"], "scope": ["auth_base"], "redirect_uri": [BACK], "state": ["1x2"]}
    assert ali.oauth_token_fields("ac") == {"grant_type": "authorization_code", "code": "ac"}
    key = ali.response_key(ali.OAUTH_TOKEN)
    assert key == "alipay_system_oauth_token_response"
    assert ali.oauth_payer(key, {"user_id": "2088102150477652", "access_token": "x"}, signed=True) == \
        {"user_id": "2088102150477652"}
    with pytest.raises(ChannelError) as e:
        ali.oauth_payer("error_response", {"code": "40002", "sub_code": "isv.code-invalid"}, signed=False)
    assert (e.value.kind, e.value.retriable) == ("rejected", False)
    with pytest.raises(ChannelError) as e:
        ali.oauth_payer(key, {"user_id": "2088102150477652"}, signed=False)
    assert e.value.kind == "bad_signature"


def test_alipay_token_call_has_no_biz_content():
    from datetime import datetime, timezone
    p = ali.common_params(app_id="a", api_method=ali.OAUTH_TOKEN, biz=None, timestamp=datetime.now(timezone.utc),
                          extra=ali.oauth_token_fields("ac"))
    assert "biz_content" not in p and p["code"] == "ac" and p["grant_type"] == "authorization_code"


def test_douyin_silent_auth_link_and_token_answer():
    url = dy.oauth_authorize_url(dy.OAUTH_AUTHORIZE_URL, "tt07e3715e98c9aac0", BACK, "9x1")
    q = parse_qs(urlsplit(url).query)
    assert q["scope"] == ["login_id"] and q["client_key"] == ["tt07e3715e98c9aac0"] and q["redirect_uri"] == [BACK]
    target, body = dy.oauth_token_request(dy.OAUTH_API_URL, "ck", "cs", "CODE")
    assert target == "https://open.douyin.com/oauth/access_token/"
    assert json.loads(body) == {"client_key": "ck", "client_secret": "cs", "code": "CODE",
                                "grant_type": "authorization_code"}
    ok = {"data": {"open_id": "_000abc", "access_token": "x", "error_code": 0, "description": ""},
          "message": "success"}
    assert dy.oauth_payer(200, json.dumps(ok).encode()) == {"openid": "_000abc"}
    with pytest.raises(ChannelError) as e:
        dy.oauth_payer(200, b'{"data":{"error_code":10007,"description":"expired"},"message":"error"}')
    assert e.value.kind == "rejected"


def test_a_callback_without_a_code_is_a_refusal():
    with pytest.raises(ChannelError) as e:
        oauth.code_from({"state": "1x2"}, "code", "wechatpay")
    assert (e.value.kind, e.value.retriable) == ("denied", False)
    assert oauth.code_from({"auth_code": "ca34ea491e7146cc87d25fca24c4cD11"}, "auth_code", "alipay")


def test_the_app_secret_comes_from_a_file_and_never_shows(tmp_path):
    f = tmp_path / "app_secret"
    f.write_text("topsecretvalue\n")
    s = channel_settings("wechatpay", {"base_url": "https://api.mch.weixin.qq.com", "app_secret_file": str(f)})
    assert s.app_secret == Secret("topsecretvalue") and "topsecretvalue" not in repr(s)
    assert "app_secret_file" not in s.extra
