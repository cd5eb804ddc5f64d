"""The provider HTTP client (channels/client.py) against real servers on loopback:
keep-alive reuse, every way an answer can be framed, TLS with verification,
the per-origin limit, and each failure mapped to what it means for money
(never reached: not retriable; maybe reached: retriable)."""
from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import ssl

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from channels.base import ChannelError
from channels.client import Lost, ProviderClient, Unreached
from channels.http import EXCHANGES, ChannelHttp
from devstack.stack import free_port


class Server:
    """An aiohttp server that counts the connections it was opened on."""

    def __init__(self, handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.peers: set[tuple] = set()
        self.seen: list[web.Request] = []
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> "Server":
        async def any_route(request: web.Request) -> web.StreamResponse:
            self.peers.add(request.transport.get_extra_info("peername"))   # type: ignore[union-attr]
            self.seen.append(request)
            return await self.handler(request)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", any_route)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ssl_context).start()
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def url(self, path: str = "/x", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


async def raw_server(answer: bytes, close: bool = True):
    """A TCP server that reads one request head and writes ``answer`` verbatim (then closes)."""
    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            if not close:
                await reader.read()   # until the client gives up
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"method": request.method, "path": request.path_qs, "len": len(body),
                              "ct": request.headers.get("Content-Type"), "ua": request.headers.get("User-Agent"),
                              "host": request.headers.get("Host")}, headers={"X-Sig": "abc"},
                             dumps=lambda o: json.dumps(o, separators=(",", ":")))


async def test_answers_and_keep_alive_reuse_one_connection():
    async with Server(echo) as srv, ProviderClient() as client:
        for i in range(20):
            status, headers, body = await client.request("POST", srv.url(f"/pay?i={i}"),
                                                         {"Content-Type": "application/json"}, b'{"a":1}', 2.0)
            assert status == 200
            assert headers["x-sig"] == "abc" and headers["X-SIG"] == "abc"   # names are case-insensitive
            assert b'"path":"/pay?i=%d"' % i in body and b'"len":7' in body
            assert b'"ct":"application/json"' in body
            assert b'"host":"127.0.0.1:%d"' % srv.port in body
        assert len(srv.peers) == 1, "twenty sequential calls should share one kept-alive connection"


async def test_bodies_without_content_type_and_get_without_body():
    async with Server(echo) as srv, ProviderClient() as client:
        _, _, body = await client.request("POST", srv.url(), None, "a=1&b=2", 2.0)
        assert b'"ct":"text/plain; charset=utf-8"' in body and b'"len":7' in body
        assert b'"ua":"paycore/1"' in body
        status, _, body = await client.request("GET", srv.url("/q?x=1"), None, None, 2.0)
        assert status == 200 and b'"method":"GET"' in body and b'"len":0' in body


async def test_chunked_gzip_and_until_close_answers_are_read_whole():
    big = b"x" * 200_000

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(big), 7_000):
            await resp.write(big[i:i + 7_000])
        await resp.write_eof()
        return resp

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"<xml>ok</xml>"), headers={"Content-Encoding": "gzip"})

    async with ProviderClient() as client:
        async with Server(chunked) as srv:
            status, _, body = await client.request("GET", srv.url(), None, None, 5.0)
            assert status == 200 and body == big
        async with Server(gzipped) as srv:
            _, _, body = await client.request("GET", srv.url(), None, None, 2.0)
            assert body == b"<xml>ok</xml>"
        server, port = await raw_server(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        async with server:
            status, _, body = await client.request("GET", f"http://127.0.0.1:{port}/", None, None, 2.0)
            assert (status, body) == (200, b"until the end")


async def test_a_connection_the_server_closes_is_not_reused():
    async def closing(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"Connection": "close"})
    async with Server(closing) as srv, ProviderClient() as client:
        for _ in range(5):
            status, _, body = await client.request("GET", srv.url(), None, None, 2.0)
            assert (status, body) == (200, b"ok")
        assert len(srv.peers) == 5


async def test_a_timed_out_answer_never_becomes_the_next_calls_answer():
    async def slow_then_fast(request: web.Request) -> web.Response:
        if request.query.get("slow"):
            await asyncio.sleep(0.6)
            return web.Response(text="late")
        return web.Response(text="fresh")
    async with Server(slow_then_fast) as srv, ProviderClient(limit_per_origin=1) as client:
        with pytest.raises(TimeoutError):
            await client.request("GET", srv.url("/x?slow=1"), None, None, 0.2)
        await asyncio.sleep(0.6)   # the late answer would have arrived by now on a reused connection
        _, _, body = await client.request("GET", srv.url("/x"), None, None, 2.0)
        assert body == b"fresh"


async def test_the_limit_per_origin_queues_callers():
    busy = 0
    most = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0.05)
        busy -= 1
        return web.Response(text="ok")
    async with Server(slow) as srv, ProviderClient(limit_per_origin=3) as client:
        answers = await asyncio.gather(*(client.request("GET", srv.url(), None, None, 5.0) for _ in range(15)))
        assert [a[2] for a in answers] == [b"ok"] * 15
        assert most == 3 and len(srv.peers) == 3


