"""Prometheus metrics, safe across worker processes.

Nothing here is created at import: each process builds one :class:`Metrics`
at start-up (``paycore serve`` after it has set ``PROMETHEUS_MULTIPROC_DIR``)
and hands it to the parts that count. In multiprocess mode every worker writes
its samples to shared files and any worker answers ``/metrics`` for all of
them. Labels are bounded (channel, method,
status, route template, reason), never ids.

Counters and histograms are events, incremented where they happen; the
per-request ones (HTTP requests and latency, payments created and final,
provider calls) are gathered in a plain dict by :meth:`Metrics.count` and
:meth:`Metrics.time` and applied by :class:`Flusher` every second and before
every ``/metrics`` answer (a multiprocess increment is a lock, a pid check and
an mmap write: ~3 µs, a dozen per payment). Gauges
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
from bisect import bisect_left
from functools import partial
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess, values)

from paycore.tasks import Loop

log = logging.getLogger("paycore.metrics")

_LAT = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)

#: reasons a needs-attention item is opened (paycore.core.attention names them; the gauge exports each)
ATTENTION_KINDS = ("late_success", "amount_mismatch", "outcome_unknown_past_deadline",
                   "refund_late_success_conflict", "reconciliation_discrepancy", "channel_disabled_open")

#: results of a reconciliation run, in the order the report and the gauges use
RECON_RESULTS = ("matched", "missing_ours", "missing_channel", "amount_mismatch", "status_mismatch")


def observe_many(hist: Histogram, amounts: list[float]) -> None:
    """``hist.observe(a)`` for each of ``amounts`` (an unlabelled histogram or a labelled
    child), in one update of the sum and one per bucket touched instead of two per
    amount: in multiprocess mode each update is a lock, a pid check and an mmap write.
    Relies on prometheus_client's ``_sum``/``_buckets``/``_upper_bounds`` (the pinned
    version; tests/unit/test_metrics_batch.py renders both ways and compares)."""
    if not amounts:
        return
    bounds = hist._upper_bounds
    counts = [0] * len(bounds)
    for a in amounts:
        counts[bisect_left(bounds, a)] += 1   # the first bucket whose bound is >= a, as observe picks
    hist._sum.inc(sum(amounts))
    for i, n in enumerate(counts):
        if n:
            hist._buckets[i].inc(n)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class Metrics:
    """Every collector paycore exports, in a registry of its own.

    Build it once per process after the multiprocess directory (if any) is
    set: the value class is chosen here, not when prometheus_client was
    imported, so the order of imports does not matter.
    """

    def __init__(self) -> None:
        if multiprocess_dir() and values.ValueClass is values.MutexValue:
            values.ValueClass = values.get_value_class()
        self.registry = reg = CollectorRegistry(auto_describe=True)
        c, g, h = (partial(k, registry=reg) for k in (Counter, Gauge, Histogram))

        self.http_requests = c("paycore_http_requests_total", "HTTP requests", ["route", "method", "status"])
        self.http_latency = h("paycore_http_request_seconds", "HTTP request latency", ["route"], buckets=_LAT)

        self.payments_created = c("paycore_payments_created_total", "Payments created", ["channel", "method"])
        self.payments_final = c("paycore_payments_final_total", "Payments reaching a final status",
                             ["channel", "method", "status"])
        self.refunds_final = c("paycore_refunds_final_total", "Refunds reaching a final status", ["channel", "status"])

        self.channel_calls = h("paycore_channel_call_seconds", "Calls to providers", ["channel", "flow", "outcome"],
                              buckets=_LAT)
        self.channel_errors = c("paycore_channel_errors_total", "Channel faults", ["channel", "flow", "kind"])
        self.caller_errors = c("paycore_caller_errors_total", "Payments a channel refused as malformed or not "
                               "permitted: the caller's error, never a channel fault", ["merchant", "channel"])
        self.merchant_busy = c("paycore_merchant_concurrency_refused_total",
                               "Payments refused because the merchant had its limit of channel calls in flight",
                               ["merchant"])
        self.unsupported_flows = c("paycore_channel_unsupported_total", "Flows asked of a channel that lacks them",
                                ["channel", "flow"])
        self.breaker_state = g("paycore_channel_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                          ["channel"], multiprocess_mode="max")

        self.notifications = c("paycore_notifications_total", "Channel notifications received",
                            ["channel", "kind", "result"])
        self.notifications_rejected = c("paycore_notifications_rejected_total", "Channel notifications rejected",
                                     ["channel", "reason"])

        self.journal_batch = h("paycore_journal_batch_size", "State changes per group commit",
                              buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.events_written = c("paycore_events_written_total", "Events committed to the journal")
        self.events_published = c("paycore_events_published_total", "Events published to Kafka")
        self.outbox_depth = g("paycore_outbox_depth", "Events waiting in the outbox", multiprocess_mode="mostrecent")
        self.outbox_oldest_age = g("paycore_outbox_oldest_age_seconds",
                              "Age of the oldest event not yet published to Kafka (0 when none waits)",
                              multiprocess_mode="mostrecent")
        self.relay_lag = h("paycore_relay_lag_seconds", "From commit to publish", buckets=_LAT)
        self.relay_leader = g("paycore_relay_leader", "1 in the process that holds relay leadership",
                              multiprocess_mode="livesum")
        self.relay_stepdowns = c("paycore_relay_stepdowns_total", "Relay terms ended because the lease was lost",
                                 ["reason"])
        self.worker_restarts = c("paycore_worker_restarts_total", "Dead serve workers restarted by the supervisor")
        self.relay_errors = c("paycore_relay_errors_total", "Relay publish failures", ["kind"])
        self.relay_vacuums = c("paycore_relay_vacuums_total", "The relay leader's vacuums of the outbox", ["outcome"])
        self.relay_vacuum_seconds = h("paycore_relay_vacuum_seconds", "How long the relay's outbox vacuum took",
                                      buckets=_LAT)

        self.recovery_backlog = g("paycore_recovery_backlog", "Payments and refunds awaiting recovery",
                             ["kind"], multiprocess_mode="max")
        self.recovery_actions = c("paycore_recovery_actions_total", "Recovery loop actions", ["channel", "action"])

        self.auth_failures = c("paycore_auth_failures_total", "Rejected merchant requests", ["reason"])
        self.rate_limited = c("paycore_rate_limited_total", "Requests refused by rate limit", ["merchant"])
        self.auth_previous_secret = c("paycore_auth_previous_secret_total", "Requests signed with a merchant's "
                                      "rotated-out secret during its grace period", ["merchant"])

        self.db_pool_size = g("paycore_db_pool_connections", "Database pool connections (in_use, idle, max)", ["state"],
                         multiprocess_mode="livesum")

        self.webhook_deliveries = c("paycore_webhook_deliveries_total",
                                 "Merchant webhook attempts by outcome (delivered, retry, gave_up)", ["outcome"])
        for outcome in ("delivered", "retry", "gave_up"):
            self.webhook_deliveries.labels(outcome)   # exported at 0 from the start, so the first give-up shows in increase()
        self.webhook_refused = c("paycore_webhook_refused_total", "Merchant webhook attempts paycore would not "
                                 "make or finish: a destination that is not public (address), not https (scheme), "
                                 "or a redirect (never followed)", ["reason"])
        self.webhook_latency = h("paycore_webhook_delivery_seconds", "Merchant webhook POST duration", buckets=_LAT)
        self.webhook_backlog = g("paycore_webhook_backlog", "Webhooks waiting for delivery", multiprocess_mode="mostrecent")
        self.webhook_oldest_age = g("paycore_webhook_oldest_age_seconds",
                               "Age of the oldest webhook still waiting for delivery (0 when none)",
                               multiprocess_mode="mostrecent")
        self.webhook_failed = g("paycore_webhooks_failed", "Webhooks given up on and not replayed (created in the last 7 days)",
                           multiprocess_mode="mostrecent")

        # results of the latest reconciliation run per channel (written by `paycore reconcile`, sampled from Postgres)
        self.recon_lines = g("paycore_reconciliation_lines", "Statement lines of the latest reconciliation by result",
                        ["channel", "result"], multiprocess_mode="mostrecent")
        self.recon_last_run = g("paycore_reconciliation_last_run_timestamp_seconds",
                           "When the latest reconciliation of a channel finished", ["channel"],
                           multiprocess_mode="mostrecent")

        # the needs-attention queue (paycore.core.attention): open items sampled from Postgres
        self.attention_open = g("paycore_attention_open", "Open needs-attention items by kind", ["kind"],
                                multiprocess_mode="mostrecent")
        self.attention_opened = c("paycore_attention_opened_total", "Needs-attention items opened",
                                  ["channel", "kind"])
        self.attention_resolved = c("paycore_attention_resolved_total", "Needs-attention items resolved",
                                    ["kind", "action"])
        self.late_payments = c("paycore_late_payments_total",
                               "Money reported for payments already closed, failed or reversed", ["channel", "action"])

        # what the per-request path counts waits here until flush() (Flusher, every second, and
        # every /metrics answer): an increment is a dict update, not a lock + pid check + mmap write
        self._counts: dict[tuple[Any, tuple[str, ...]], int] = {}
        self._times: dict[tuple[Any, tuple[str, ...]], list[float]] = {}

    def count(self, counter: Counter, *labels: str) -> None:
        """``counter.labels(*labels).inc()``, applied at the next flush."""
        key = (counter, labels)
        self._counts[key] = self._counts.get(key, 0) + 1

    def time(self, hist: Histogram, seconds: float, *labels: str) -> None:
        """``hist.labels(*labels).observe(seconds)``, applied at the next flush."""
        key = (hist, labels)
        pending = self._times.get(key)
        if pending is None:
            self._times[key] = [seconds]
        else:
            pending.append(seconds)

    def flush(self) -> None:
        """Move what :meth:`count` and :meth:`time` gathered into the exported values."""
        counts, self._counts = self._counts, {}
        times, self._times = self._times, {}
        for (counter, labels), n in counts.items():
            (counter.labels(*labels) if labels else counter).inc(n)
        for (hist, labels), amounts in times.items():
            observe_many(hist.labels(*labels) if labels else hist, amounts)

    def observe_channel_call(self, channel: str, flow: str, outcome: str, seconds: float) -> None:
        self.time(self.channel_calls, seconds, channel, flow, outcome)

    def render(self) -> tuple[bytes, str]:
        self.flush()   # this process's counts are current; another worker's are at most a second old
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Flusher(Loop):
    """Applies each process's gathered counts (:meth:`Metrics.flush`) every ``interval``
    seconds and once more when it stops, so that a scrape answered by another worker
    (multiprocess mode) sees them within that time and a stopping worker loses none."""
    name = "metrics-flush"
    logger = "paycore.metrics"

    def __init__(self, metrics: Metrics, interval: float = 1.0) -> None:
        super().__init__(interval=interval, backoff_max=interval)
        self.metrics = metrics

    async def step(self) -> float:
        self.metrics.flush()
        return self.interval

    async def teardown(self) -> None:
        self.metrics.flush()


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
_ATTENTION_SQL = "select kind, count(*) as n from attention_items where status = 'OPEN' group by kind"


async def read_state(conn: Any) -> dict[str, Any]:
    """The shared-state gauges as Postgres has them now: what the Sampler exports
    (paycore_outbox_depth, paycore_outbox_oldest_age_seconds, paycore_webhook_backlog,
    paycore_webhook_oldest_age_seconds, paycore_webhooks_failed) and the console's overview shows."""
    return dict(await conn.fetchrow(_STATE_SQL))


