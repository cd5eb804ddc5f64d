package com.paycore.client;

import com.fasterxml.jackson.databind.BeanDescription;
import com.fasterxml.jackson.databind.introspect.BeanPropertyDefinition;
import com.paycore.client.model.ErrorBody;
import com.paycore.client.model.ErrorDetail;
import com.paycore.client.model.Event;
import com.paycore.client.model.Failure;
import com.paycore.client.model.Nfc;
import com.paycore.client.model.Payer;
import com.paycore.client.model.Payment;
import com.paycore.client.model.PaymentCreate;
import com.paycore.client.model.PaymentNfc;
import com.paycore.client.model.Payout;
import com.paycore.client.model.PayoutCreate;
import com.paycore.client.model.PayoutDestination;
import com.paycore.client.model.Receiver;
import com.paycore.client.model.ReceiverCreate;
import com.paycore.client.model.Refund;
import com.paycore.client.model.RefundCreate;
import com.paycore.client.model.Settlement;
import com.paycore.client.model.SettlementChannel;
import com.paycore.client.model.SettlementLine;
import com.paycore.client.model.SettlementLinesPage;
import com.paycore.client.model.Split;
import com.paycore.client.model.SplitCreate;
import com.paycore.client.model.SplitReceiver;
import com.paycore.client.model.SplitReceiverResult;
import java.io.IOException;
import java.lang.reflect.Method;
import java.lang.reflect.Parameter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The machine-readable map from the merchant API to this SDK, read from the code itself:
 * operations from {@link ApiOperation}/{@link ApiParam} on {@link PaycoreClient}, fields from what
 * Jackson writes for each model in {@link #SCHEMAS}, webhooks from {@link ApiWebhook}, error codes
 * from {@link ApiException#BY_CODE}. {@code tests/sdk/test_java_sdk.py} compares it with openapi.json.
 */
public final class Contract {
    private Contract() {}

    /** OpenAPI schema ({@code Name}, or {@code Name.property} for an inline object) → model. */
    public static final Map<String, Class<?>> SCHEMAS = Map.ofEntries(
            Map.entry("PaymentCreate", PaymentCreate.class),
            Map.entry("PaymentCreateScanned", PaymentCreate.class),
            Map.entry("PaymentCreateNfc", PaymentCreate.class),
            Map.entry("PaymentCreatePayer", PaymentCreate.class),
            Map.entry("PaymentCreateWallet", PaymentCreate.class),
            Map.entry("PaymentCreateOrder", PaymentCreate.class),
            Map.entry("Nfc", Nfc.class),
            Map.entry("Payer", Payer.class),
            Map.entry("WalletPayer", Payer.class),
            Map.entry("RefundCreate", RefundCreate.class),
            Map.entry("ReceiverCreate", ReceiverCreate.class),
            Map.entry("SplitCreate", SplitCreate.class),
            Map.entry("SplitCreate.receivers", SplitReceiver.class),
            Map.entry("PayoutCreate", PayoutCreate.class),
            Map.entry("PayoutCreate.destination", PayoutDestination.class),
            Map.entry("Payment", Payment.class),
            Map.entry("Payment.failure", Failure.class),
            Map.entry("Payment.nfc", PaymentNfc.class),
            Map.entry("Refund", Refund.class),
            Map.entry("Refund.failure", Failure.class),
            Map.entry("Event", Event.class),
            Map.entry("SettlementEvent", Event.class),
            Map.entry("Error", ErrorBody.class),
            Map.entry("Error.error", ErrorDetail.class),
            Map.entry("Settlement", Settlement.class),
            Map.entry("Settlement.by_channel", SettlementChannel.class),
            Map.entry("SettlementLines", SettlementLinesPage.class),
            Map.entry("SettlementLines.lines", SettlementLine.class),
            Map.entry("Receiver", Receiver.class),
            Map.entry("Split", Split.class),
            Map.entry("Split.receivers", SplitReceiverResult.class),
            Map.entry("Split.receivers.failure", Failure.class),
            Map.entry("Payout", Payout.class),
            Map.entry("Payout.failure", Failure.class));

    /** The JSON field names Jackson writes and reads for a model. */
    public static List<String> fields(Class<?> model) {
        BeanDescription d = Json.MAPPER.getSerializationConfig().introspect(Json.MAPPER.constructType(model));
        List<String> out = new ArrayList<>();
        for (BeanPropertyDefinition p : d.findProperties()) {
            out.add(p.getName());
        }
        return out;
    }

    public static Map<String, Object> describe() {
        Map<String, Object> ops = new TreeMap<>();
        for (Method m : PaycoreClient.class.getMethods()) {
            ApiOperation op = m.getAnnotation(ApiOperation.class);
            if (op == null) {
                continue;
            }
            List<String> params = new ArrayList<>();
            for (Parameter p : m.getParameters()) {
                ApiParam ap = p.getAnnotation(ApiParam.class);
                if (ap != null) {
                    params.add(ap.value());
                }
            }
            ops.put(op.id(), Map.of("http", op.http(), "method", m.getName(), "params", params));
        }
        Map<String, Object> schemas = new TreeMap<>();
        SCHEMAS.forEach((name, cls) -> schemas.put(name, fields(cls)));
        TreeSet<String> webhooks = new TreeSet<>();
        for (Method m : WebhookVerifier.class.getMethods()) {
            ApiWebhook w = m.getAnnotation(ApiWebhook.class);
            if (w != null) {
                webhooks.add(w.value());
            }
        }
        return Map.of("operations", ops, "schemas", schemas, "webhooks", List.copyOf(webhooks),
                "error_codes", List.copyOf(new TreeSet<>(ApiException.BY_CODE.keySet())));
    }

    /** Writes {@link #describe()} as JSON to the file named by the first argument. */
    public static void main(String[] args) throws IOException {
        Files.write(Path.of(args[0]), Json.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(describe()));
    }
}
