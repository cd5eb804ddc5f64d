package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

@JsonIgnoreProperties(ignoreUnknown = true)
public record SplitReceiverResult(@JsonProperty("receiver_id") String receiverId, @JsonProperty("amount") long amount,
                                  @JsonProperty("status") String status, @JsonProperty("failure") Failure failure) {}
