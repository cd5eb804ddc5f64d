async def test_barcode_wechat_succeeds(stack):
    r = await stack.pay(amount=1234, method="barcode", auth_code="134567890123456789")
    assert r.status == 201, r.body
    assert r.body["status"] == "SUCCEEDED"
    assert r.body["channel"] == "wechatpay"
