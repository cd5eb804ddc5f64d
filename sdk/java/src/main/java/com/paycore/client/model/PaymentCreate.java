package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.Map;

/** {@code POST /v1/payments}. {@code merchant_order_no} is the idempotency key. Build with {@link #builder()}. */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record PaymentCreate(
        @JsonProperty("merchant_order_no") String merchantOrderNo,
        @JsonProperty("amount") long amount,
        @JsonProperty("currency") String currency,
        @JsonProperty("method") String method,
        @JsonProperty("channel") String channel,
        @JsonProperty("auth_code") String authCode,
        @JsonProperty("nfc") Nfc nfc,
        @JsonProperty("payer") Payer payer,
        @JsonProperty("subject") String subject,
        @JsonProperty("store_id") String storeId,
        @JsonProperty("terminal_id") String terminalId,
        @JsonProperty("notify_url") String notifyUrl,
        @JsonProperty("expire_in") Integer expireIn,
        @JsonProperty("metadata") Map<String, Object> metadata,
        @JsonProperty("profit_sharing") Boolean profitSharing) {

    public PaymentCreate {
        Models.required("merchant_order_no", merchantOrderNo);
        Models.fen("amount", amount);
        Models.required("method", method);
        currency = currency == null ? "CNY" : currency;
        metadata = Models.map(metadata);
    }

    public static Builder builder() {
        return new Builder();
    }

    public static final class Builder {
        private String merchantOrderNo;
        private long amount;
        private String currency = "CNY";
        private String method;
        private String channel;
        private String authCode;
        private Nfc nfc;
        private Payer payer;
        private String subject;
        private String storeId;
        private String terminalId;
        private String notifyUrl;
        private Integer expireIn;
        private Map<String, Object> metadata;
        private Boolean profitSharing;

        public Builder merchantOrderNo(String v) { merchantOrderNo = v; return this; }
        /** Fen. */
        public Builder amount(long v) { amount = v; return this; }
        public Builder currency(String v) { currency = v; return this; }
        public Builder method(String v) { method = v; return this; }
        public Builder channel(String v) { channel = v; return this; }
        public Builder authCode(String v) { authCode = v; return this; }
        public Builder nfc(Nfc v) { nfc = v; return this; }
        public Builder payer(Payer v) { payer = v; return this; }
        public Builder subject(String v) { subject = v; return this; }
        public Builder storeId(String v) { storeId = v; return this; }
        public Builder terminalId(String v) { terminalId = v; return this; }
        public Builder notifyUrl(String v) { notifyUrl = v; return this; }
        public Builder expireIn(Integer v) { expireIn = v; return this; }
        public Builder metadata(Map<String, Object> v) { metadata = v; return this; }
        public Builder profitSharing(Boolean v) { profitSharing = v; return this; }

        /** A scanned payment code (付款码): the channel comes from the code. */
        public Builder barcode(String code) { method = "barcode"; authCode = code; return this; }

        public PaymentCreate build() {
            return new PaymentCreate(merchantOrderNo, amount, currency, method, channel, authCode, nfc, payer, subject,
                    storeId, terminalId, notifyUrl, expireIn, metadata, profitSharing);
        }
    }
}
