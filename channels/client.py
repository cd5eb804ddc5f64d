"""The HTTP/1.1 client paycore talks to providers with.

Why not aiohttp's ``ClientSession``: a provider call is one small request and
one small answer on a kept-alive connection, and the session's generality
(cookies, redirects, proxies, tracing, multipart, streaming bodies) cost
~140 µs of CPU per call in the bench's profile, more than a bare aiohttp
server spends on a whole request. This client does only what a provider call
needs, on uvloop's transports and ``httptools`` (llhttp, the parser Node.js
uses) for the answer:

* one origin (scheme, host, port) = one pool of keep-alive connections, at
  most ``limit_per_origin`` open (callers beyond it wait for one), idle ones
  closed after ``keepalive`` seconds;
* ``https`` with certificate and host name verification (the system's trust
  store, or ``ssl_context``); ``http`` for the simulators and tests;
* answers framed by Content-Length, chunked, or (HTTP/1.0 style) by the close
  of the connection; gzip/deflate bodies decoded (we never ask for them);
* one deadline per request covering the wait for a connection, the connect,
  the TLS handshake, sending and the whole answer; a connection whose answer
  did not arrive in time is aborted, never reused;
* a connection is reused only after a complete answer that allows keep-alive;
* a GET follows redirects (statement downloads), nothing else does.

Failures are :class:`Unreached` (nothing was sent: refused, unresolvable,
TLS handshake failed — the provider cannot have acted), :class:`Lost` (the
request may have been received: reset, closed early, an answer that is not
HTTP) and ``TimeoutError``; channels.http maps them onto ChannelError.
"""
from __future__ import annotations

import asyncio
import collections
import ssl as ssl_mod
import time
import zlib
from typing import Mapping
from urllib.parse import urljoin, urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

USER_AGENT = "paycore/1"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


class Unreached(Exception):
    """The request was never sent: the provider cannot have acted on it."""


class Lost(Exception):
    """The request was (or may have been) sent and no complete answer came back."""


