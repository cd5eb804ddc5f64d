package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

@JsonIgnoreProperties(ignoreUnknown = true)
public record SettlementChannel(@JsonProperty("channel") String channel, @JsonProperty("count") long count,
                                @JsonProperty("gross") long gross, @JsonProperty("refunds") long refunds,
                                @JsonProperty("fees") long fees, @JsonProperty("shares") long shares,
                                @JsonProperty("payouts") long payouts, @JsonProperty("net") long net) {}
