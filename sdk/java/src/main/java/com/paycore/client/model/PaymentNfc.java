package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

/** The tap as stored: the token masked (first 6, last 4). */
@JsonIgnoreProperties(ignoreUnknown = true)
public record PaymentNfc(@JsonProperty("token") String token, @JsonProperty("wallet") String wallet) {}
