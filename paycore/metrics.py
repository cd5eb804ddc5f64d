"""Prometheus metrics, safe across worker processes.

``paycore serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before this module is
imported, so every worker writes its samples to shared files and any worker
answers ``/metrics`` for all of them. Labels are bounded (channel, method,
status, route template), never ids.
"""
from __future__ import annotations

import os

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

_LAT = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter("paycore_http_requests_total", "HTTP requests", ["route", "method", "status"])
HTTP_LATENCY = Histogram("paycore_http_request_seconds", "HTTP request latency", ["route"], buckets=_LAT)

PAYMENTS_CREATED = Counter("paycore_payments_created_total", "Payments created", ["channel", "method"])
PAYMENTS_FINAL = Counter("paycore_payments_final_total", "Payments reaching a final status",
                         ["channel", "method", "status"])
REFUNDS_FINAL = Counter("paycore_refunds_final_total", "Refunds reaching a final status", ["channel", "status"])

CHANNEL_CALLS = Histogram("paycore_channel_call_seconds", "Calls to providers", ["channel", "flow", "outcome"],
                          buckets=_LAT)
CHANNEL_ERRORS = Counter("paycore_channel_errors_total", "Channel faults", ["channel", "flow", "kind"])
UNSUPPORTED_FLOWS = Counter("paycore_channel_unsupported_total", "Flows asked of a channel that lacks them",
                            ["channel", "flow"])
BREAKER_STATE = Gauge("paycore_channel_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                      ["channel"], multiprocess_mode="max")

NOTIFICATIONS = Counter("paycore_notifications_total", "Channel notifications received",
                        ["channel", "kind", "result"])
NOTIFICATIONS_REJECTED = Counter("paycore_notifications_rejected_total", "Channel notifications rejected",
                                 ["channel", "reason"])

JOURNAL_BATCH = Histogram("paycore_journal_batch_size", "State changes per group commit",
                          buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
EVENTS_WRITTEN = Counter("paycore_events_written_total", "Events committed to the journal")
EVENTS_PUBLISHED = Counter("paycore_events_published_total", "Events published to Kafka")
OUTBOX_DEPTH = Gauge("paycore_outbox_depth", "Events waiting in the outbox", multiprocess_mode="max")
RELAY_LAG = Histogram("paycore_relay_lag_seconds", "From commit to publish", buckets=_LAT)
RELAY_ERRORS = Counter("paycore_relay_errors_total", "Relay publish failures", ["kind"])

RECOVERY_BACKLOG = Gauge("paycore_recovery_backlog", "Payments and refunds awaiting recovery",
                         ["kind"], multiprocess_mode="max")
RECOVERY_ACTIONS = Counter("paycore_recovery_actions_total", "Recovery loop actions", ["channel", "action"])

AUTH_FAILURES = Counter("paycore_auth_failures_total", "Rejected merchant requests", ["reason"])
RATE_LIMITED = Counter("paycore_rate_limited_total", "Requests refused by rate limit", ["merchant"])

DB_POOL_SIZE = Gauge("paycore_db_pool_connections", "Database pool connections", ["state"],
                     multiprocess_mode="livesum")


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

WEBHOOK_DELIVERIES = Counter("paycore_webhook_deliveries_total", "Merchant webhook attempts by outcome", ["outcome"])
WEBHOOK_BACKLOG = Gauge("paycore_webhook_backlog", "Webhooks waiting for delivery", multiprocess_mode="max")
