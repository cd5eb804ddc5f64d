package com.paycore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.paycore.client.model.PaymentCreate;
import com.paycore.client.model.RefundCreate;
import com.paycore.client.model.SettlementLine;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What the running platform cannot show on demand: 5xx answers, and the planned settlement endpoints.
 * A small local server plays them and records every request.
 */
class OfflineTest {
    record Seen(String method, String pathAndQuery, String nonce, String timestamp, String signature, byte[] body) {}

    private HttpServer server;
    private final List<Seen> seen = new CopyOnWriteArrayList<>();
    private final AtomicInteger failures = new AtomicInteger();

    @BeforeEach
    void start() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/", ex -> {
            byte[] body = ex.getRequestBody().readAllBytes();
            String pq = ex.getRequestURI().getRawPath()
                    + (ex.getRequestURI().getRawQuery() != null ? "?" + ex.getRequestURI().getRawQuery() : "");
            var h = ex.getRequestHeaders();
            seen.add(new Seen(ex.getRequestMethod(), pq, h.getFirst("X-Paycore-Nonce"),
                    h.getFirst("X-Paycore-Timestamp"), h.getFirst("X-Paycore-Signature"), body));
            int status;
            String answer;
            if (failures.getAndDecrement() > 0) {
                status = 503;
                answer = "{\"error\":{\"code\":\"UNAVAILABLE\",\"message\":\"db down\"}}";
            } else if (pq.startsWith("/v1/payments")) {
                status = 201;
                answer = "{\"id\":\"pay_x\",\"merchant_id\":\"m\",\"merchant_order_no\":\"o-1\",\"amount\":1234,"
                        + "\"currency\":\"CNY\",\"method\":\"barcode\",\"channel\":\"alipay\",\"status\":\"SUCCEEDED\"}";
            } else {
                int start = pq.contains("cursor=") ? Integer.parseInt(pq.substring(pq.indexOf("cursor=") + 7)) : 0;
                List<String> lines = new ArrayList<>();
                for (int i = start; i < Math.min(start + 2, 5); i++) {
                    lines.add("{\"kind\":\"payment\",\"id\":\"pay_" + i + "\",\"channel\":\"alipay\",\"amount\":"
                            + (1000 + i) + ",\"fee\":6,\"net\":" + (994 + i) + ",\"occurred_at\":\"2024-05-01T02:00:00Z\"}");
                }
                status = 200;
                answer = "{\"lines\":[" + String.join(",", lines) + "],\"next_cursor\":"
                        + (start + 2 < 5 ? "\"" + (start + 2) + "\"" : "null") + "}";
            }
            byte[] out = answer.getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(status, out.length);
            ex.getResponseBody().write(out);
            ex.close();
        });
        server.start();
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    private PaycoreClient client() {
        return PaycoreClient.builder().baseUrl("http://127.0.0.1:" + server.getAddress().getPort())
                .merchantId("m_test").secret("s3cret")
                .retry(IdempotentRetry.builder().maxAttempts(4).initialBackoff(Duration.ofMillis(20)).build()).build();
    }

    @Test
    void fiveHundredsAreRetriedWithTheSameBodyAndAFreshSignature() {
        failures.set(2);
        var p = client().createPayment(PaymentCreate.builder().merchantOrderNo("o-1").amount(1234)
                .barcode("28123456789012345678").build());
        assertEquals("SUCCEEDED", p.status());
        assertEquals(3, seen.size());
        var bodies = new HashSet<String>();
        var nonces = new HashSet<String>();
        for (Seen s : seen) {
            bodies.add(new String(s.body(), StandardCharsets.UTF_8));
            nonces.add(s.nonce());
            assertEquals(Signer.sign("s3cret", s.method(), s.pathAndQuery(), s.timestamp(), s.nonce(), s.body()),
                    s.signature());
        }
        assertEquals(1, bodies.size(), "every attempt carries the same merchant_order_no and body");
        assertEquals(3, nonces.size(), "a nonce is never reused");
        String body = bodies.iterator().next();
        assertEquals(true, body.contains("\"merchant_order_no\":\"o-1\"") && body.contains("\"amount\":1234"), body);

        failures.set(10);
        ApiException.Unavailable e = assertThrows(ApiException.Unavailable.class, () -> client().getPayment("pay_x"));
        assertEquals(4, e.attempts());
        assertEquals(3 + 4, seen.size());
    }

    @Test
    void settlementLinesArePaginated() {
        List<String> ids = new ArrayList<>();
        long net = 0;
        for (SettlementLine line : client().settlementLines(LocalDate.of(2024, 5, 1))) {
            ids.add(line.id());
            net += line.net();
            assertEquals(line.amount() - line.fee(), line.net());
        }
        assertEquals(List.of("pay_0", "pay_1", "pay_2", "pay_3", "pay_4"), ids);
        assertEquals(994 * 5 + 10, net);
        assertEquals(List.of("/v1/settlements/2024-05-01/lines", "/v1/settlements/2024-05-01/lines?cursor=2",
                "/v1/settlements/2024-05-01/lines?cursor=4"), seen.stream().map(Seen::pathAndQuery).toList());
    }

    @Test
    void moneyIsPositiveWholeFen() {
        assertThrows(IllegalArgumentException.class, () -> RefundCreate.of("r", 0));
        assertThrows(IllegalArgumentException.class,
                () -> PaymentCreate.builder().merchantOrderNo("o").amount(-5).method("qr").build());
    }

    @Test
    void signatureMatchesTheCanonicalString() {
        // computed independently: printf 'POST\n/v1/payments\n1700000000\nabc\n{}' | openssl dgst -sha256 -hmac k
        assertEquals("cf00730a7982f80b0cb2d0932b91d03d768d3b2bba37815788c2a49f1cad9064",
                Signer.sign("k", "POST", "/v1/payments", "1700000000", "abc", "{}".getBytes(StandardCharsets.UTF_8)));
    }
}
