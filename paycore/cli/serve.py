"""``paycore serve``, ``paycore relay`` and ``paycore migrate``."""
from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import shutil
import signal
import tempfile

from aiohttp import web
from prometheus_client import start_http_server

from paycore import config as config_mod
from paycore import logs, runtime
from paycore import workers as workers_mod
from paycore.cli.common import load, run
from paycore.core.journal import DB_DOWN
from paycore.http.app import AppRunner, create_app
from paycore.metrics import Metrics
from paycore.outbox.relay import Relay
from paycore.storage import db

log = logging.getLogger("paycore")


def _worker(config_path: str | None, workers: int, reuse_port: bool) -> None:
    cfg = config_mod.load(config_path)
    logs.setup(cfg.server.log_level)

    async def main() -> None:
        # our handlers from the first moment: a SIGTERM that arrives while the app is still starting
        # (pool, migrations check, background loops) must stop it too, not be lost in a callback
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        app = create_app(cfg, workers=workers)
        # in-flight requests get a few seconds (a long-poll holds up to 30 s: its client polls again)
        runner = AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        try:
            if not stop.is_set():
                site = web.TCPSite(runner, cfg.server.host, cfg.server.port, reuse_port=reuse_port,
                                   backlog=runtime.LISTEN_BACKLOG)
                await site.start()
                log.info("worker %d listening on %s:%d", os.getpid(), cfg.server.host, cfg.server.port)
                runtime.tune_gc()
                await stop.wait()
        finally:
            await runner.cleanup()

    try:
        run(main())
    except DB_DOWN as e:
        # started into a database outage (its pool could not open): one line, no traceback, and a
        # non-zero exit so that the supervisor restarts it with its backoff until the database is back
        log.error("worker %d could not start: the database is unreachable (%s: %s)", os.getpid(),
                  type(e).__name__, e)
        raise SystemExit(3) from None


def cmd_serve(args: argparse.Namespace) -> int:
    # every worker's metrics go to shared files; set before any worker builds its Metrics. A directory
    # made here is this server's alone: removed when it stops (every start would leave one in /tmp)
    made = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="paycore-metrics-")
    try:
        return _serve(args)
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)


def _serve(args: argparse.Namespace) -> int:
    cfg = load(args)
    workers = args.workers or cfg.server.workers
    run(db.migrate(cfg.database.url))
    if workers <= 1:
        _worker(args.config, 1, False)
        return 0
    ctx = mp.get_context("spawn")
    # every worker's /readyz reads what the supervisor says about crash loops
    state = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "supervisor.json")
    os.environ[workers_mod.STATE_ENV] = state

    def start() -> mp.Process:
        p = ctx.Process(target=_worker, args=(args.config, workers, True), daemon=False)
        p.start()
        return p

    s = cfg.server
    supervisor = workers_mod.Supervisor(start, workers, state, metrics=Metrics(), backoff_max=s.restart_backoff_max,
                                        crash_loop_restarts=s.crash_loop_restarts,
                                        crash_loop_window=s.crash_loop_window)

    def forward(signum, frame):
        supervisor.stop()
        for p in supervisor.procs:
            if p is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    supervisor.run()
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    """The relay as a process of its own (``kafka.relay = "separate"``, docs/deploy.md): it stands
    for the outbox's leadership (the same advisory lock as the workers' relay: run two for a quick
    takeover) and publishes until SIGTERM, which ends its term at once — the next leader starts from
    the oldest row still in the outbox, so nothing is lost and at most a batch is published twice."""
    cfg = load(args)
    if not cfg.kafka.bootstrap:
        log.error("no Kafka configured (kafka.bootstrap / PAYCORE_KAFKA_BOOTSTRAP): nothing to relay to")
        return 2
    if cfg.kafka.relay == "workers":
        log.warning('kafka.relay is "workers": the serve workers stand for the relay too (one leader at a time)')
    metrics = Metrics()
    if args.metrics_port:   # paycore_relay_leader, paycore_events_published_total, paycore_relay_lag_seconds, ...
        start_http_server(args.metrics_port, args.metrics_host, registry=metrics.registry)

    async def main() -> int:
        await db.migrate(cfg.database.url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        relay = Relay(cfg, metrics=metrics)
        relay.start()
        log.info("relay %d started: standing for the outbox's leadership (topic %s)", os.getpid(), cfg.kafka.topic)
        try:
            await stop.wait()
        finally:
            await relay.stop()
            log.info("relay %d stopped: %d events published", os.getpid(), relay.published)
        return 0

    try:
        return run(main())
    except DB_DOWN as e:   # as a worker: one line, and a non-zero exit for its supervisor to restart it
        log.error("relay %d could not start: the database is unreachable (%s: %s)", os.getpid(), type(e).__name__, e)
        return 3


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg = load(args, logging=False)
    applied = run(db.migrate(cfg.database.url))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="run the API (N worker processes on one port)")
    s.add_argument("--workers", type=int, default=0)
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("relay", help='publish the outbox to Kafka as a process of its own (kafka.relay = "separate")')
    s.add_argument("--metrics-port", type=int, default=0, help="serve /metrics on this port (0: off)")
    s.add_argument("--metrics-host", default="0.0.0.0")
    s.set_defaults(fn=cmd_relay)

    s = sub.add_parser("migrate", help="apply database migrations")
    s.set_defaults(fn=cmd_migrate)
