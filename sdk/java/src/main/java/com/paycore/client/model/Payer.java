package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;

@JsonInclude(JsonInclude.Include.NON_NULL)
public record Payer(@JsonProperty("openid") String openid, @JsonProperty("user_id") String userId) {
    public static Payer openid(String openid) {
        return new Payer(openid, null);
    }

    public static Payer userId(String userId) {
        return new Payer(null, userId);
    }
}
