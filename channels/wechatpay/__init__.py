"""WeChat Pay API v3 (api.mch.weixin.qq.com): codepay, native, JSAPI, H5 and app payments."""
