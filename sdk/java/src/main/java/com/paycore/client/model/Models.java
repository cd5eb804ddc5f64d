package com.paycore.client.model;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Small helpers of the immutable models. */
final class Models {
    private Models() {}

    static <T> List<T> list(List<T> l) {
        return l == null ? List.of() : List.copyOf(l);
    }

    static Map<String, Object> map(Map<String, Object> m) {
        return m == null ? null : Collections.unmodifiableMap(new LinkedHashMap<>(m));
    }

    /** Money is a whole, positive number of fen. */
    static long fen(String name, long amount) {
        if (amount <= 0) {
            throw new IllegalArgumentException(name + " must be > 0 fen, got " + amount);
        }
        return amount;
    }

    static <T> T required(String name, T value) {
        if (value == null) {
            throw new IllegalArgumentException(name + " is required");
        }
        return value;
    }
}
