"""Where merchant webhooks may go, with production's settings: https only, public addresses only
(checked on the address each socket is about to connect to), no redirects, an optional egress proxy.

The session's paycore runs with ``allow_http`` and ``allow_private`` (its merchants listen on
127.0.0.1), so these tests run a second, real dispatcher (paycore.ops.webhooks.Dispatcher) with both
off against the same Postgres, on webhook rows they write themselves. The rows are due an hour from
now, so the session's paycore leaves them alone; each test hands its row to its dispatcher's
``deliver`` and reads what was recorded.
"""
from __future__ import annotations

import asyncio
import secrets

import orjson
import pytest

from channels.secrets import Secret
from paycore.merchants.auth import SecretBox
from paycore.metrics import Metrics
from paycore.ops.webhooks import ROW_SQL, Dispatcher
from tests.support.helpers import amount, auth_code
from tests.support.ops import eventually

#: an hour between attempts: a failed attempt never becomes due for the session's own dispatcher
SLOW = (3600.0,) * 9
#: looks public, and the egress proxy stand-in answers for it: nothing here connects to it
PUBLIC = "93.184.215.14"


class EgressProxy:
    """A stand-in for the bank's egress proxy: it records each request line and Host header it is
    asked to forward and answers 200 itself (a CONNECT for https gets 403: no TLS here)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> "EgressProxy":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((head[0], headers, body))
            status = "403 Forbidden" if head[0].startswith("CONNECT ") else "200 OK"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def egress_proxy():
    p = await EgressProxy().start()
    try:
        yield p
    finally:
        await p.stop()


async def production_dispatcher(stack, **settings) -> tuple[Dispatcher, Metrics]:
    metrics = Metrics()
    d = Dispatcher(stack.pool, SecretBox(Secret(stack.master_key)), timeout=2.0, schedule=SLOW, metrics=metrics,
                   **settings)
    await d.setup()
    return d, metrics


async def attempt(stack, dispatcher: Dispatcher, url: str):
    """A webhook row for ``url`` (as if created when the rules were looser, or by a name that resolved
    elsewhere then), delivered once by ``dispatcher``; returns the row as recorded afterwards."""
    event_id = "evt_dest" + secrets.token_hex(8)
    payload = orjson.dumps({"event_id": event_id, "type": "payment.succeeded", "seq": 2})
    wid = await stack.pool.fetchval(
        "insert into webhooks (event_id, merchant_id, payment_id, url, payload, next_attempt_at) "
        "values ($1, $2, 'pay_dest', $3, $4, now() + interval '1 hour') returning id",
        event_id, stack.merchant_id, url, payload)
    row = await stack.pool.fetchrow(f"{ROW_SQL} where w.id = $1", wid)
    await dispatcher.deliver(row)
    return await stack.pool.fetchrow("select * from webhooks where id = $1", wid)


def refused(metrics: Metrics, reason: str) -> float:
    return metrics.registry.get_sample_value("paycore_webhook_refused_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize("host, why", [
    ("127.0.0.1", "127.0.0.1 is loopback"),
    ("169.254.169.254", "169.254.169.254 is link-local (cloud metadata)"),
    ("localhost", "is loopback"),          # a name: resolved by the system (hosts file), refused per address
])
async def test_internal_destinations_are_refused_at_connect_time(stack, receiver, host, why):
    name = f"inside-{secrets.token_hex(4)}"
    url = receiver.url(name).replace("127.0.0.1", host)
    d, metrics = await production_dispatcher(stack, allow_http=True)
    try:
        row = await attempt(stack, d, url)
    finally:
        await d.teardown()
    assert row["status"] == "PENDING" and row["attempts"] == 1 and row["last_status"] is None
    assert row["last_error"].startswith("destination refused: ") and why in row["last_error"], row["last_error"]
    assert refused(metrics, "address") == 1
    assert metrics.registry.get_sample_value("paycore_webhook_deliveries_total", {"outcome": "retry"}) == 1
    assert receiver.received(name) == [], "nothing reached the receiver"


async def test_plain_http_is_refused_unless_allowed(stack, receiver):
    d, metrics = await production_dispatcher(stack)
    try:
        row = await attempt(stack, d, f"http://{PUBLIC}/hook")
    finally:
        await d.teardown()
    assert row["last_error"] == "destination refused: http is not allowed (https only)" and row["attempts"] == 1
    assert refused(metrics, "scheme") == 1


async def test_the_same_receiver_is_reached_when_private_destinations_are_allowed(stack, receiver):
    """The control: the refusals above are the rules, not a receiver that cannot be reached."""
    name = f"allowed-{secrets.token_hex(4)}"
    d, metrics = await production_dispatcher(stack, allow_http=True, allow_private=True)
    try:
        row = await attempt(stack, d, receiver.url(name).replace("127.0.0.1", "localhost"))
    finally:
        await d.teardown()
    assert row["status"] == "DELIVERED" and len(receiver.received(name)) == 1
    assert refused(metrics, "address") == 0


async def test_a_redirect_is_not_followed(stack, receiver):
    """Through the session's paycore: the merchant's endpoint answers 302 to another URL."""
    target, name = f"target-{secrets.token_hex(4)}", f"moved-{secrets.token_hex(4)}"
    receiver.behaviour[name] = receiver.url(target)
    r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("wechatpay"),
                        notify_url=receiver.url(name))
    assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body

    async def recorded():
        return await stack.pool.fetchrow("select * from webhooks where payment_id = $1 and attempts >= 2",
                                         r.body["id"])
    row = await eventually(recorded, what="two attempts")
    assert row["last_status"] == 302 and row["last_error"] == "redirect not followed" and row["status"] == "PENDING"
    assert receiver.received(target) == [], "the redirect was followed"
    assert len(receiver.received(name)) >= 2
    async with stack.session.get(stack.base + "/metrics") as m:
        text = await m.text()
    assert 'paycore_webhook_refused_total{reason="redirect"}' in text


async def test_deliveries_go_through_the_egress_proxy(stack, egress_proxy):
    d, metrics = await production_dispatcher(stack, allow_http=True, proxy=egress_proxy.url)
    try:
        row = await attempt(stack, d, f"http://{PUBLIC}:8080/hooks/paycore?shop=1")
        tls = await attempt(stack, d, f"https://{PUBLIC}/hooks/paycore")
    finally:
        await d.teardown()
    assert row["status"] == "DELIVERED" and row["last_status"] == 200
    (line, headers, body), (connect, _, _) = egress_proxy.requests
    assert line == f"POST http://{PUBLIC}:8080/hooks/paycore?shop=1 HTTP/1.1"
    assert headers["host"] == f"{PUBLIC}:8080" and headers["x-paycore-signature"].startswith("t=")
    assert orjson.loads(body)["event_id"] == row["event_id"]
    # https: the proxy is asked for a tunnel to the checked address (this stand-in refuses it)
    assert connect == f"CONNECT {PUBLIC}:443 HTTP/1.1"
    assert tls["status"] == "PENDING" and tls["last_error"] == "ClientHttpProxyError"


async def test_through_the_proxy_the_destination_is_still_checked(stack, egress_proxy, receiver):
    """The proxy itself is on loopback (the operator's); the merchant's destination may not be."""
    d, metrics = await production_dispatcher(stack, allow_http=True, proxy=egress_proxy.url)
    try:
        by_address = await attempt(stack, d, receiver.url("via-proxy"))
        by_name = await attempt(stack, d, receiver.url("via-proxy").replace("127.0.0.1", "localhost"))
        metadata = await attempt(stack, d, "http://[::ffff:169.254.169.254]/latest/meta-data/")
    finally:
        await d.teardown()
    assert by_address["last_error"] == "destination refused: 127.0.0.1 is loopback"
    assert "localhost resolves to 127.0.0.1, loopback" in by_name["last_error"]
    assert "link-local (cloud metadata)" in metadata["last_error"]
    assert egress_proxy.requests == [] and receiver.received("via-proxy") == []
    assert refused(metrics, "address") == 3


async def test_notify_url_refused_at_creation_names_the_field(stack, receiver):
    """The session's paycore allows http and private destinations (its merchants are local), so what it
    refuses at creation is what no setting allows."""
    for url in ("ftp://pay.example.com/hook", "https://shop:pw@pay.example.com/hook", "https://[::1"):
        r = await stack.pay(amount=amount(), method="qr", channel="alipay", notify_url=url)
        assert r.status == 400 and r.error == "INVALID_REQUEST" and r.body["error"]["field"] == "notify_url", r.body
