package com.paycore.client;

/**
 * No answer after every attempt (refused, reset, dropped, timed out). For a create the outcome is
 * unknown: send the same request again (same idempotency key) or read it back by that key.
 */
public class NetworkException extends PaycoreException {
    private static final long serialVersionUID = 1L;
    private final int attempts;

    public NetworkException(String message, int attempts, Throwable cause) {
        super(message + " (after " + attempts + " attempts)", cause);
        this.attempts = attempts;
    }

    public int attempts() {
        return attempts;
    }
}
