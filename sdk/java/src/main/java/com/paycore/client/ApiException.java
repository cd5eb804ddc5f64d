package com.paycore.client;

import java.util.Map;
import java.util.Optional;
import java.util.function.Function;

/**
 * The platform answered {@code {"error": {code, message, field?}}}: one subclass per {@code code} of
 * api.md. 4xx ones are never retried; 5xx ones come after the retries ran out.
 */
public class ApiException extends PaycoreException {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String code;
    private final String field;
    private final Integer retryAfter;
    private final int attempts;

    public ApiException(Details d) {
        super(d.status + " " + d.code + ": " + d.message + (d.field != null ? " (field " + d.field + ")" : ""));
        this.status = d.status;
        this.code = d.code;
        this.field = d.field;
        this.retryAfter = d.retryAfter;
        this.attempts = d.attempts;
    }

    /** What an error answer said. */
    public record Details(int status, String code, String message, String field, Integer retryAfter, int attempts) {}

    public int status() {
        return status;
    }

    public String code() {
        return code;
    }

    /** The offending request field ({@code INVALID_REQUEST}), if the platform named one. */
    public Optional<String> field() {
        return Optional.ofNullable(field);
    }

    /** {@code Retry-After} seconds ({@code RATE_LIMITED}). */
    public Optional<Integer> retryAfter() {
        return Optional.ofNullable(retryAfter);
    }

    /** Which attempt got this answer (1 unless network failures or 5xx answers came first). */
    public int attempts() {
        return attempts;
    }

    public boolean isClientError() {
        return status < 500;
    }

    public static class InvalidRequest extends ApiException {
        private static final long serialVersionUID = 1L;
        public InvalidRequest(Details d) { super(d); }
    }

    public static class Unauthenticated extends ApiException {
        private static final long serialVersionUID = 1L;
        public Unauthenticated(Details d) { super(d); }
    }

    public static class NotFound extends ApiException {
        private static final long serialVersionUID = 1L;
        public NotFound(Details d) { super(d); }
    }

    public static class IdempotencyConflict extends ApiException {
        private static final long serialVersionUID = 1L;
        public IdempotencyConflict(Details d) { super(d); }
    }

    public static class InvalidState extends ApiException {
        private static final long serialVersionUID = 1L;
        public InvalidState(Details d) { super(d); }
    }

    public static class PayloadTooLarge extends ApiException {
        private static final long serialVersionUID = 1L;
        public PayloadTooLarge(Details d) { super(d); }
    }

    public static class UnsupportedMethod extends ApiException {
        private static final long serialVersionUID = 1L;
        public UnsupportedMethod(Details d) { super(d); }
    }

    public static class UnknownAuthCode extends ApiException {
        private static final long serialVersionUID = 1L;
        public UnknownAuthCode(Details d) { super(d); }
    }

    public static class RefundExceedsAmount extends ApiException {
        private static final long serialVersionUID = 1L;
        public RefundExceedsAmount(Details d) { super(d); }
    }

    public static class AmountLimitExceeded extends ApiException {
        private static final long serialVersionUID = 1L;
        public AmountLimitExceeded(Details d) { super(d); }
    }

    public static class RateLimited extends ApiException {
        private static final long serialVersionUID = 1L;
        public RateLimited(Details d) { super(d); }
    }

    public static class ChannelError extends ApiException {
        private static final long serialVersionUID = 1L;
        public ChannelError(Details d) { super(d); }
    }

    public static class ChannelUnavailable extends ApiException {
        private static final long serialVersionUID = 1L;
        public ChannelUnavailable(Details d) { super(d); }
    }

    /** The platform's database is down: nothing was accepted. */
    public static class Unavailable extends ApiException {
        private static final long serialVersionUID = 1L;
        public Unavailable(Details d) { super(d); }
    }

    /** Every error code of api.md → its exception. */
    public static final Map<String, Function<Details, ApiException>> BY_CODE = Map.ofEntries(
            Map.entry("INVALID_REQUEST", InvalidRequest::new),
            Map.entry("UNAUTHENTICATED", Unauthenticated::new),
            Map.entry("NOT_FOUND", NotFound::new),
            Map.entry("IDEMPOTENCY_CONFLICT", IdempotencyConflict::new),
            Map.entry("INVALID_STATE", InvalidState::new),
            Map.entry("PAYLOAD_TOO_LARGE", PayloadTooLarge::new),
            Map.entry("UNSUPPORTED_METHOD", UnsupportedMethod::new),
            Map.entry("UNKNOWN_AUTH_CODE", UnknownAuthCode::new),
            Map.entry("REFUND_EXCEEDS_AMOUNT", RefundExceedsAmount::new),
            Map.entry("AMOUNT_LIMIT_EXCEEDED", AmountLimitExceeded::new),
            Map.entry("RATE_LIMITED", RateLimited::new),
            Map.entry("CHANNEL_ERROR", ChannelError::new),
            Map.entry("CHANNEL_UNAVAILABLE", ChannelUnavailable::new),
            Map.entry("UNAVAILABLE", Unavailable::new));

    public static ApiException of(Details d) {
        Function<Details, ApiException> make = BY_CODE.get(d.code());
        return make != null ? make.apply(d) : new ApiException(d);
    }
}
