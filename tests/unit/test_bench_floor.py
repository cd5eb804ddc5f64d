"""The bench's floor for an RSA channel does that channel's cryptography: a real RSA-2048 signature of
the request and a real verification of an answer's signature (loadtest/floor.py)."""
from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from loadtest.floor import RsaWork


def test_the_rsa_floor_signs_and_verifies_for_real():
    work = RsaWork()
    assert work.key.key_size == 2048
    sig = base64.b64decode(work.sign(b'{"amount":1}'))
    assert len(sig) == 256
    work.public.verify(sig, b'{"amount":1}', padding.PKCS1v15(), hashes.SHA256())   # raises if not
    work.verify(b'{"channel":"wechatpay"}')      # the first answer sets the signature it checks
    work.verify(b'{"channel":"wechatpay"}')
    with pytest.raises(InvalidSignature):
        work.verify(b'{"channel":"alipay"}')     # a different answer does not pass
