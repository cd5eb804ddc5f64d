"""What WeChat Pay API v3 and the WeChat-v3-style APIs built after it (Douyin Pay
v1) have in common, written once:

* :mod:`channels.wxv3.crypto` – SHA256withRSA request/answer signatures, the
  ``Authorization`` header, AEAD_AES_256_GCM notification resources;
* :mod:`channels.wxv3.transformers` – the wire profile of one provider
  (:class:`~channels.wxv3.transformers.V3Profile`) and the pure mappings
  between ``channels.base`` types and the v3 JSON;
* :mod:`channels.wxv3.adapter` – the transport and every flow both share;
* :mod:`channels.wxv3.simulator` – the provider side both simulators share.

``channels.wechatpay`` and ``channels.douyinpay`` are thin packages on top
that set their profile and add what only one of them has (WeChat's codepay
and reverse).
"""
