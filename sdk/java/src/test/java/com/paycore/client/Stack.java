package com.paycore.client;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The running platform these tests talk to, from the environment that tests/sdk/test_java_sdk.py
 * sets. A missing variable fails the test (nothing is skipped).
 */
final class Stack {
    private Stack() {}

    /** Payment-code prefixes of channels.md. */
    private static final Map<String, String> PREFIX = Map.of("wechatpay", "13", "alipay", "28");

    static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) {
            throw new IllegalStateException(name + " is not set: run these tests through tests/sdk/test_java_sdk.py");
        }
        return v;
    }

    static String secret() {
        return env("PAYCORE_SECRET");
    }

    static PaycoreClient client() {
        return client(env("PAYCORE_BASE_URL"));
    }

    static PaycoreClient client(String baseUrl) {
        return PaycoreClient.builder().baseUrl(baseUrl).merchantId(env("PAYCORE_MERCHANT_ID")).secret(secret())
                .retry(IdempotentRetry.builder().initialBackoff(Duration.ofMillis(50)).build())
                .timeout(Duration.ofSeconds(20)).build();
    }

    /** A valid payment code of {@code channel}. */
    static String authCode(String channel) {
        StringBuilder sb = new StringBuilder(PREFIX.get(channel));
        for (int i = 0; i < 16; i++) {
            sb.append(ThreadLocalRandom.current().nextInt(10));
        }
        return sb.toString();
    }

    /** Fen whose last two digits pick the simulator's scenario (0: success; 11 user paying; 13 declined). */
    static long amount(int scenario) {
        long yuan = ThreadLocalRandom.current().nextLong(2, 500);
        return yuan * 100 + (scenario == 0 ? 20 : scenario);
    }

    static String orderNo() {
        return "jsdk-" + Long.toHexString(ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE);
    }

    /** The customer pays in the channel's simulator ({@code POST /_sim/customer/pay}). */
    static int customerPays(String channel, String json) throws IOException, InterruptedException {
        String base = env("PAYCORE_SIM_" + channel.toUpperCase());
        HttpResponse<String> r = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build().send(
                HttpRequest.newBuilder(URI.create(base + "/_sim/customer/pay"))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(json)).build(),
                HttpResponse.BodyHandlers.ofString());
        return r.statusCode();
    }
}
