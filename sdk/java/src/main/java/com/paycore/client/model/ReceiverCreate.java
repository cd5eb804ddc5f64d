package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;

/** {@code POST /v1/receivers}: who may receive a share of a payment. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record ReceiverCreate(@JsonProperty("receiver_no") String receiverNo, @JsonProperty("channel") String channel,
                             @JsonProperty("type") String type, @JsonProperty("account") String account,
                             @JsonProperty("name") String name) {
    public ReceiverCreate {
        Models.required("receiver_no", receiverNo);
    }
}
