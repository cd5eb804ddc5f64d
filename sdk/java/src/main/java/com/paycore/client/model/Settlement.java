package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;

/** A business day's settlement (Asia/Shanghai): net = gross - refunds - fees - shares - payouts + adjustments. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record Settlement(@JsonProperty("merchant_id") String merchantId, @JsonProperty("date") String date,
                         @JsonProperty("status") String status, @JsonProperty("count") long count,
                         @JsonProperty("gross") long gross, @JsonProperty("refunds") long refunds,
                         @JsonProperty("fees") long fees, @JsonProperty("shares") long shares,
                         @JsonProperty("payouts") long payouts, @JsonProperty("adjustments") long adjustments,
                         @JsonProperty("net") long net,
                         @JsonProperty("by_channel") List<SettlementChannel> byChannel,
                         @JsonProperty("file_sha256") String fileSha256) {
    public Settlement {
        byChannel = Models.list(byChannel);
    }
}
