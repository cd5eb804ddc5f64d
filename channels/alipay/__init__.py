"""Alipay OpenAPI v2 (gateway.do, RSA2): adapter, transformers, simulator."""
