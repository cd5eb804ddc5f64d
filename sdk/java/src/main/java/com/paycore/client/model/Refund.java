package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.time.OffsetDateTime;

@JsonIgnoreProperties(ignoreUnknown = true)
public record Refund(@JsonProperty("id") String id, @JsonProperty("payment_id") String paymentId,
                     @JsonProperty("refund_no") String refundNo, @JsonProperty("amount") long amount,
                     @JsonProperty("reason") String reason, @JsonProperty("status") String status,
                     @JsonProperty("channel_refund_no") String channelRefundNo,
                     @JsonProperty("failure") Failure failure,
                     @JsonProperty("created_at") OffsetDateTime createdAt,
                     @JsonProperty("updated_at") OffsetDateTime updatedAt) {}
