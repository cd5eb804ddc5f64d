package com.paycore.client;

import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The request signature of api.md: lowercase hex HMAC-SHA256 with the merchant secret over
 * {@code METHOD\nPATH_AND_QUERY\nTIMESTAMP\nNONCE\nBODY} (the body last and raw). Every attempt
 * of a request is signed afresh, with a new nonce.
 */
public final class Signer {
    private static final String NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    private static final SecureRandom RANDOM = new SecureRandom();

    private Signer() {}

    public static byte[] canonical(String method, String pathAndQuery, String timestamp, String nonce, byte[] body) {
        return concat((method + "\n" + pathAndQuery + "\n" + timestamp + "\n" + nonce + "\n")
                .getBytes(StandardCharsets.UTF_8), body);
    }

    /** What a webhook's {@code v1} signs: {@code "<t>.<body>"}. */
    public static byte[] canonicalWebhook(long t, byte[] body) {
        return concat((t + ".").getBytes(StandardCharsets.UTF_8), body);
    }

    private static byte[] concat(byte[] head, byte[] body) {
        byte[] out = new byte[head.length + body.length];
        System.arraycopy(head, 0, out, 0, head.length);
        System.arraycopy(body, 0, out, head.length, body.length);
        return out;
    }

    public static String hmacHex(byte[] key, byte[] message) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return HexFormat.of().formatHex(mac.doFinal(message));
        } catch (NoSuchAlgorithmException | InvalidKeyException e) {
            throw new IllegalStateException("HmacSHA256 is unavailable", e);
        }
    }

    public static String sign(String secret, String method, String pathAndQuery, String timestamp, String nonce,
                              byte[] body) {
        return hmacHex(secret.getBytes(StandardCharsets.UTF_8), canonical(method, pathAndQuery, timestamp, nonce, body));
    }

    public static String newNonce() {
        StringBuilder sb = new StringBuilder(32);
        for (int i = 0; i < 32; i++) {
            sb.append(NONCE_ALPHABET.charAt(RANDOM.nextInt(NONCE_ALPHABET.length())));
        }
        return sb.toString();
    }

    /** The four {@code X-Paycore-*} headers for one attempt. */
    public static Map<String, String> headers(String merchantId, String secret, String method, String pathAndQuery,
                                              byte[] body, long unixSeconds, String nonce) {
        String ts = Long.toString(unixSeconds);
        Map<String, String> h = new LinkedHashMap<>();
        h.put("X-Paycore-Merchant", merchantId);
        h.put("X-Paycore-Timestamp", ts);
        h.put("X-Paycore-Nonce", nonce);
        h.put("X-Paycore-Signature", sign(secret, method, pathAndQuery, ts, nonce, body));
        return h;
    }
}
