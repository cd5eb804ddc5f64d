package com.paycore.examples;

import com.paycore.client.PaycoreClient;
import com.paycore.client.WaitTimeoutException;
import com.paycore.client.model.Payment;
import com.paycore.client.model.PaymentCreate;
import java.time.Duration;
import java.util.Map;
import java.util.UUID;

/**
 * The bank's wallet app backend: create an in-app ({@code app}) payment, hand {@code pay_params} to the
 * phone app, and long-poll until paid rather than trusting what the app reports.
 */
public final class WalletInApp {
    private WalletInApp() {}

    /** Step 1: the order; its {@code payParams()} go to the phone app. */
    public static Payment createForApp(PaycoreClient client, long amountFen, String channel) {
        return client.createPayment(PaymentCreate.builder()
                .merchantOrderNo("app-" + UUID.randomUUID().toString().substring(0, 8))
                .amount(amountFen).method("app").channel(channel).subject("Wallet top-up")
                .metadata(Map.of("user", "u-42")).build());
    }

    /** Step 2: wait for the customer; cancel the order if they never pay. */
    public static Payment awaitPaid(PaycoreClient client, Payment p, Duration timeout) {
        try {
            return client.waitForFinal(p.id(), timeout);
        } catch (WaitTimeoutException e) {
            return client.cancelPayment(p.id());
        }
    }

    public static void main(String[] args) {
        PaycoreClient client = PaycoreClient.builder().baseUrl(System.getenv("PAYCORE_BASE_URL"))
                .merchantId(System.getenv("PAYCORE_MERCHANT_ID")).secret(System.getenv("PAYCORE_SECRET")).build();
        Payment p = createForApp(client, Long.parseLong(args[0]), args.length > 1 ? args[1] : "wechatpay");
        System.out.println("to the app: " + p.payParams());
        System.out.println("final: " + awaitPaid(client, p, Duration.ofMinutes(2)).status());
    }
}
