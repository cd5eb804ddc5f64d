package com.paycore.client;

import com.paycore.client.model.Payment;
import java.time.Duration;

/** {@code waitForFinal} ran out of time; {@link #payment()} is the last (non-final) state seen. */
public class WaitTimeoutException extends PaycoreException {
    private static final long serialVersionUID = 1L;
    private final transient Payment payment;

    public WaitTimeoutException(Payment payment, Duration timeout) {
        super("payment " + payment.id() + " still " + payment.status() + " after " + timeout);
        this.payment = payment;
    }

    public Payment payment() {
        return payment;
    }
}