class _Conn(asyncio.Protocol):
    """One connection: one exchange at a time, the answer parsed by llhttp as it arrives."""

    __slots__ = ("pool", "transport", "parser", "future", "status", "headers", "body", "framed",
                 "complete", "keep", "closed", "idle_since", "timer")

    def __init__(self, pool: "_Pool") -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.future: asyncio.Future | None = None
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.framed = False          # the answer carries a length or is chunked
        self.complete = False
        self.keep = False
        self.closed = False
        self.idle_since = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------- llhttp callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.future is None:     # past the answer asked for: ignored (and the connection is not reused)
            return
        n = name.decode("latin-1")
        if n.lower() in ("content-length", "transfer-encoding"):
            self.framed = True
        self.headers.append((n, value.decode("utf-8", "surrogateescape")))

    def on_body(self, body: bytes) -> None:
        if self.future is not None:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.future is None:     # a second answer to one request: not HTTP as we speak it
            self.closed = True
            return
        self.complete = True
        self.keep = self.parser.should_keep_alive()   # asked now: llhttp resets its flags after this callback
        self.status = self.parser.get_status_code()
        self._finish(None)

    # ---------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport    # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.future is None:       # nothing asked: a server speaking out of turn is not to be trusted
            self.transport.abort()    # type: ignore[union-attr]
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._finish(Lost(f"the answer is not HTTP ({e})"))
            self.transport.abort()    # type: ignore[union-attr]

    def eof_received(self) -> bool:
        if self.future is not None and not self.complete and not self.framed and self.status_line_seen():
            # an answer without a length ends with the connection (RFC 9112 §6.3)
            self.status = self.parser.get_status_code()
            self.complete = True
            self._finish(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(Lost("the connection was closed before a complete answer"
                          + (f" ({type(exc).__name__})" if exc else "")))
        self.pool.forget(self)

    # ---------------------------------------------------------- the exchange
    def status_line_seen(self) -> bool:
        return self.parser.get_status_code() > 0   # 0 until llhttp has read one

    def send(self, data: bytes, timeout: float) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        self.future = fut = loop.create_future()
        self.complete = self.framed = self.keep = False
        self.headers = []
        self.body = []
        self.timer = loop.call_later(timeout, self._expire)
        self.transport.write(data)    # type: ignore[union-attr]
        return fut

    def _expire(self) -> None:
        self.timer = None
        self._finish(TimeoutError())
        if self.transport is not None:
            self.transport.abort()    # its answer may still come: this connection cannot be reused

    def _finish(self, error: Exception | None) -> None:
        fut, self.future = self.future, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if fut is None or fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:   # the answer as it stands now: nothing parsed later can change it
            fut.set_result((self.status, self.headers, self.body))

    def reusable(self) -> bool:
        return self.complete and self.keep and not self.closed


class _Pool:
    """Keep-alive connections to one origin."""

    def __init__(self, client: "ProviderClient", scheme: str, host: str, port: int) -> None:
        self.client = client
        self.host, self.port = host, port
        self.ssl = client.ssl_context() if scheme == "https" else None
        self.idle: collections.deque[_Conn] = collections.deque()
        self.open = 0
        self.waiters: collections.deque[asyncio.Future] = collections.deque()

    async def acquire(self, deadline: float) -> _Conn:
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            while self.idle:
                c = self.idle.pop()         # the most recently used: the least likely to have been closed
                if not c.closed and now - c.idle_since < self.client.keepalive:
                    return c
                self._close(c)
            if self.open < self.client.limit:
                self.open += 1
                try:
                    async with asyncio.timeout_at(loop.time() + (deadline - now)):
                        _, c = await loop.create_connection(lambda: _Conn(self), self.host, self.port,
                                                            ssl=self.ssl, server_hostname=self.host if self.ssl else None)
                except TimeoutError:    # before OSError, its base class: a timeout stays a timeout
                    self.open -= 1
                    raise
                except (OSError, ssl_mod.SSLError) as e:
                    self.open -= 1
                    raise Unreached(f"cannot connect to {self.host}:{self.port} ({type(e).__name__})") from e
                except BaseException:
                    self.open -= 1
                    raise
                return c
            w = loop.create_future()
            self.waiters.append(w)
            try:
                async with asyncio.timeout_at(loop.time() + (deadline - now)):
                    c = await w
            except BaseException:
                if w.done() and not w.cancelled():
                    handed = w.result()       # handed to us as we gave up: pass it (or the free slot) on
                    if handed is not None:
                        self.release(handed)
                    else:
                        self._hand(None)
                raise
            if c is not None:
                return c

    def release(self, c: _Conn) -> None:
        if not c.reusable():
            self._close(c)
            self._hand(None)
            return
        if not self._hand(c):
            c.idle_since = time.monotonic()
            self.idle.append(c)

    def _hand(self, c: _Conn | None) -> bool:
        """Give the first waiter ``c`` (or, None, the news that a slot is free: it opens one)."""
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(c)
                return True
        return False

    def forget(self, c: _Conn) -> None:
        """A connection closed by the other side while idle: drop it now."""
        try:
            self.idle.remove(c)
        except ValueError:
            return
        self.open -= 1

    def _close(self, c: _Conn) -> None:
        if c.transport is not None and not c.transport.is_closing():
            c.transport.abort()
        self.open -= 1

    def close(self) -> None:
        while self.idle:
            self._close(self.idle.pop())


class ProviderClient:
    """One per process: the pools of every provider origin."""

    def __init__(self, *, limit_per_origin: int = 512, keepalive: float = 30.0,
                 ssl_context: ssl_mod.SSLContext | None = None) -> None:
        self.limit = limit_per_origin
        self.keepalive = keepalive
        self._ssl = ssl_context
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._targets: dict[str, tuple[_Pool, bytes]] = {}

    def ssl_context(self) -> ssl_mod.SSLContext:
        if self._ssl is None:
            self._ssl = ssl_mod.create_default_context()
        return self._ssl

    def _target(self, url: str) -> tuple[_Pool, bytes]:
        """(the origin's pool, the request line's target + Host header) of ``url``, cached."""
        known = self._targets.get(url)
        if known is not None:
            return known
        _check(url)   # before urlsplit, which would quietly drop CR and LF
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise Unreached(f"not an http(s) URL: {url[:80]!r}")
        port = u.port or (443 if u.scheme == "https" else 80)
        key = (u.scheme, u.hostname, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self, *key)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        default_port = port == (443 if u.scheme == "https" else 80)
        host = u.hostname if ":" not in u.hostname else f"[{u.hostname}]"
        host_header = host if default_port else f"{host}:{port}"
        if " " in path or "\t" in path:
            raise ValueError("a URL with a space: encode it")
        known = (pool, f" {path} HTTP/1.1\r\nHost: {host_header}\r\n".encode())
        if len(self._targets) > 4096:   # URLs with ever-changing queries must not grow this without bound
            self._targets.clear()
        self._targets[url] = known
        return known

    async def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                      data: bytes | str | None = None, timeout: float = 10.0) -> tuple[int, CIMultiDictProxy, bytes]:
        """(status, headers, body) of one call; raises Unreached, Lost or TimeoutError.

        A GET (a statement or file download) follows up to MAX_REDIRECTS redirects within its
        deadline, never from https to http, and without the caller's Authorization header once it
        leaves the origin; any other method gets the redirect as its answer (a provider's API does
        not redirect a payment call, and repeating one elsewhere is not ours to decide)."""
        deadline = time.monotonic() + timeout
        status, answer, body = await self._exchange(method, url, headers, data, deadline)
        hops = 0
        while method == "GET" and status in REDIRECTS and hops < MAX_REDIRECTS and answer.get("Location"):
            nxt = urljoin(url, answer["Location"])
            if url.startswith("https:") and not nxt.startswith("https:"):
                break
            if headers and urlsplit(nxt)[:2] != urlsplit(url)[:2]:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url, hops = nxt, hops + 1
            status, answer, body = await self._exchange(method, url, headers, None, deadline)
        return status, answer, body

    async def _exchange(self, method: str, url: str, headers: Mapping[str, str] | None, data: bytes | str | None,
                        deadline: float) -> tuple[int, CIMultiDictProxy, bytes]:
        pool, target = self._target(url)
        _check(method)
        body = data.encode() if isinstance(data, str) else (data or b"")
        lines = [method.encode(), target]
        given = set()
        if headers:
            for k, v in headers.items():
                _check(k)
                _check(v)
                given.add(k.lower())
                lines.append(f"{k}: {v}\r\n".encode())
        if "user-agent" not in given:
            lines.append(b"User-Agent: " + USER_AGENT.encode() + b"\r\n")
        if "accept" not in given:
            lines.append(b"Accept: */*\r\n")
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            if "content-type" not in given and body:
                lines.append(b"Content-Type: text/plain; charset=utf-8\r\n" if isinstance(data, str)
                             else b"Content-Type: application/octet-stream\r\n")
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        lines.append(body)
        c = await pool.acquire(deadline)
        try:
            status, heads, parts = await c.send(b"".join(lines), max(0.001, deadline - time.monotonic()))
        finally:
            pool.release(c)
        out = b"".join(parts) if len(parts) != 1 else parts[0]
        answer = CIMultiDict(heads)
        enc = answer.get("Content-Encoding", "").lower()
        if enc in ("gzip", "deflate", "x-gzip") and out:
            try:
                out = zlib.decompressobj(wbits=47).decompress(out)   # 32 + 15: gzip or zlib, by its header
            except zlib.error:
                try:
                    out = zlib.decompressobj(wbits=-15).decompress(out)   # raw deflate, as some servers send it
                except zlib.error as e:
                    raise Lost(f"the answer's {enc} body does not decode") from e
        return status, CIMultiDictProxy(answer), out

    async def __aenter__(self) -> "ProviderClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._targets.clear()


def _check(part: str) -> None:
    """No CR, LF or NUL in what goes into the request head (header injection)."""
    if "\r" in part or "\n" in part or "\x00" in part:
        raise ValueError("a request line or header holds CR, LF or NUL")
