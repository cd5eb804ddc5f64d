package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;

/** {@code POST /v1/payments/{id}/refunds}. {@code refund_no} is the idempotency key. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record RefundCreate(@JsonProperty("refund_no") String refundNo, @JsonProperty("amount") long amount,
                           @JsonProperty("reason") String reason) {
    public RefundCreate {
        Models.required("refund_no", refundNo);
        Models.fen("amount", amount);
    }

    public static RefundCreate of(String refundNo, long amount) {
        return new RefundCreate(refundNo, amount, null);
    }

    public RefundCreate withReason(String r) {
        return new RefundCreate(refundNo, amount, r);
    }
}
