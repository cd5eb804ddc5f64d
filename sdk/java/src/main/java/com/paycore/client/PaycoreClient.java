package com.paycore.client;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JavaType;
import com.paycore.client.model.ErrorBody;
import com.paycore.client.model.Payment;
import com.paycore.client.model.PaymentCreate;
import com.paycore.client.model.Payout;
import com.paycore.client.model.PayoutCreate;
import com.paycore.client.model.Receiver;
import com.paycore.client.model.ReceiverCreate;
import com.paycore.client.model.Refund;
import com.paycore.client.model.RefundCreate;
import com.paycore.client.model.Settlement;
import com.paycore.client.model.SettlementLine;
import com.paycore.client.model.SettlementLinesPage;
import com.paycore.client.model.Split;
import com.paycore.client.model.SplitCreate;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.LocalDate;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.StringJoiner;
import java.util.function.Function;

/**
 * The paycore merchant API over {@code java.net.http}. Thread-safe; build once with
 * {@link #builder()} and share. Every request is signed (a fresh nonce per attempt) and retried by
 * {@link IdempotentRetry}: network failures and 5xx answers again with the same body, hence the same
 * idempotency key; 4xx never. Errors are {@link ApiException} subclasses per {@code code}.
 */
public final class PaycoreClient {
    /** The longest long-poll the platform allows ({@code ?wait=N}, N ≤ 30). */
    public static final int MAX_WAIT_SECONDS = 30;

    private final String baseUrl;
    private final String merchantId;
    private final String secret;
    private final IdempotentRetry retry;
    private final Duration timeout;
    private final HttpClient http;

    private PaycoreClient(Builder b) {
        this.baseUrl = stripSlash(Objects.requireNonNull(b.baseUrl, "baseUrl is required"));
        this.merchantId = Objects.requireNonNull(b.merchantId, "merchantId is required");
        this.secret = Objects.requireNonNull(b.secret, "secret is required");
        this.retry = b.retry;
        this.timeout = b.timeout;
        this.http = b.http != null ? b.http
                : HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(b.timeout).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public String toString() {   // never the secret
        return "PaycoreClient(" + baseUrl + ", merchant " + merchantId + ")";
    }

    // ------------------------------------------------------------------------------------ payments

    /**
     * Create a payment. A FAILED answer (declined, …) throws {@link PaymentFailedException}
     * ({@link PaymentFailedException.Declined} for a decline); PENDING and PROCESSING are returned: see
     * {@link #waitForFinal}.
     */
    @ApiOperation(id = "createPayment", http = "POST /v1/payments")
    public Payment createPayment(PaymentCreate request) {
        return PaymentFailedException.raiseIfFailed(createPaymentNoThrow(request));
    }

    /** Create a payment and return it whatever its status. */
    public Payment createPaymentNoThrow(PaymentCreate request) {
        return call("POST", "/v1/payments", json(request), Payment.class, null);
    }

    @ApiOperation(id = "getPayment", http = "GET /v1/payments/{id}")
    public Payment getPayment(@ApiParam("id") String paymentId, @ApiParam("wait") Integer waitSeconds) {
        return call("GET", path("/v1/payments/", paymentId) + query("wait", waitSeconds), null, Payment.class,
                waitSeconds);
    }

    public Payment getPayment(String paymentId) {
        return getPayment(paymentId, null);
    }

    @ApiOperation(id = "findPayment", http = "GET /v1/payments")
    public Payment findPayment(@ApiParam("merchant_order_no") String merchantOrderNo,
                               @ApiParam("wait") Integer waitSeconds) {
        return call("GET", "/v1/payments" + query("merchant_order_no", merchantOrderNo, "wait", waitSeconds), null,
                Payment.class, waitSeconds);
    }

    public Payment findPayment(String merchantOrderNo) {
        return findPayment(merchantOrderNo, null);
    }

    /**
     * Close a PENDING payment, reverse a PROCESSING one. A repeat after a lost answer that finds the
     * payment already CLOSED or REVERSED returns it.
     */
    @ApiOperation(id = "cancelPayment", http = "POST /v1/payments/{id}/cancel")
    public Payment cancelPayment(@ApiParam("id") String paymentId) {
        try {
            return call("POST", path("/v1/payments/", paymentId) + "/cancel", new byte[0], Payment.class, null);
        } catch (ApiException.InvalidState e) {
            if (e.attempts() > 1) {
                Payment p = getPayment(paymentId);
                if ("CLOSED".equals(p.status()) || "REVERSED".equals(p.status())) {
                    return p;
                }
            }
            throw e;
        }
    }

    /**
     * Long-poll ({@code ?wait=N}) until the payment is final. FAILED throws
     * {@link PaymentFailedException}; not final after {@code timeout} throws {@link WaitTimeoutException}.
     */
    public Payment waitForFinal(String paymentId, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            long leftS = Math.max(0, (deadline - System.nanoTime()) / 1_000_000_000L);
            Payment p = getPayment(paymentId, (int) Math.min(MAX_WAIT_SECONDS, leftS));
            if (p.isFinal()) {
                return PaymentFailedException.raiseIfFailed(p);
            }
            if (System.nanoTime() >= deadline) {
                throw new WaitTimeoutException(p, timeout);
            }
            sleep(Duration.ofMillis(200));
        }
    }

