"""Prometheus metrics, safe across worker processes.

``paycore serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before this module is
imported, so every worker writes its samples to shared files and any worker
answers ``/metrics`` for all of them. Labels are bounded (channel, method,
status, route template, reason), never ids.

Counters and histograms are events, incremented where they happen. Gauges
that describe a shared state (outbox depth, webhook backlog, the latest
reconciliation) are *sampled* from Postgres by :class:`Sampler` in every
worker and use ``mostrecent``, so a dead or idle worker's old value cannot
win; the pool gauge is per worker and summed (``livesum``).

The dashboards (deploy/grafana) and alert rules (deploy/prometheus) are
built on these names; tests/integration/test_prometheus.py evaluates every
one of their queries against a real Prometheus scraping a real paycore.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

log = logging.getLogger("paycore.metrics")

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
OUTBOX_DEPTH = Gauge("paycore_outbox_depth", "Events waiting in the outbox", multiprocess_mode="mostrecent")
OUTBOX_OLDEST_AGE = Gauge("paycore_outbox_oldest_age_seconds",
                          "Age of the oldest event not yet published to Kafka (0 when none waits)",
                          multiprocess_mode="mostrecent")
RELAY_LAG = Histogram("paycore_relay_lag_seconds", "From commit to publish", buckets=_LAT)
RELAY_ERRORS = Counter("paycore_relay_errors_total", "Relay publish failures", ["kind"])

RECOVERY_BACKLOG = Gauge("paycore_recovery_backlog", "Payments and refunds awaiting recovery",
                         ["kind"], multiprocess_mode="max")
RECOVERY_ACTIONS = Counter("paycore_recovery_actions_total", "Recovery loop actions", ["channel", "action"])

AUTH_FAILURES = Counter("paycore_auth_failures_total", "Rejected merchant requests", ["reason"])
RATE_LIMITED = Counter("paycore_rate_limited_total", "Requests refused by rate limit", ["merchant"])

DB_POOL_SIZE = Gauge("paycore_db_pool_connections", "Database pool connections (in_use, idle, max)", ["state"],
                     multiprocess_mode="livesum")

WEBHOOK_DELIVERIES = Counter("paycore_webhook_deliveries_total",
                             "Merchant webhook attempts by outcome (delivered, retry, gave_up)", ["outcome"])
for _outcome in ("delivered", "retry", "gave_up"):
    WEBHOOK_DELIVERIES.labels(_outcome)   # exported at 0 from the start, so the first give-up shows in increase()
WEBHOOK_LATENCY = Histogram("paycore_webhook_delivery_seconds", "Merchant webhook POST duration", buckets=_LAT)
WEBHOOK_BACKLOG = Gauge("paycore_webhook_backlog", "Webhooks waiting for delivery", multiprocess_mode="mostrecent")
WEBHOOK_OLDEST_AGE = Gauge("paycore_webhook_oldest_age_seconds",
                           "Age of the oldest webhook still waiting for delivery (0 when none)",
                           multiprocess_mode="mostrecent")
WEBHOOK_FAILED = Gauge("paycore_webhooks_failed", "Webhooks given up on and not replayed (created in the last 7 days)",
                       multiprocess_mode="mostrecent")

#: results of the latest reconciliation run per channel (written by `paycore reconcile`, sampled from Postgres)
RECON_RESULTS = ("matched", "missing_ours", "missing_channel", "amount_mismatch", "status_mismatch")
RECON_LINES = Gauge("paycore_reconciliation_lines", "Statement lines of the latest reconciliation by result",
                    ["channel", "result"], multiprocess_mode="mostrecent")
RECON_LAST_RUN = Gauge("paycore_reconciliation_last_run_timestamp_seconds",
                       "When the latest reconciliation of a channel finished", ["channel"],
                       multiprocess_mode="mostrecent")


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# ------------------------------------------------------------------ sampling
_STATE_SQL = """
select (select count(*) from (select 1 from outbox limit 1000000) o) as outbox_depth,
       coalesce(extract(epoch from now() - (select created_at from outbox order by id limit 1)), 0) as outbox_age,
       (select count(*) from webhooks where status = 'PENDING') as webhook_backlog,
       coalesce(extract(epoch from now() - (select min(created_at) from webhooks where status = 'PENDING')), 0)
           as webhook_age,
       (select count(*) from webhooks where status = 'FAILED' and created_at > now() - interval '7 days')
           as webhooks_failed
"""
_RECON_SQL = """
select distinct on (channel) channel, extract(epoch from finished_at) as finished, matched, missing_ours,
       missing_channel, amount_mismatch, status_mismatch
from reconciliation_runs where status = 'DONE' order by channel, id desc
"""


class Sampler:
    """Samples state gauges every ``interval`` seconds in each worker process.

    The pool is read locally (free); Postgres is asked a handful of indexed
    counts. A database that is down leaves the previous values in place
    (the pool gauge and /readyz still tell the truth about it).
    """

    def __init__(self, pool: Any, interval: float = 5.0) -> None:
        self.pool = pool
        self.interval = interval
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="metrics-sampler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        while True:
            self.sample_pool()
            try:
                await asyncio.wait_for(self.sample_db(), max(self.interval, 2.0))
            except asyncio.CancelledError:
                raise
            except Exception as e:   # a sampling gap is not worth more than a debug line
                log.debug("metrics sampling failed: %s", type(e).__name__)
            await asyncio.sleep(self.interval)

    def sample_pool(self) -> None:
        size, idle = self.pool.get_size(), self.pool.get_idle_size()
        DB_POOL_SIZE.labels("in_use").set(size - idle)
        DB_POOL_SIZE.labels("idle").set(idle)
        DB_POOL_SIZE.labels("max").set(self.pool.get_max_size())

    async def sample_db(self) -> None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(_STATE_SQL)
            recon = await conn.fetch(_RECON_SQL)
        OUTBOX_DEPTH.set(row["outbox_depth"])
        OUTBOX_OLDEST_AGE.set(float(row["outbox_age"]))
        WEBHOOK_BACKLOG.set(row["webhook_backlog"])
        WEBHOOK_OLDEST_AGE.set(float(row["webhook_age"]))
        WEBHOOK_FAILED.set(row["webhooks_failed"])
        for r in recon:
            for result in RECON_RESULTS:
                RECON_LINES.labels(r["channel"], result).set(r[result])
            RECON_LAST_RUN.labels(r["channel"]).set(float(r["finished"]))

