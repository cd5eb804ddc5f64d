"""Configuration: frozen dataclasses built from ``config/default.toml``, the
file named by ``PAYCORE_CONFIG`` (merged over the defaults) and ``PAYCORE_*``
environment variables (over both). Secrets are :class:`Secret` and never show
in repr or logs. Nothing changes after start-up.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from zoneinfo import ZoneInfoNotFoundError

from channels.base import ChannelSettings, RecoveryRule
from channels.registry import ADAPTERS   # adapters carry their default recovery rules
from channels.secrets import Secret
from paycore.bizday import Calendar, parse_cutoff

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config" / "default.toml"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    public_base_url: str = "http://127.0.0.1:8080"   # what providers post notifications to
    max_body: int = 1024 * 1024
    log_level: str = "INFO"
    access_log: bool = False
    # serve --workers N: a dead worker is restarted after a back-off doubling up to this many seconds;
    # this many restarts within crash_loop_window seconds is a crash loop (/readyz fails)
    restart_backoff_max: float = 30.0
    crash_loop_restarts: int = 5
    crash_loop_window: float = 60.0


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = "postgresql://postgres@127.0.0.1:5432/paycore"
    pool_min: int = 2
    pool_max: int = 10
    command_timeout: float = 5.0
    connect_timeout: float = 3.0


#: record-batch codecs aiokafka has (lz4, zstd and snappy through cramjam); "" or None: uncompressed
COMPRESSIONS = frozenset({"gzip", "lz4", "zstd", "snappy", "", None})


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap: str = ""              # empty: no Kafka, the outbox just grows (dev only)
    topic: str = "paycore.payments"
    idempotence: bool = True         # on for a real cluster; the dev broker lacks InitProducerId
    compression: str | None = "lz4"   # lz4/zstd/snappy through cramjam (a dependency)
    linger_ms: int = 5
    batch_max: int = 1000
    send_timeout: float = 10.0
    partitions: int = 6
    # who runs the relay (outbox → Kafka; one leader at a time, by a Postgres advisory lock):
    # "workers": every `paycore serve` worker stands for leadership (the default);
    # "separate": serve workers never relay — `paycore relay` runs it as a process of its own
    # (docs/deploy.md), so that no API worker carries the relay's share of the events
    relay: str = "workers"

    def __post_init__(self) -> None:
        if self.relay not in ("workers", "separate"):
            raise ValueError(f"kafka.relay must be \"workers\" or \"separate\", not {self.relay!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"kafka.compression must be one of {sorted(c for c in COMPRESSIONS if c)} or empty "
                             f"(none), not {self.compression!r}")


@dataclass(frozen=True, slots=True)
class JournalConfig:
    batch_max: int = 256             # state changes per group commit
    max_wait_ms: float = 2.0         # how long the first change in a batch may wait for company
    relay_interval_ms: float = 20.0  # relay poll when the outbox was empty
    relay_backoff_max: float = 5.0
    # relay leadership: Postgres ends the leader's lock session after relay_lease seconds without a
    # heartbeat (a frozen or cut-off leader), so another process takes over within about that bound
    relay_lease: float = 3.0
    # the relay deletes from the outbox's head as fast as payments insert at its tail: it vacuums the
    # outbox itself once this many rows were deleted (at most every relay_vacuum_interval seconds),
    # since autovacuum visits a database once a minute and the relay's scan walks every dead entry
    relay_vacuum_rows: int = 5000
    relay_vacuum_interval: float = 2.0


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    master_key: Secret = field(default_factory=lambda: Secret(""))   # encrypts merchant secrets at rest
    replay_window: int = 300
    rate_limit_per_second: float = 2000.0     # per merchant, token bucket
    rate_limit_burst: float = 4000.0
    # the operators' API (/ops/attention ...): a bearer token; unset = that API is refused
    ops_token: Secret = field(default_factory=lambda: Secret(""))
    # channel calls one merchant may have in flight per worker: beside the rate, so that one merchant's
    # flood of slow payments cannot take every connection and event-loop turn from the others
    merchant_concurrency: int = 64


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    default_max_amount: int = 100_000_00      # fen: 100,000 yuan
    default_expire_in: int = 300
    max_expire_in: int = 7 * 24 * 3600
    long_poll_max: int = 30
    recovery_interval: float = 0.5           # how often the recovery loop looks for due work
    recovery_batch: int = 200
    payout_max_amount: int = 50_000_00        # fen per payout (转账/代付)
    payout_daily_limit: int = 200_000_00      # fen per merchant per Asia/Shanghai day, payouts not FAILED


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    """Merchant webhook delivery (paycore.webhooks). ``schedule``: seconds to wait
    after failed attempt n; empty means the built-in one (10 attempts, ~2.5 h)."""
    schedule: tuple[float, ...] = ()
    timeout: float = 5.0
    interval: float = 0.5            # dispatcher poll when nothing was due
    batch: int = 100
    # destinations: https to a public address only; the dev stack and tests receive on loopback over http
    allow_http: bool = False
    allow_private: bool = False
    proxy: str = ""                  # an egress proxy for every delivery (http://host:port), if set


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    sample_interval: float = 5.0     # how often state gauges (pool, outbox, backlogs) are sampled


@dataclass(frozen=True, slots=True)
class OnecodeConfig:
    """The one-code pages (paycore.http.onecode). ``trusted_proxies``: addresses or CIDRs
    of the load balancers in front of paycore; ``X-Forwarded-For`` is believed only from
    them. Token buckets (per worker process): per client address for pages and for
    payment attempts, and per code for payment attempts."""
    trusted_proxies: tuple[str, ...] = ()
    page_rate: float = 5.0             # pages and status polls per second, per client …
    page_burst: float = 120.0          # … after a burst of this many
    pay_rate: float = 0.5              # payment attempts per second, per client …
    pay_burst: float = 20.0
    code_pay_rate: float = 20.0        # payment attempts per second on one code, all clients together
    code_pay_burst: float = 200.0
    payer_days: int = 30               # how long the payer id from the app's OAuth is remembered (cookie)
    #: development only, never in production: where a browser that is none of the apps pays as
    #: one of them, e.g. the simulators' confirm page (devstack sets it for ``make run``).
    #: Placeholders ``{base_url}`` (the channel's), ``{payment_id}``, ``{return_url}`` (escaped).
    #: Empty (the default): such a browser only gets the list of apps that work.
    desktop_pay_url: str = ""


@dataclass(frozen=True, slots=True)
class SettlementConfig:
    """Business days, closing and fees (docs/settlement.md).

    ``timezone``: the business day's zone. ``cutoff``: "HH:MM" after the
    day's end before ``paycore settlement close`` may close it. ``fee_refund``:
    per channel, ``proportional`` (a refund returns its share of the fee) or
    ``kept`` (the fee stays charged); ``fee_refund_default`` for the others.
    ``fee_rule_lead``: a new fee rule takes effect at least this many seconds
    after it is added, and every server reloads its rules more often than
    that, so each payment gets exactly the rule in effect when it succeeded."""
    timezone: str = "Asia/Shanghai"
    cutoff: str = "02:00"
    fee_refund_default: str = "proportional"
    fee_refund: Mapping[str, str] = field(default_factory=dict)
    fee_rule_lead: float = 60.0

    def __post_init__(self) -> None:
        for ch, policy in {"*": self.fee_refund_default, **self.fee_refund}.items():
            if policy not in ("proportional", "kept"):
                raise ValueError(f"settlement.fee_refund for {ch} must be proportional or kept, not {policy!r}")
        if self.fee_rule_lead < 1:
            raise ValueError("settlement.fee_rule_lead must be at least 1 second")
        self.calendar()   # an unknown zone or a malformed cut-off fails at start-up

    def calendar(self) -> Calendar:
        try:
            return Calendar.of(self.timezone, parse_cutoff(self.cutoff))
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"settlement: {e}") from None

    def fee_refund_policy(self, channel: str) -> str:
        return self.fee_refund.get(channel, self.fee_refund_default)


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """The operations console and merchant portal (paycore.http.console)."""
    idle_timeout: int = 15 * 60           # seconds without a request before a session ends
    absolute_timeout: int = 8 * 3600      # seconds after login when a session ends regardless
    max_failures: int = 5                 # failed logins in a row before the account locks
    lockout_seconds: int = 15 * 60
    secure_cookies: bool | None = None    # None: Secure when public_base_url is https


@dataclass(frozen=True, slots=True)
class DataConfig:
    """Partitions and retention (docs/data.md; `paycore maintain`)."""
    maintain_interval: float = 3600.0   # seconds between maintenance rounds in each server (0: never)
    events_days: int = 35               # events kept this long (and until published and settled)
    events_ahead_days: int = 14         # daily event partitions created this far ahead
    webhooks_months: int = 3            # webhook deliveries kept this long (and until none is pending)
    settlement_lines_months: int = 25   # settlement lines kept this long (and until their days are closed)
    ahead_months: int = 2               # monthly partitions created this far ahead
    require_settled: bool = True        # events wait until every business day they cover is closed
    export_dir: str = ""                # if set, a partition is written there (CSV, gzip) before it is dropped
    lock_timeout_ms: int = 2000         # DDL gives up (and retries next round) rather than queue writers


@dataclass(frozen=True, slots=True)
class RoutePattern:
    channel: str
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    kafka: KafkaConfig = KafkaConfig()
    journal: JournalConfig = JournalConfig()
    security: SecurityConfig = SecurityConfig()
    payments: PaymentsConfig = PaymentsConfig()
    routing: tuple[RoutePattern, ...] = ()
    channels: Mapping[str, ChannelSettings] = field(default_factory=dict)
    breaker: Mapping[str, Any] = field(default_factory=dict)
    webhooks: WebhooksConfig = WebhooksConfig()
    metrics: MetricsConfig = MetricsConfig()
    onecode: OnecodeConfig = OnecodeConfig()
    settlement: SettlementConfig = SettlementConfig()
    console: ConsoleConfig = ConsoleConfig()
    data: DataConfig = DataConfig()


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _section(cls, data: Mapping[str, Any] | None):
    data = dict(data or {})
    known = {f for f in cls.__dataclass_fields__}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown settings for {cls.__name__}: {sorted(unknown)}")
    return cls(**data)


def channel_settings(name: str, d: Mapping[str, Any], default_recovery: RecoveryRule | None = None) -> ChannelSettings:
    """Build one channel's settings from its config table.

    ``secret_file`` (preferred) or ``secret`` give the provider's symmetric key,
    ``app_secret_file`` or ``app_secret`` the OAuth app's secret;
    ``recovery`` overrides the adapter's default recovery rule field by field.
    """
    d = dict(d)
    secret, app_secret = (_secret_of(d, name) for name in ("secret", "app_secret"))
    rec = d.pop("recovery", {}) or {}
    recovery = replace(default_recovery or RecoveryRule(), **rec)
    extra = dict(d.pop("extra", {}) or {})
    known = set(ChannelSettings.__dataclass_fields__) - {"name", "secret", "app_secret", "recovery", "extra"}
    for k in list(d):
        if k not in known:
            extra[k] = d.pop(k)
    return ChannelSettings(name=name, secret=Secret(secret), app_secret=Secret(app_secret), recovery=recovery,
                           extra=extra, **d)


def _secret_of(d: dict[str, Any], name: str) -> str:
    """``<name>_file`` (read, stripped) or ``<name>`` of a channel table, popped from it."""
    value, path = d.pop(name, ""), d.pop(f"{name}_file", "")
    return Path(path).read_text().strip() if path else value


def load(path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None,
         env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    path = path or env.get("PAYCORE_CONFIG")
    if path:
        data = _merge(data, tomllib.loads(Path(path).read_text()))
    if overrides:
        data = _merge(data, overrides)
    return from_dict(data, env)


def from_dict(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    server = dict(data.get("server", {}))
    database = dict(data.get("database", {}))
    kafka = dict(data.get("kafka", {}))
    security = dict(data.get("security", {}))
    # environment wins over files
    for key, section, name, conv in (
        ("PAYCORE_HOST", server, "host", str), ("PAYCORE_PORT", server, "port", int),
        ("PAYCORE_WORKERS", server, "workers", int), ("PAYCORE_PUBLIC_URL", server, "public_base_url", str),
        ("PAYCORE_LOG_LEVEL", server, "log_level", str),
        ("PAYCORE_DATABASE_URL", database, "url", str), ("PAYCORE_KAFKA_BOOTSTRAP", kafka, "bootstrap", str),
        ("PAYCORE_KAFKA_TOPIC", kafka, "topic", str), ("PAYCORE_KAFKA_RELAY", kafka, "relay", str),
        ("PAYCORE_MASTER_KEY", security, "master_key", str), ("PAYCORE_OPS_TOKEN", security, "ops_token", str),
    ):
        if env.get(key):
            section[name] = conv(env[key])
    if "PAYCORE_KAFKA_IDEMPOTENCE" in env:
        kafka["idempotence"] = env["PAYCORE_KAFKA_IDEMPOTENCE"].lower() in ("1", "true", "yes")
    for key in ("master_key", "ops_token"):
        if key in security:
            security[key] = Secret(security[key])
    onecode = {k: tuple(v) if k == "trusted_proxies" else v for k, v in (data.get("onecode") or {}).items()}
    if "PAYCORE_TRUSTED_PROXIES" in env:   # comma-separated addresses or CIDRs of the load balancers
        onecode["trusted_proxies"] = tuple(p.strip() for p in env["PAYCORE_TRUSTED_PROXIES"].split(",") if p.strip())

    channels: dict[str, ChannelSettings] = {}
    for name, table in (data.get("channels") or {}).items():
        if name not in ADAPTERS:
            raise ValueError(f"unknown channel in config: {name}")
        channels[name] = channel_settings(name, table, ADAPTERS[name].default_recovery)
    routing = tuple(RoutePattern(r["channel"], re.compile(r["pattern"]))
                    for r in (data.get("routing", {}).get("prefixes") or []))
    return Config(
        server=_section(ServerConfig, server), database=_section(DatabaseConfig, database),
        kafka=_section(KafkaConfig, kafka), journal=_section(JournalConfig, data.get("journal")),
        security=_section(SecurityConfig, security), payments=_section(PaymentsConfig, data.get("payments")),
        routing=routing, channels=channels, breaker=dict(data.get("breaker", {})),
        webhooks=_section(WebhooksConfig, {k: tuple(v) if k == "schedule" else v
                                           for k, v in (data.get("webhooks") or {}).items()}),
        metrics=_section(MetricsConfig, data.get("metrics")),
        onecode=_section(OnecodeConfig, onecode),
        settlement=_section(SettlementConfig, data.get("settlement")),
        console=_section(ConsoleConfig, data.get("console")),
        data=_section(DataConfig, data.get("data")),
    )