    // ------------------------------------------------------------------------------------- refunds

    @ApiOperation(id = "createRefund", http = "POST /v1/payments/{id}/refunds")
    public Refund createRefund(@ApiParam("id") String paymentId, RefundCreate request) {
        return call("POST", path("/v1/payments/", paymentId) + "/refunds", json(request), Refund.class, null);
    }

    @ApiOperation(id = "getRefund", http = "GET /v1/refunds/{id}")
    public Refund getRefund(@ApiParam("id") String refundId) {
        return call("GET", path("/v1/refunds/", refundId), null, Refund.class, null);
    }

    // ---------------------------------------------------- settlement, receivers, splits, payouts

    @ApiOperation(id = "getSettlement", http = "GET /v1/settlements")
    public Settlement getSettlement(@ApiParam("date") LocalDate date) {
        return call("GET", "/v1/settlements" + query("date", date), null, Settlement.class, null);
    }

    /** One page of a day's lines; {@link #settlementLines(LocalDate)} walks them all. */
    @ApiOperation(id = "listSettlementLines", http = "GET /v1/settlements/{date}/lines")
    public SettlementLinesPage listSettlementLines(@ApiParam("date") LocalDate date,
                                                   @ApiParam("cursor") String cursor) {
        return call("GET", path("/v1/settlements/", date.toString()) + "/lines" + query("cursor", cursor), null,
                SettlementLinesPage.class, null);
    }

