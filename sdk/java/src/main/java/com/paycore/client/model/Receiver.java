package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

@JsonIgnoreProperties(ignoreUnknown = true)
public record Receiver(@JsonProperty("id") String id, @JsonProperty("receiver_no") String receiverNo,
                       @JsonProperty("channel") String channel, @JsonProperty("type") String type,
                       @JsonProperty("account") String account, @JsonProperty("name") String name,
                       @JsonProperty("status") String status) {}
