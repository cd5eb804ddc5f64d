package com.paycore.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Writes what the code offers (reflection, Jackson's own view of the models) to
 * target/paycore-contract.json, which tests/sdk/test_java_sdk.py compares with openapi.json.
 */
class ContractDumpTest {
    @Test
    @SuppressWarnings("unchecked")
    void describeTheSdk() throws Exception {
        Map<String, Object> d = Contract.describe();
        Map<String, Map<String, Object>> ops = (Map<String, Map<String, Object>>) d.get("operations");
        assertEquals("GET /v1/payments/{id}", ops.get("getPayment").get("http"));
        assertEquals(List.of("id", "wait"), ops.get("getPayment").get("params"));
        assertTrue(((Map<String, List<String>>) d.get("schemas")).get("Payment").contains("merchant_order_no"));
        Path out = Path.of("target", "paycore-contract.json");
        Files.createDirectories(out.getParent());
        Files.write(out, Json.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(d));
    }
}
