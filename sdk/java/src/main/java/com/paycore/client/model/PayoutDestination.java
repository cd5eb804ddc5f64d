package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;

@JsonInclude(JsonInclude.Include.NON_NULL)
public record PayoutDestination(@JsonProperty("type") String type, @JsonProperty("value") String value,
                                @JsonProperty("name") String name) {}
