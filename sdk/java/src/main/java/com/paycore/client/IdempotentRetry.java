package com.paycore.client;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * When a request is sent again: only after a network failure (no answer: refused, reset, dropped,
 * timed out) or a 5xx answer, never after a 4xx. Every operation of the SDK is safe to repeat: reads
 * are, creates carry their idempotency key ({@code merchant_order_no}, {@code refund_no},
 * {@code payout_no}, {@code split_no}) in the unchanged body, so the platform answers a repeat with
 * the object it already made and nothing is charged twice. Immutable; build with {@link #builder()}.
 */
public final class IdempotentRetry {
    private final int maxAttempts;
    private final Duration initialBackoff;
    private final Duration maxBackoff;
    private final double multiplier;

    private IdempotentRetry(Builder b) {
        if (b.maxAttempts < 1) {
            throw new IllegalArgumentException("maxAttempts must be >= 1");
        }
        this.maxAttempts = b.maxAttempts;
        this.initialBackoff = b.initialBackoff;
        this.maxBackoff = b.maxBackoff;
        this.multiplier = b.multiplier;
    }

    public static IdempotentRetry defaults() {
        return builder().build();
    }

    public static IdempotentRetry none() {
        return builder().maxAttempts(1).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    public int maxAttempts() {
        return maxAttempts;
    }

    public boolean retriesStatus(int status) {
        return status >= 500;
    }

    public boolean retriesException(IOException e) {
        return true;   // java.net.http reports every transport failure (and timeouts) as an IOException
    }

    /** How long to wait after failed attempt {@code attempt} (1-based): exponential, with jitter. */
    public Duration backoff(int attempt) {
        double base = Math.min(maxBackoff.toMillis(), initialBackoff.toMillis() * Math.pow(multiplier, attempt - 1));
        return Duration.ofMillis((long) (base * (0.5 + ThreadLocalRandom.current().nextDouble() / 2)));
    }

    public static final class Builder {
        private int maxAttempts = 4;
        private Duration initialBackoff = Duration.ofMillis(250);
        private Duration maxBackoff = Duration.ofSeconds(4);
        private double multiplier = 2.0;

        public Builder maxAttempts(int n) {
            this.maxAttempts = n;
            return this;
        }

        public Builder initialBackoff(Duration d) {
            this.initialBackoff = d;
            return this;
        }

        public Builder maxBackoff(Duration d) {
            this.maxBackoff = d;
            return this;
        }

        public Builder multiplier(double m) {
            this.multiplier = m;
            return this;
        }

        public IdempotentRetry build() {
            return new IdempotentRetry(this);
        }
    }
}
