package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;

/** {@code POST /v1/payouts}. {@code payout_no} is the idempotency key. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record PayoutCreate(@JsonProperty("payout_no") String payoutNo, @JsonProperty("amount") long amount,
                           @JsonProperty("currency") String currency, @JsonProperty("channel") String channel,
                           @JsonProperty("destination") PayoutDestination destination,
                           @JsonProperty("remark") String remark,
                           @JsonProperty("notify_url") String notifyUrl) {
    public PayoutCreate {
        Models.required("payout_no", payoutNo);
        Models.fen("amount", amount);
        currency = currency == null ? "CNY" : currency;
    }

    /** Without a webhook URL (the form before {@code notify_url} was published). */
    public PayoutCreate(String payoutNo, long amount, String currency, String channel, PayoutDestination destination,
                        String remark) {
        this(payoutNo, amount, currency, channel, destination, remark, null);
    }
}
