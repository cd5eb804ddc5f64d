package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.time.OffsetDateTime;
import java.util.Map;
import java.util.Set;

/** A payment. Amounts are fen. Unknown fields of a newer platform are ignored. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record Payment(
        @JsonProperty("id") String id,
        @JsonProperty("merchant_id") String merchantId,
        @JsonProperty("merchant_order_no") String merchantOrderNo,
        @JsonProperty("amount") long amount,
        @JsonProperty("currency") String currency,
        @JsonProperty("method") String method,
        @JsonProperty("channel") String channel,
        @JsonProperty("status") String status,
        @JsonProperty("channel_trade_no") String channelTradeNo,
        @JsonProperty("qr_code") String qrCode,
        @JsonProperty("pay_params") Map<String, Object> payParams,
        @JsonProperty("refunded_amount") long refundedAmount,
        @JsonProperty("failure") Failure failure,
        @JsonProperty("subject") String subject,
        @JsonProperty("store_id") String storeId,
        @JsonProperty("terminal_id") String terminalId,
        @JsonProperty("wallet") String wallet,
        @JsonProperty("nfc") PaymentNfc nfc,
        @JsonProperty("expires_at") OffsetDateTime expiresAt,
        @JsonProperty("created_at") OffsetDateTime createdAt,
        @JsonProperty("updated_at") OffsetDateTime updatedAt,
        @JsonProperty("paid_at") OffsetDateTime paidAt,
        @JsonProperty("metadata") Map<String, Object> metadata,
        @JsonProperty("fee") Long fee) {

    public static final Set<String> FINAL_STATUSES = Set.of("SUCCEEDED", "FAILED", "CLOSED", "REVERSED");

    public Payment {
        payParams = Models.map(payParams);
        metadata = metadata == null ? Map.of() : Models.map(metadata);
    }

    @JsonIgnore
    public boolean isFinal() {
        return FINAL_STATUSES.contains(status);
    }
}
