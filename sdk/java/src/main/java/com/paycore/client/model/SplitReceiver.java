package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonProperty;

public record SplitReceiver(@JsonProperty("receiver_id") String receiverId, @JsonProperty("amount") long amount,
                            @JsonProperty("description") String description) {
    public SplitReceiver {
        Models.fen("amount", amount);
    }
}
