package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

/** {@code {"error": {code, message, field?}}}. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record ErrorBody(@JsonProperty("error") ErrorDetail error) {}
