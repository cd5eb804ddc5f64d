package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.time.OffsetDateTime;

/** One statement line; kind: payment | refund | adjustment | split | payout. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record SettlementLine(@JsonProperty("kind") String kind, @JsonProperty("id") String id,
                             @JsonProperty("channel") String channel, @JsonProperty("amount") long amount,
                             @JsonProperty("fee") long fee, @JsonProperty("net") long net,
                             @JsonProperty("occurred_at") OffsetDateTime occurredAt,
                             @JsonProperty("original_date") String originalDate) {}