class Sampler(Loop):
    """Samples state gauges every ``interval`` seconds in each worker process.

    The pool is read locally (free); Postgres is asked a handful of indexed
    counts. A database that is down leaves the previous values in place
    (the pool gauge and /readyz still tell the truth about it).
    """
    name = "metrics-sampler"
    logger = "paycore.metrics"

    def __init__(self, pool: Any, metrics: Metrics, interval: float = 5.0) -> None:
        super().__init__(interval=interval, backoff_max=interval)
        self.pool = pool
        self.metrics = metrics

    async def step(self) -> float:
        self.sample_pool()
        try:
            await asyncio.wait_for(self.sample_db(), max(self.interval, 2.0))
        except asyncio.CancelledError:
            raise
        except Exception as e:   # a sampling gap is not worth more than a debug line
            self.log.debug("metrics sampling failed: %s", type(e).__name__)
        return self.interval

    def sample_pool(self) -> None:
        size, idle = self.pool.get_size(), self.pool.get_idle_size()
        self.metrics.db_pool_size.labels("in_use").set(size - idle)
        self.metrics.db_pool_size.labels("idle").set(idle)
        self.metrics.db_pool_size.labels("max").set(self.pool.get_max_size())

    async def sample_db(self) -> None:
        async with self.pool.acquire() as conn:
            row = await read_state(conn)
            recon = await conn.fetch(_RECON_SQL)
            attention = await conn.fetch(_ATTENTION_SQL)
        self.metrics.outbox_depth.set(row["outbox_depth"])
        self.metrics.outbox_oldest_age.set(float(row["outbox_age"]))
        self.metrics.webhook_backlog.set(row["webhook_backlog"])
        self.metrics.webhook_oldest_age.set(float(row["webhook_age"]))
        self.metrics.webhook_failed.set(row["webhooks_failed"])
        counts = dict.fromkeys(ATTENTION_KINDS, 0)   # every kind exported, 0 when none is open
        counts.update({r["kind"]: r["n"] for r in attention})
        for kind, n in counts.items():
            self.metrics.attention_open.labels(kind).set(n)
        for r in recon:
            for result in RECON_RESULTS:
                self.metrics.recon_lines.labels(r["channel"], result).set(r[result])
            self.metrics.recon_last_run.labels(r["channel"]).set(float(r["finished"]))

