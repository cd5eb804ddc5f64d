package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;

@JsonIgnoreProperties(ignoreUnknown = true)
public record Split(@JsonProperty("id") String id, @JsonProperty("payment_id") String paymentId,
                    @JsonProperty("split_no") String splitNo, @JsonProperty("status") String status,
                    @JsonProperty("receivers") List<SplitReceiverResult> receivers) {
    public Split {
        receivers = Models.list(receivers);
    }
}
