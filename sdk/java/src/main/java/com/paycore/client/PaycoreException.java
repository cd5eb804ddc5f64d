package com.paycore.client;

/** Base of everything the SDK throws on purpose (unchecked). */
public class PaycoreException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public PaycoreException(String message) {
        super(message);
    }

    public PaycoreException(String message, Throwable cause) {
        super(message, cause);
    }
}
