"""Douyin Pay v1 (api.douyinpay.com), a WeChat-v3-style API: native, JSAPI, H5 and app payments."""