async def test_failures_say_whether_the_provider_can_have_acted():
    async with ProviderClient() as client:
        http = ChannelHttp(client, "bankwallet", 1.0)
        # nothing listens: never reached, not retriable
        with pytest.raises(ChannelError) as e:
            await http.request("POST", f"http://127.0.0.1:{free_port()}/pay", flow="pay", data=b"{}")
        assert (e.value.kind, e.value.retriable) == ("connect", False)
        # the request arrived and the connection closed without an answer: it may have acted
        server, port = await raw_server(b"")
        async with server:
            with pytest.raises(ChannelError) as e:
                await http.request("POST", f"http://127.0.0.1:{port}/pay", flow="pay", data=b"{}")
            assert (e.value.kind, e.value.retriable) == ("reset", True)
        # an answer that is not HTTP, or cut short
        for junk in (b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"):
            server, port = await raw_server(junk)
            async with server:
                with pytest.raises(ChannelError) as e:
                    await http.request("POST", f"http://127.0.0.1:{port}/pay", flow="pay", data=b"{}")
                assert (e.value.kind, e.value.retriable) == ("reset", True)
        # no answer in time
        server, port = await raw_server(b"", close=False)
        async with server:
            seen: list[int] = []
            token = EXCHANGES.set(seen)
            with pytest.raises(ChannelError) as e:
                await http.request("POST", f"http://127.0.0.1:{port}/pay", flow="pay", data=b"{}", timeout=0.2)
            EXCHANGES.reset(token)
            assert (e.value.kind, e.value.retriable) == ("timeout", True)
            assert seen == [0]
        with pytest.raises(Unreached):
            await client.request("GET", "ftp://127.0.0.1/x", None, None, 1.0)


async def test_header_injection_is_refused_before_anything_is_sent():
    async with Server(echo) as srv, ProviderClient() as client:
        for headers in ({"X-A": "1\r\nX-Evil: 1"}, {"X-A\n": "1"}):
            with pytest.raises(ValueError):
                await client.request("POST", srv.url(), headers, b"{}", 1.0)
        with pytest.raises(ValueError):
            await client.request("POST", srv.url("/a b\r\nX: y"), None, b"{}", 1.0)
        assert srv.seen == []


def self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provider.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


async def test_https_verifies_the_provider_certificate(tmp_path):
    cert, key = self_signed()
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    trusting = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))
    async with Server(echo, server_ctx) as srv:
        async with ProviderClient(ssl_context=trusting) as client:
            for _ in range(3):
                status, _, body = await client.request("POST", srv.url(scheme="https", host="localhost"),
                                                       {"Content-Type": "application/json"}, b"{}", 2.0)
                assert status == 200 and b'"len":2' in body
            assert len(srv.peers) == 1
        # the system's trust store does not know this certificate: refused before anything is sent
        async with ProviderClient() as client:
            with pytest.raises(Unreached):
                await client.request("POST", srv.url(scheme="https", host="localhost"), None, b"{}", 2.0)
            http = ChannelHttp(client, "wechatpay", 2.0)
            with pytest.raises(ChannelError) as e:
                await http.request("POST", srv.url(scheme="https", host="localhost"), flow="pay", data=b"{}")
            assert (e.value.kind, e.value.retriable) == ("connect", False)
        assert len(srv.seen) == 3


async def test_lost_is_what_a_half_answer_raises():
    server, port = await raw_server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    async with server, ProviderClient() as client:
        with pytest.raises(Lost):
            await client.request("GET", f"http://127.0.0.1:{port}/", None, None, 2.0)


async def test_a_get_follows_redirects_and_a_post_does_not():
    async def routes(request: web.Request) -> web.StreamResponse:
        if request.path == "/bill":
            raise web.HTTPFound("/files/bill.csv")
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        if request.path == "/files/bill.csv":
            return web.Response(text=f"csv auth={request.headers.get('Authorization')}")
        raise web.HTTPNotFound()
    async with Server(routes) as srv, ProviderClient() as client:
        status, _, body = await client.request("GET", srv.url("/bill"), {"Authorization": "t"}, None, 2.0)
        assert (status, body) == (200, b"csv auth=t")   # same origin: the header stays
        status, headers, _ = await client.request("POST", srv.url("/bill"), None, b"{}", 2.0)
        assert status == 302 and headers["Location"] == "/files/bill.csv"
        status, _, _ = await client.request("GET", srv.url("/loop"), None, None, 2.0)
        assert status == 302   # gave up after five hops: the redirect is the answer
        assert sum(1 for r in srv.seen if r.path == "/loop") == 6
    # to another origin: without the caller's Authorization
    async with Server(routes) as files:
        async def away(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(files.url("/files/bill.csv"))
        async with Server(away) as srv, ProviderClient() as client:
            _, _, body = await client.request("GET", srv.url("/bill"), {"Authorization": "t"}, None, 2.0)
            assert body == b"csv auth=None"
