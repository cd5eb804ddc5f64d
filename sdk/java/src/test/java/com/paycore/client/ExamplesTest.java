package com.paycore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.paycore.client.model.Payment;
import com.paycore.client.model.Refund;
import com.paycore.examples.PosBarcode;
import com.paycore.examples.WalletInApp;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The examples' flows, as a POS and a wallet backend run them. */
class ExamplesTest {
    private final PaycoreClient client = Stack.client();

    @Test
    void posScanPayLongPollRefund() {
        Payment p = PosBarcode.checkout(client, Stack.orderNo(), Stack.amount(11), Stack.authCode("wechatpay"));
        assertEquals("SUCCEEDED", p.status());
        Refund r = PosBarcode.refundItem(client, p, 100);
        assertEquals(100, r.amount());
        assertEquals(p.id(), r.paymentId());
    }

    @Test
    void posDeclined() {
        PaymentFailedException e = assertThrows(PaymentFailedException.class,
                () -> PosBarcode.checkout(client, Stack.orderNo(), Stack.amount(13), Stack.authCode("alipay")));
        assertEquals("DECLINED", e.failureCode());
    }

    @Test
    void walletInAppPayment() throws Exception {
        Payment p = WalletInApp.createForApp(client, Stack.amount(0), "wechatpay");
        assertEquals("PENDING", p.status());
        Object prepay = p.payParams().get("prepayid");
        assertNotNull(prepay, "pay_params for the phone app");
        CompletableFuture<Payment> waiting = CompletableFuture.supplyAsync(
                () -> WalletInApp.awaitPaid(client, p, Duration.ofSeconds(30)));
        Thread.sleep(300);
        assertEquals(200, Stack.customerPays("wechatpay", "{\"prepay_id\":\"" + prepay + "\"}"));
        Payment done = waiting.get(40, TimeUnit.SECONDS);
        assertEquals("SUCCEEDED", done.status());
        assertEquals(p.id(), done.id());
    }

    @Test
    void walletOrderNeverPaidIsCancelled() {
        Payment p = WalletInApp.createForApp(client, Stack.amount(0), "wechatpay");
        assertEquals("CLOSED", WalletInApp.awaitPaid(client, p, Duration.ofSeconds(1)).status());
    }
}
