package com.paycore.client;

/** A webhook's {@code X-Paycore-Signature} is missing, malformed, stale or wrong. */
public class WebhookVerificationException extends PaycoreException {
    private static final long serialVersionUID = 1L;

    public WebhookVerificationException(String message) {
        super(message);
    }
}
