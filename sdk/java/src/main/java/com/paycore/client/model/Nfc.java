package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;

/** A contactless tap: a network token (DPAN), never a real card number. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record Nfc(@JsonProperty("token") String token, @JsonProperty("expiry") String expiry,
                  @JsonProperty("cryptogram") String cryptogram, @JsonProperty("wallet") String wallet,
                  @JsonProperty("emv_data") String emvData) {}
