package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.time.OffsetDateTime;

/**
 * A journal event, as POSTed to {@code notify_url} ({@code payment}, and {@code refund} for refund events), or a
 * {@code settlement.closed} to the merchant's webhook URL ({@code settlement}; no payment).
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record Event(@JsonProperty("event_id") String eventId, @JsonProperty("type") String type,
                    @JsonProperty("seq") long seq, @JsonProperty("occurred_at") OffsetDateTime occurredAt,
                    @JsonProperty("payment") Payment payment, @JsonProperty("refund") Refund refund,
                    @JsonProperty("settlement") Settlement settlement) {}
