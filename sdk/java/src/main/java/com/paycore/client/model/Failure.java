package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

@JsonIgnoreProperties(ignoreUnknown = true)
public record Failure(@JsonProperty("code") String code, @JsonProperty("message") String message,
                      @JsonProperty("channel_code") String channelCode) {}
