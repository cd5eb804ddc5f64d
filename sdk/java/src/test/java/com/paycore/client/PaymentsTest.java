package com.paycore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.paycore.client.model.Payment;
import com.paycore.client.model.PaymentCreate;
import com.paycore.client.model.Refund;
import com.paycore.client.model.RefundCreate;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The Java SDK against the running platform. */
class PaymentsTest {
    private final PaycoreClient client = Stack.client();

    private Payment barcode(long amount, String channel) {
        return client.createPayment(PaymentCreate.builder().merchantOrderNo(Stack.orderNo()).amount(amount)
                .barcode(Stack.authCode(channel)).subject("java sdk").build());
    }

    @Test
    void barcodePaymentSucceeds() {
        String no = Stack.orderNo();
        PaymentCreate req = PaymentCreate.builder().merchantOrderNo(no).amount(Stack.amount(0))
                .barcode(Stack.authCode("wechatpay")).storeId("s01").terminalId("t07")
                .metadata(Map.of("cart", "c-9")).build();
        Payment p = client.createPayment(req);
        assertEquals("SUCCEEDED", p.status());
        assertTrue(p.isFinal() && p.id().startsWith("pay_"));
        assertEquals("wechatpay", p.channel());
        assertEquals(req.amount(), p.amount());
        assertEquals(no, p.merchantOrderNo());
        assertNotNull(p.paidAt());
        assertEquals("c-9", p.metadata().get("cart"));
        assertEquals(p.id(), client.createPayment(req).id(), "an identical retry answers the same payment");
        assertEquals(p.id(), client.findPayment(no).id());
    }

    @Test
    void userPayingThenSuccessByLongPoll() {
        Payment p = barcode(Stack.amount(11), "alipay");
        assertEquals("PROCESSING", p.status());
        assertFalse(p.isFinal());
        Payment done = client.waitForFinal(p.id(), Duration.ofSeconds(30));
        assertEquals("SUCCEEDED", done.status());
        assertEquals(p.id(), done.id());
    }

    @Test
    void declineIsATypedException() {
        PaymentFailedException.Declined e = assertThrows(PaymentFailedException.Declined.class,
                () -> barcode(Stack.amount(13), "wechatpay"));
        assertEquals("FAILED", e.payment().status());
        assertEquals("DECLINED", e.failureCode());
        assertNotNull(e.channelCode());
    }

    @Test
    void refundAndItsLimit() {
        Payment p = barcode(2000, "wechatpay");
        Refund r = client.createRefund(p.id(), RefundCreate.of("r1", 500).withReason("one cup"));
        assertTrue(r.id().startsWith("rfd_"));
        assertEquals(500, r.amount());
        assertEquals(p.id(), r.paymentId());
        assertTrue(r.status().equals("PROCESSING") || r.status().equals("SUCCEEDED"), r.status());
        assertEquals(r.id(), client.createRefund(p.id(), RefundCreate.of("r1", 500).withReason("one cup")).id());
        assertEquals("r1", client.getRefund(r.id()).refundNo());
        ApiException.RefundExceedsAmount e = assertThrows(ApiException.RefundExceedsAmount.class,
                () -> client.createRefund(p.id(), RefundCreate.of("r2", 2000)));
        assertEquals(422, e.status());
    }

    @Test
    void clientErrorsAreTypedAndNotRetried() {
        Payment p = barcode(Stack.amount(0), "alipay");
        ApiException.IdempotencyConflict conflict = assertThrows(ApiException.IdempotencyConflict.class,
                () -> client.createPayment(PaymentCreate.builder().merchantOrderNo(p.merchantOrderNo())
                        .amount(p.amount() + 1).barcode(Stack.authCode("alipay")).build()));
        assertEquals(1, conflict.attempts());
        ApiException.InvalidRequest bad = assertThrows(ApiException.InvalidRequest.class,
                () -> client.createPayment(PaymentCreate.builder().merchantOrderNo(Stack.orderNo()).amount(100)
                        .method("qr").channel("alipay").expireIn(1).build()));
        assertEquals("expire_in", bad.field().orElseThrow());
        assertEquals(1, bad.attempts());
        assertEquals(404, assertThrows(ApiException.NotFound.class, () -> client.getPayment("pay_nope")).status());
        assertThrows(ApiException.UnknownAuthCode.class, () -> client.createPayment(PaymentCreate.builder()
                .merchantOrderNo(Stack.orderNo()).amount(100).barcode("999999999999999999").build()));
        PaycoreClient wrong = PaycoreClient.builder().baseUrl(Stack.env("PAYCORE_BASE_URL"))
                .merchantId(Stack.env("PAYCORE_MERCHANT_ID")).secret("not-the-secret").build();
        assertEquals(1, assertThrows(ApiException.Unauthenticated.class, () -> wrong.getPayment(p.id())).attempts());
    }

    @Test
    void cancelClosesAPendingPayment() {
        Payment p = client.createPayment(PaymentCreate.builder().merchantOrderNo(Stack.orderNo()).amount(880)
                .method("qr").channel("wechatpay").build());
        assertEquals("PENDING", p.status());
        assertNotNull(p.qrCode());
        assertEquals("CLOSED", client.cancelPayment(p.id()).status());
        assertThrows(ApiException.InvalidState.class, () -> client.cancelPayment(p.id()));
    }

    @Test
    void lostAnswerIsRetriedWithTheSameOrderNoAndChargesOnce() {
        // tests/sdk/test_java_sdk.py holds this order's answer in its fault proxy and drops it
        String no = Stack.env("PAYCORE_FAULT_ORDER_NO");
        PaycoreClient flaky = Stack.client(Stack.env("PAYCORE_FAULT_URL"));
        Payment p = flaky.createPayment(PaymentCreate.builder().merchantOrderNo(no).amount(3320)
                .barcode(Stack.authCode("wechatpay")).build());
        assertEquals("SUCCEEDED", p.status());
        assertEquals(p.id(), client.findPayment(no).id(), "one payment for the order");
        System.out.println("lost-answer payment " + p.id());
    }
}
