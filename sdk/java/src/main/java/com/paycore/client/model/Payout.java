package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.time.OffsetDateTime;

@JsonIgnoreProperties(ignoreUnknown = true)
public record Payout(@JsonProperty("id") String id, @JsonProperty("payout_no") String payoutNo,
                     @JsonProperty("amount") long amount, @JsonProperty("channel") String channel,
                     @JsonProperty("status") String status, @JsonProperty("failure") Failure failure,
                     @JsonProperty("created_at") OffsetDateTime createdAt,
                     @JsonProperty("updated_at") OffsetDateTime updatedAt) {}
