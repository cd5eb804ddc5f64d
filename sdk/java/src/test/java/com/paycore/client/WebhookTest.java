package com.paycore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.paycore.client.model.Event;
import com.paycore.client.model.Payment;
import com.paycore.client.model.PaymentCreate;
import com.paycore.examples.WebhookReceiver;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class WebhookTest {
    private static final byte[] EVENT = ("{\"event_id\":\"evt_1\",\"type\":\"payment.succeeded\",\"seq\":2,"
            + "\"occurred_at\":\"2024-01-01T00:00:00Z\",\"payment\":{\"id\":\"pay_1\",\"merchant_id\":\"m\","
            + "\"merchant_order_no\":\"o\",\"amount\":1,\"currency\":\"CNY\",\"method\":\"qr\","
            + "\"channel\":\"alipay\",\"status\":\"SUCCEEDED\"}}").getBytes(StandardCharsets.UTF_8);

    @Test
    void realWebhookVerifiedAndTamperedOneRefused() throws Exception {
        PaycoreClient client = Stack.client();
        try (WebhookReceiver receiver = new WebhookReceiver(0, WebhookVerifier.of(Stack.secret()))) {
            Payment p = client.createPayment(PaymentCreate.builder().merchantOrderNo(Stack.orderNo())
                    .amount(Stack.amount(0)).barcode(Stack.authCode("alipay")).notifyUrl(receiver.url()).build());
            Event e = receiver.events.poll(20, TimeUnit.SECONDS);
            assertNotNull(e, "the verified webhook arrived");
            assertEquals("payment.succeeded", e.type());
            assertEquals(p.id(), e.payment().id());
            assertEquals("SUCCEEDED", e.payment().status());
            assertTrue(e.eventId().startsWith("evt_"));

            // the same body and header with one word changed is refused with 400
            String header = WebhookVerifier.sign(Stack.secret(), Instant.now().getEpochSecond(), null, EVENT);
            HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
            byte[] tampered = new String(EVENT, StandardCharsets.UTF_8).replace("SUCCEEDED", "SUCCEEDEX")
                    .getBytes(StandardCharsets.UTF_8);
            assertEquals(400, post(http, receiver.url(), header, tampered));
            assertNotNull(receiver.refused.poll(5, TimeUnit.SECONDS));
            assertEquals(200, post(http, receiver.url(), header, EVENT));
        }
    }

    private static int post(HttpClient http, String url, String header, byte[] body) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(url)).header(WebhookVerifier.HEADER, header)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(),
                HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    @Test
    void keyIdsToleranceAndWrongSecrets() {
        long now = Instant.now().getEpochSecond();
        WebhookVerifier rotating = WebhookVerifier.withKeys(Map.of("k1", "old-secret", "k2", "new-secret"));
        assertEquals("pay_1", rotating.verify(WebhookVerifier.sign("new-secret", now, "k2", EVENT), EVENT)
                .payment().id());
        assertEquals("evt_1", rotating.verify(WebhookVerifier.sign("old-secret", now, null, EVENT), EVENT).eventId());
        assertThrows(WebhookVerificationException.class,
                () -> rotating.verify(WebhookVerifier.sign("old-secret", now, "k2", EVENT), EVENT));
        // a key id not deployed here: any held secret may match a v1 (none does here) …
        assertThrows(WebhookVerificationException.class,
                () -> rotating.verify(WebhookVerifier.sign("newest-secret", now, "k9", EVENT), EVENT));
        // … and during paycore's grace period the previous secret's v1 follows the new one
        String overlap = WebhookVerifier.sign("newest-secret", now, "k3", EVENT) + ",v1="
                + WebhookVerifier.sign("new-secret", now, null, EVENT).split("v1=")[1];
        assertEquals("evt_1", rotating.verify(overlap, EVENT).eventId());
        WebhookVerifier one = WebhookVerifier.of("new-secret");
        assertEquals(2, one.verify(WebhookVerifier.sign("new-secret", now, "k2", EVENT), EVENT).seq());
        assertThrows(WebhookVerificationException.class,
                () -> one.verify(WebhookVerifier.sign("another", now, null, EVENT), EVENT));
        WebhookVerifier later = one.clock(Clock.fixed(Instant.now().plusSeconds(3600), ZoneOffset.UTC))
                .tolerance(Duration.ofMinutes(5));
        assertThrows(WebhookVerificationException.class,
                () -> later.verify(WebhookVerifier.sign("new-secret", now, null, EVENT), EVENT));
        assertThrows(WebhookVerificationException.class, () -> one.verify("v1=abc", EVENT));
        assertThrows(WebhookVerificationException.class, () -> one.verify(Map.of(), EVENT));
    }
}
