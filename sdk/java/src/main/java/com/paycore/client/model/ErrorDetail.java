package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

@JsonIgnoreProperties(ignoreUnknown = true)
public record ErrorDetail(@JsonProperty("code") String code, @JsonProperty("message") String message,
                          @JsonProperty("field") String field) {}
