package com.paycore.client;

import com.paycore.client.model.Payment;

/** The payment ended FAILED: no money was taken; {@link #payment()} says why. */
public class PaymentFailedException extends PaycoreException {
    private static final long serialVersionUID = 1L;
    private final transient Payment payment;

    public PaymentFailedException(Payment payment) {
        super("payment " + payment.id() + " failed: "
                + (payment.failure() != null ? payment.failure().code() + " " + payment.failure().message()
                                             : "no reason given"));
        this.payment = payment;
    }

    public Payment payment() {
        return payment;
    }

    public String failureCode() {
        return payment.failure() != null ? payment.failure().code() : null;
    }

    public String channelCode() {
        return payment.failure() != null ? payment.failure().channelCode() : null;
    }

    /** FAILED with {@code failure.code == "DECLINED"}: the customer's channel said no. */
    public static class Declined extends PaymentFailedException {
        private static final long serialVersionUID = 1L;

        public Declined(Payment payment) {
            super(payment);
        }
    }

    static Payment raiseIfFailed(Payment p) {
        if ("FAILED".equals(p.status())) {
            throw p.failure() != null && "DECLINED".equals(p.failure().code()) ? new Declined(p)
                                                                             : new PaymentFailedException(p);
        }
        return p;
    }
}
