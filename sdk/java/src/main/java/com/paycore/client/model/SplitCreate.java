package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;

/** {@code POST /v1/payments/{id}/splits}. {@code split_no} is the idempotency key. */
public record SplitCreate(@JsonProperty("split_no") String splitNo,
                          @JsonProperty("receivers") List<SplitReceiver> receivers,
                          @JsonProperty("finish") boolean finish) {
    public SplitCreate {
        Models.required("split_no", splitNo);
        receivers = Models.list(receivers);
    }
}
