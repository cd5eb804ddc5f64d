package com.paycore.examples;

import com.paycore.client.PaycoreClient;
import com.paycore.client.PaymentFailedException;
import com.paycore.client.model.Payment;
import com.paycore.client.model.PaymentCreate;
import com.paycore.client.model.Refund;
import com.paycore.client.model.RefundCreate;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.UUID;

/**
 * A POS terminal: scan the customer's payment code, pay, long-poll while the customer confirms on
 * the phone, refund an item later. The SDK resends a lost answer with the same
 * {@code merchant_order_no}, so a flaky link never charges twice.
 *
 * <pre>PAYCORE_BASE_URL=… PAYCORE_MERCHANT_ID=… PAYCORE_SECRET=… java … com.paycore.examples.PosBarcode 1234 200</pre>
 */
public final class PosBarcode {
    private PosBarcode() {}

    /** Charge a scanned code (fen); waits out PROCESSING. FAILED throws PaymentFailedException. */
    public static Payment checkout(PaycoreClient client, String orderNo, long amountFen, String scannedCode) {
        Payment p = client.createPayment(PaymentCreate.builder()
                .merchantOrderNo(orderNo).amount(amountFen).barcode(scannedCode)
                .subject("POS sale").terminalId("pos-01").build());
        System.out.println("paid? " + p.id() + " " + p.status());
        if (!p.isFinal()) {   // the customer is typing a password
            p = client.waitForFinal(p.id(), Duration.ofSeconds(60));
            System.out.println("final " + p.id() + " " + p.status());
        }
        return p;
    }

    public static Refund refundItem(PaycoreClient client, Payment p, long amountFen) {
        return client.createRefund(p.id(), RefundCreate.of(p.merchantOrderNo() + "-r1", amountFen)
                .withReason("item returned"));
    }

    public static void main(String[] args) throws Exception {
        PaycoreClient client = PaycoreClient.builder().baseUrl(System.getenv("PAYCORE_BASE_URL"))
                .merchantId(System.getenv("PAYCORE_MERCHANT_ID")).secret(System.getenv("PAYCORE_SECRET")).build();
        String code = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine().trim();
        try {
            Payment p = checkout(client, "pos-" + UUID.randomUUID().toString().substring(0, 8), Long.parseLong(args[0]),
                    code);
            if ("SUCCEEDED".equals(p.status()) && args.length > 1) {
                System.out.println("refund " + refundItem(client, p, Long.parseLong(args[1])).status());
            }
        } catch (PaymentFailedException e) {
            System.out.println("declined " + e.failureCode() + " (" + e.channelCode() + ")");
            System.exit(2);
        }
    }
}