    /** Every line of a day's settlement, fetching the pages ({@code next_cursor}) as it goes. */
    public Iterable<SettlementLine> settlementLines(LocalDate date) {
        return () -> new Iterator<>() {
            private SettlementLinesPage page = listSettlementLines(date, null);
            private int i;

            @Override
            public boolean hasNext() {
                while (i >= page.lines().size() && page.nextCursor() != null) {
                    page = listSettlementLines(date, page.nextCursor());
                    i = 0;
                }
                return i < page.lines().size();
            }

            @Override
            public SettlementLine next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                return page.lines().get(i++);
            }
        };
    }

    /** The statement file (UTF-8 with BOM). */
    @ApiOperation(id = "getSettlementFile", http = "GET /v1/settlements/{date}.csv")
    public byte[] downloadSettlementFile(@ApiParam("date") LocalDate date) {
        return send("GET", path("/v1/settlements/", date + ".csv"), null, null,
                HttpResponse::body);
    }

    @ApiOperation(id = "createReceiver", http = "POST /v1/receivers")
    public Receiver createReceiver(ReceiverCreate request) {
        return call("POST", "/v1/receivers", json(request), Receiver.class, null);
    }

    @ApiOperation(id = "createSplit", http = "POST /v1/payments/{id}/splits")
    public Split createSplit(@ApiParam("id") String paymentId, SplitCreate request) {
        return call("POST", path("/v1/payments/", paymentId) + "/splits", json(request), Split.class, null);
    }

    @ApiOperation(id = "getSplit", http = "GET /v1/splits/{id}")
    public Split getSplit(@ApiParam("id") String splitId) {
        return call("GET", path("/v1/splits/", splitId), null, Split.class, null);
    }

    @ApiOperation(id = "createPayout", http = "POST /v1/payouts")
    public Payout createPayout(PayoutCreate request) {
        return call("POST", "/v1/payouts", json(request), Payout.class, null);
    }

    @ApiOperation(id = "getPayout", http = "GET /v1/payouts/{id}")
    public Payout getPayout(@ApiParam("id") String payoutId) {
        return call("GET", path("/v1/payouts/", payoutId), null, Payout.class, null);
    }

    @ApiOperation(id = "findPayout", http = "GET /v1/payouts")
    public Payout findPayout(@ApiParam("payout_no") String payoutNo) {
        return call("GET", "/v1/payouts" + query("payout_no", payoutNo), null, Payout.class, null);
    }

    // ----------------------------------------------------------------------------------- transport

    private <T> T call(String method, String pathAndQuery, byte[] body, Class<T> type, Integer waitSeconds) {
        JavaType t = Json.MAPPER.constructType(type);
        return send(method, pathAndQuery, body, waitSeconds, r -> {
            try {
                return Json.MAPPER.readValue(r.body(), t);
            } catch (IOException e) {
                throw new PaycoreException("unreadable answer to " + method + " " + pathAndQuery, e);
            }
        });
    }

    private <T> T send(String method, String pathAndQuery, byte[] body, Integer waitSeconds,
                       Function<HttpResponse<byte[]>, T> read) {
        byte[] bytes = body == null ? new byte[0] : body;
        if (waitSeconds != null && (waitSeconds < 0 || waitSeconds > MAX_WAIT_SECONDS)) {
            throw new IllegalArgumentException("wait must be 0.." + MAX_WAIT_SECONDS + " seconds");
        }
        Duration requestTimeout = timeout.plusSeconds(waitSeconds == null ? 0 : waitSeconds);
        for (int attempt = 1; ; attempt++) {
            HttpRequest.Builder rb = HttpRequest.newBuilder(URI.create(baseUrl + pathAndQuery))
                    .timeout(requestTimeout)
                    .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                                                 : HttpRequest.BodyPublishers.ofByteArray(bytes));
            Signer.headers(merchantId, secret, method, pathAndQuery, bytes, System.currentTimeMillis() / 1000,
                    Signer.newNonce()).forEach(rb::header);
            if (body != null && body.length > 0) {
                rb.header("Content-Type", "application/json");
            }
            HttpResponse<byte[]> r;
            try {
                r = http.send(rb.build(), HttpResponse.BodyHandlers.ofByteArray());
            } catch (IOException e) {
                if (attempt >= retry.maxAttempts() || !retry.retriesException(e)) {
                    throw new NetworkException(method + " " + stripQuery(pathAndQuery) + ": " + e, attempt, e);
                }
                sleep(retry.backoff(attempt));
                continue;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new PaycoreException("interrupted", e);
            }
            if (retry.retriesStatus(r.statusCode()) && attempt < retry.maxAttempts()) {
                sleep(retry.backoff(attempt));
                continue;
            }
            if (r.statusCode() >= 400) {
                throw error(r, attempt);
            }
            return read.apply(r);
        }
    }

    private static ApiException error(HttpResponse<byte[]> r, int attempt) {
        String code = "";
        String message = "HTTP " + r.statusCode() + " without an error body";
        String field = null;
        try {
            ErrorBody e = Json.MAPPER.readValue(r.body(), ErrorBody.class);
            if (e != null && e.error() != null) {
                code = e.error().code();
                message = e.error().message();
                field = e.error().field();
            }
        } catch (IOException ignored) {
            // not JSON: keep the generic message
        }
        Integer retryAfter = r.headers().firstValue("Retry-After").filter(v -> v.matches("[0-9]+"))
                .map(Integer::valueOf).orElse(null);
        return ApiException.of(new ApiException.Details(r.statusCode(), code, message, field, retryAfter, attempt));
    }

    private static byte[] json(Object request) {
        try {
            return Json.MAPPER.writeValueAsBytes(Objects.requireNonNull(request, "request is required"));
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("request cannot be written as JSON", e);
        }
    }

    static String path(String prefix, String id) {
        return prefix + encode(Objects.requireNonNull(id, "id is required"));
    }

    private static String query(Object... pairs) {
        StringJoiner q = new StringJoiner("&", "?", "");
        q.setEmptyValue("");
        for (int i = 0; i < pairs.length; i += 2) {
            if (pairs[i + 1] != null) {
                q.add(pairs[i] + "=" + encode(pairs[i + 1].toString()));
            }
        }
        return q.toString();
    }

    /** Percent-encodes all but the unreserved characters of RFC 3986. */
    private static String encode(String s) {
        StringBuilder sb = new StringBuilder();
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (b & 0xff);
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "-._~".indexOf(c) >= 0) {
                sb.append(c);
            } else {
                sb.append('%').append(String.format("%02X", b & 0xff));
            }
        }
        return sb.toString();
    }

    private static String stripQuery(String pq) {
        int q = pq.indexOf('?');
        return q < 0 ? pq : pq.substring(0, q);
    }

    private static String stripSlash(String s) {
        return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
    }

    private static void sleep(Duration d) {
        try {
            Thread.sleep(d.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new PaycoreException("interrupted", e);
        }
    }

    /** Configuration of a client; {@code baseUrl}, {@code merchantId} and {@code secret} are required. */
    public static final class Builder {
        private String baseUrl;
        private String merchantId;
        private String secret;
        private IdempotentRetry retry = IdempotentRetry.defaults();
        private Duration timeout = Duration.ofSeconds(15);
        private HttpClient http;

        public Builder baseUrl(String v) { baseUrl = v; return this; }
        public Builder merchantId(String v) { merchantId = v; return this; }
        public Builder secret(String v) { secret = v; return this; }
        public Builder retry(IdempotentRetry v) { retry = v; return this; }
        /** Per request (a long-poll adds its wait). */
        public Builder timeout(Duration v) { timeout = v; return this; }
        public Builder httpClient(HttpClient v) { http = v; return this; }

        public PaycoreClient build() {
            return new PaycoreClient(this);
        }
    }
}
