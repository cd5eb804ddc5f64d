package com.paycore.client;

import com.paycore.client.model.Event;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Verifies a merchant webhook: {@code X-Paycore-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
 * "<t>.<body>")>}, with an optional {@code kid=<key id>} naming the secret that signed (secret
 * rotation) and possibly several {@code v1=}. Build with {@link #of(String)} or {@link #withKeys(Map)}.
 */
public final class WebhookVerifier {
    public static final String HEADER = "X-Paycore-Signature";

    private final Map<String, byte[]> keys;   // key id → secret; "" for a secret without id
    private final Duration tolerance;
    private final Clock clock;

    private WebhookVerifier(Map<String, byte[]> keys, Duration tolerance, Clock clock) {
        this.keys = keys;
        this.tolerance = tolerance;
        this.clock = clock;
    }

    /** One merchant secret; a {@code kid} in the header is accepted and ignored. */
    public static WebhookVerifier of(String secret) {
        Map<String, byte[]> k = new LinkedHashMap<>();
        k.put("", secret.getBytes(StandardCharsets.UTF_8));
        return new WebhookVerifier(Map.copyOf(k), Duration.ofMinutes(5), Clock.systemUTC());
    }

    /**
     * Secrets by key id (during a rotation): a {@code kid} picks one; none, or one not in the map (a
     * secret rotated but not deployed here yet), means any of them may have signed.
     */
    public static WebhookVerifier withKeys(Map<String, String> secretsByKeyId) {
        Map<String, byte[]> k = new LinkedHashMap<>();
        secretsByKeyId.forEach((id, s) -> k.put(id, s.getBytes(StandardCharsets.UTF_8)));
        return new WebhookVerifier(Map.copyOf(k), Duration.ofMinutes(5), Clock.systemUTC());
    }

    /** The most the header's {@code t} may be from now (default 5 minutes). */
    public WebhookVerifier tolerance(Duration d) {
        return new WebhookVerifier(keys, d, clock);
    }

    public WebhookVerifier clock(Clock c) {
        return new WebhookVerifier(keys, tolerance, c);
    }

    /**
     * Verify and read a delivery. {@code signatureHeader} is the value of {@code X-Paycore-Signature};
     * {@code body} the raw request bytes as received.
     *
     * @throws WebhookVerificationException when it is not a genuine, fresh event
     */
    public Event verify(String signatureHeader, byte[] body) {
        if (signatureHeader == null || signatureHeader.isBlank()) {
            throw new WebhookVerificationException("no " + HEADER + " header");
        }
        Long t = null;
        String kid = null;
        List<String> macs = new ArrayList<>();
        for (String part : signatureHeader.split(",")) {
            int eq = part.indexOf('=');
            if (eq < 0) {
                throw new WebhookVerificationException("malformed signature header");
            }
            String k = part.substring(0, eq).trim();
            String v = part.substring(eq + 1).trim();
            switch (k) {
                case "t" -> {
                    if (!v.matches("[0-9]{1,18}")) {
                        throw new WebhookVerificationException("malformed timestamp");
                    }
                    t = Long.parseLong(v);
                }
                case "kid" -> kid = v;
                case "v1" -> macs.add(v);
                default -> { }   // later schemes are ignored
            }
        }
        if (t == null || macs.isEmpty()) {
            throw new WebhookVerificationException("signature header lacks t= or v1=");
        }
        if (Math.abs(clock.instant().getEpochSecond() - t) > tolerance.toSeconds()) {
            throw new WebhookVerificationException("timestamp outside the tolerance (stale or replayed)");
        }
        List<byte[]> candidates = new ArrayList<>();
        if (kid != null && keys.containsKey(kid)) {
            candidates.add(keys.get(kid));
        } else {
            // no kid, or one not deployed here yet: during a rotation's grace period paycore also sends a
            // v1 made with the previous secret, which this verifier holds
            candidates.addAll(keys.values());
        }
        byte[] signed = Signer.canonicalWebhook(t, body);
        boolean ok = false;
        for (byte[] key : candidates) {
            byte[] want = Signer.hmacHex(key, signed).getBytes(StandardCharsets.US_ASCII);
            for (String mac : macs) {
                ok |= MessageDigest.isEqual(want, mac.getBytes(StandardCharsets.US_ASCII));   // constant time
            }
        }
        if (!ok) {
            throw new WebhookVerificationException("signature does not match");
        }
        try {
            return Json.MAPPER.readValue(body, Event.class);
        } catch (IOException e) {
            throw new WebhookVerificationException("signed body is not an event: " + e.getMessage());
        }
    }

    /** Verify with the request's headers (any case of the header name). */
    @ApiWebhook("merchantEvent")
    public Event verify(Map<String, List<String>> headers, byte[] body) {
        for (Map.Entry<String, List<String>> e : headers.entrySet()) {
            if (e.getKey() != null && e.getKey().equalsIgnoreCase(HEADER) && !e.getValue().isEmpty()) {
                return verify(e.getValue().get(0), body);
            }
        }
        throw new WebhookVerificationException("no " + HEADER + " header");
    }

    /** A {@code settlement.closed} webhook: signed the same way; the event carries {@code settlement}. */
    @ApiWebhook("settlementClosed")
    public Event verifySettlementClosed(Map<String, List<String>> headers, byte[] body) {
        return verify(headers, body);
    }

    /** The header value the platform sends (for testing a receiver). */
    public static String sign(String secret, long unixSeconds, String kid, byte[] body) {
        String mac = Signer.hmacHex(secret.getBytes(StandardCharsets.UTF_8), Signer.canonicalWebhook(unixSeconds, body));
        return "t=" + unixSeconds + (kid != null ? ",kid=" + kid : "") + ",v1=" + mac;
    }
}
