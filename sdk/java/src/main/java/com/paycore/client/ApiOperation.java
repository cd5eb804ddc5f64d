package com.paycore.client;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/** Marks a client method as the SDK counterpart of an API operation (read by {@link Contract}). */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
public @interface ApiOperation {
    /** The operationId of openapi.json. */
    String id();

    /** {@code METHOD /path}, e.g. {@code GET /v1/payments/{id}}. */
    String http();
}
