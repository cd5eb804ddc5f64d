"""A fault-injecting TCP proxy for chaos tests (asyncio, in the test's own loop).

It sits between paycore and one of its dependencies (Postgres, the broker, a
provider's simulator) and can be switched at any moment:

* ``pass``      forward both ways;
* ``delay``     forward, holding every chunk ``delay`` seconds first (a slow link);
* ``drop``      close every connection, and each new one as soon as it is accepted
                (the peer reads EOF: "the server went away");
* ``reset``     the same with a TCP RST (SO_LINGER 0): "connection reset by peer";
* ``garbage``   answer each request with random bytes, then close; nothing reaches the
                other side (a broken middlebox, the wrong service on the port);
* ``blackhole`` accept and read but never forward or answer (a partition: only
                timeouts notice).

Switching to ``drop``/``reset``/``garbage`` ends the connections already open, as
a real outage would; ``blackhole`` silences them.
"""
from __future__ import annotations

import asyncio
import os
import socket
import struct
from dataclasses import dataclass, field

MODES = ("pass", "delay", "drop", "reset", "garbage", "blackhole")


@dataclass(eq=False)   # identity: kept in a set
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, name: str = "", host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.name = name or f"{target_host}:{target_port}"
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self.mode = "pass"
        self.delay = 0.0
        self.accepted = 0       # connections accepted, whatever the mode
        self.refused = 0        # connections ended by the mode
        self._conns: set[_Conn] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> "FaultProxy":
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self._conns):
            self._end(c, rst=False)
        if self._server is not None:
            await self._server.wait_closed()

    def set(self, mode: str, delay: float = 0.0) -> None:
        """Switch mode; ``delay`` seconds per chunk for ``delay``."""
        assert mode in MODES, mode
        self.mode, self.delay = mode, delay
        if mode in ("drop", "reset", "garbage"):
            for c in list(self._conns):
                self._end(c, rst=mode == "reset")

    # ------------------------------------------------------------------ internals
    def _end(self, c: _Conn, *, rst: bool) -> None:
        self._conns.discard(c)
        for t in c.tasks:
            t.cancel()
        for w in (c.client, c.upstream):
            if w is None:
                continue
            if rst:
                _rst(w)
            else:
                w.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        mode = self.mode
        if mode in ("drop", "reset"):
            self.refused += 1
            _rst(writer) if mode == "reset" else writer.close()
            return
        if mode == "garbage":
            self.refused += 1
            try:
                await asyncio.wait_for(reader.read(65536), 2.0)
                writer.write(b"\x15\x03\x01\x00\x02\x02" + os.urandom(64) + b"\r\n\r\nHTTP/1.1 ???\r\n")
                await writer.drain()
            except (OSError, asyncio.TimeoutError):
                pass
            writer.close()
            return
        conn = _Conn(writer)
        self._conns.add(conn)
        if mode == "blackhole":
            conn.tasks.append(asyncio.current_task())  # type: ignore[arg-type]
            try:
                while await reader.read(65536):
                    pass
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                self._conns.discard(conn)
                writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5.0)
        except (OSError, asyncio.TimeoutError):
            self._conns.discard(conn)
            _rst(writer)
            return
        conn.upstream = up_writer
        conn.tasks = [asyncio.ensure_future(self._pump(reader, up_writer, conn)),
                      asyncio.ensure_future(self._pump(up_reader, writer, conn))]

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, conn: _Conn) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                while self.mode == "blackhole":   # a partition: hold everything, answer nothing
                    await asyncio.sleep(0.05)
                if self.mode == "delay" and self.delay:
                    await asyncio.sleep(self.delay)
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if conn in self._conns:
                self._end(conn, rst=False)


async def proxies_for(targets: dict[str, tuple[str, int]]) -> dict[str, FaultProxy]:
    return {name: await FaultProxy(h, p, name=name).start() for name, (h, p) in targets.items()}
